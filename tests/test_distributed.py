"""Training with several processes (torchrun, DistributedDataParallel over gloo on CPU).

Two ranks, each taking half of every global batch, must end with identical weights, and those weights must be
the ones a single process reaches with the whole batch (the gradient of a mean is the mean of the shards'
gradients). Only rank 0 writes the checkpoint and the weights.
"""
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from conftest import needs_data

WORKER = textwrap.dedent('''
    import sys
    from pathlib import Path
    import torch
    import torch.nn as nn
    from fashiondiff.checkpoint import save_tensors
    from fashiondiff.devices import init_distributed, rank_and_world
    from fashiondiff.training import TrainConfig, train

    out = Path(sys.argv[1])
    init_distributed("cpu")
    rank, world = rank_and_world()
    g = torch.Generator().manual_seed(0)
    x, w_true = torch.randn(256, 8, generator=g), torch.randn(8, 1, generator=g)
    y = x @ w_true                                                   # a deterministic regression problem
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))
    save_tensors(out / f"init_rank{rank}_of_{world}.safetensors", {k: v.clone() for k, v in model.state_dict().items()})
    cfg = TrainConfig(max_steps=12, batch_size=32, lr=1e-2, schedule="constant", warmup_steps=0, ema_decay=0.9,
                      checkpoint_every=5, log_every=4)
    batches = []                                                     # the examples this rank saw, step by step

    def loss_fn(m, idx, gen):
        batches.append(idx.clone())
        return ((m(x[idx]) - y[idx]) ** 2).mean()

    result = train(model, loss_fn, len(x), cfg, out=out / "run", progress=False)
    save_tensors(out / f"rank{rank}_of_{world}.safetensors", dict(model.state_dict()))
    save_tensors(out / f"batches_rank{rank}_of_{world}.safetensors", {"idx": torch.stack(batches)})
    print("history", result.history)
    if world > 1:
        torch.distributed.destroy_process_group()
''')


def launch(tmp_path, nproc: int) -> subprocess.CompletedProcess:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", str(script),
           str(tmp_path)] if nproc > 1 else [sys.executable, str(script), str(tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)


def test_two_ranks_hold_identical_weights_equal_to_one_process_with_the_whole_batch(tmp_path):
    from fashiondiff.checkpoint import load_tensors
    single, multi = tmp_path / "single", tmp_path / "multi"
    single.mkdir(), multi.mkdir()
    r1 = launch(single, 1)
    assert r1.returncode == 0, r1.stderr
    r2 = launch(multi, 2)
    assert r2.returncode == 0, r2.stderr[-3000:]
    w0, w1 = load_tensors(multi / "rank0_of_2.safetensors"), load_tensors(multi / "rank1_of_2.safetensors")
    ref = load_tensors(single / "rank0_of_1.safetensors")
    init = [load_tensors(folder / f"init_rank{r}_of_{n}.safetensors") for folder, r, n in
            ((single, 0, 1), (multi, 0, 2), (multi, 1, 2))]
    assert w0.keys() == w1.keys() == ref.keys() == init[0].keys() and len(ref) == 4
    for k in ref:
        for i in init[1:]:
            torch.testing.assert_close(i[k], init[0][k], rtol=0, atol=0)    # all three runs start from one model
        moved = (ref[k] - init[0][k]).abs().max()
        assert moved > 1e-2, f"{k} hardly moved in training ({moved:.1e}): the comparisons below would be empty"
        torch.testing.assert_close(w0[k], w1[k], rtol=0, atol=0)           # the ranks agree exactly
        torch.testing.assert_close(w0[k], ref[k], rtol=1e-5, atol=1e-6)    # and equal the one-process run
    # each step, the two ranks took the two halves of the one-process run's batch
    (b,), (b0,), (b1,) = (load_tensors(folder / f"batches_rank{r}_of_{n}.safetensors").values() for folder, r, n in
                          ((single, 0, 1), (multi, 0, 2), (multi, 1, 2)))
    assert b.shape == (12, 32) and b0.shape == b1.shape == (12, 16)
    assert torch.equal(torch.cat([b0, b1], 1).sort(1).values, b.sort(1).values)
    # exactly one checkpoint and one set of weights, written by rank 0
    files = sorted(p.relative_to(multi / "run").as_posix() for p in (multi / "run").rglob("*") if p.is_file())
    assert files == ["checkpoint/state.json", "checkpoint/state.safetensors", "config.json", "model.safetensors"]
    assert "history" in r2.stdout and r2.stdout.count("history") == 2       # both ranks ran to the end


@needs_data
def test_torchrun_runs_the_command_line(tmp_path):
    out = tmp_path / "clf"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "fashiondiff",
           "train", "classifier", "--max-steps", "3", "--batch-size", "64", "--out", str(out), "--device", "cpu",
           "--no-progress"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    import json
    rec = json.loads((out / "record.json").read_text())
    assert rec["steps"] == 3 and rec["hardware"]["processes"] == 2 and rec["train"]["batch_size"] == 64
    assert r.stdout.count('"out"') == 1                                 # one report, from rank 0
    assert (out / "model.safetensors").is_file() and (out / "checkpoint" / "state.safetensors").is_file()
