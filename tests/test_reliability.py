"""Nothing is lost on a crash: SIGKILL after a checkpoint, then --resume, continues from the saved step and finishes;
Ctrl-C saves a checkpoint before exiting; a killed writer never leaves a half-written file."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from fashiondiff.checkpoint import load_meta, load_tensors, remove_stale_temporaries, save_tensors
from conftest import needs_data

TRAIN = ["-m", "fashiondiff", "train", "transformer", "--max-steps", "24", "--checkpoint-every", "6",
         "--batch-size", "32", "--no-eval", "--no-progress", "--device", "cpu"]


def saved_step(out) -> int:
    path = out / "checkpoint" / "state.safetensors"
    return load_meta(path)["step"] if path.is_file() else 0


def start(out) -> subprocess.Popen:
    # A shell starts background jobs with SIGINT ignored, and children inherit that; a terminal's Ctrl-C reaches a
    # process whose SIGINT has its default action, so give the run that (or a CI started with `&` never interrupts it).
    return subprocess.Popen([sys.executable, *TRAIN, "--out", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for_checkpoint(proc, out, timeout=300) -> None:
    deadline = time.time() + timeout
    while saved_step(out) == 0:
        assert proc.poll() is None, proc.stderr.read()
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.05)


@needs_data
def test_sigkill_then_resume_continues_from_the_saved_step_and_finishes(tmp_path):
    killed = tmp_path / "killed"
    proc = start(killed)
    wait_for_checkpoint(proc, killed)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    step = saved_step(killed)
    assert 0 < step < 24 and step % 6 == 0
    names = {p.name for p in (killed / "checkpoint").iterdir()}      # real files, or a writer's temporary
    assert "state.safetensors" in names
    assert all(n in ("state.safetensors", "state.json") or (n.startswith(".") and n.endswith(".tmp")) for n in names)
    load_tensors(killed / "checkpoint" / "state.safetensors")        # complete and readable

    r = subprocess.run([sys.executable, *TRAIN, "--out", str(killed), "--resume"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    rec = json.loads((killed / "record.json").read_text())
    assert rec["resumed"] and rec["steps"] == 24 and saved_step(killed) == 24
    assert not list((killed / "checkpoint").glob(".*.tmp"))

    hist = json.loads((killed / "record.json").read_text())["loss_history"]
    assert hist[-1][0] == 24 and all(a[0] < b[0] for a, b in zip(hist, hist[1:]))   # one history, no step twice


@needs_data
def test_ctrl_c_saves_a_checkpoint_and_exits_130(tmp_path):
    proc = start(tmp_path)
    wait_for_checkpoint(proc, tmp_path)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "checkpoint saved" in err and "Traceback" not in err
    step = saved_step(tmp_path)
    assert step >= 6 and f"interrupted at step {step}" in err


def test_a_killed_writer_leaves_only_a_temporary_file_which_resume_removes(tmp_path):
    path = tmp_path / "state.safetensors"
    save_tensors(path, {"w": torch.ones(3)}, {"step": 6})
    (tmp_path / ".state.safetensors.abc123.tmp").write_bytes(b"half a file")      # what SIGKILL mid-write leaves
    assert load_meta(path) == {"step": 6} and torch.equal(load_tensors(path)["w"], torch.ones(3))
    assert [p.name for p in remove_stale_temporaries(tmp_path)] == [".state.safetensors.abc123.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.safetensors"]


def test_tensors_and_their_metadata_live_in_one_file(tmp_path):
    path = tmp_path / "x.safetensors"
    save_tensors(path, {"a": torch.arange(4.0)}, {"step": 12, "history": [[6, 0.5], [12, 0.25]]})
    assert load_meta(path) == {"step": 12, "history": [[6, 0.5], [12, 0.25]]}
    save_tensors(path, {"a": torch.arange(4.0)})
    assert load_meta(path) is None


@needs_data
@pytest.mark.parametrize("name", ["transformer", "flow"])
def test_a_crash_and_resume_ends_bit_identical_to_an_uninterrupted_run(tmp_path, name):
    """Everything that shapes the next step is in the checkpoint: weights, EMA, AdamW moments, step, both random
    states, the data order (a function of seed and epoch). So crashing after step 6 and resuming must reproduce an
    uninterrupted 12-step run exactly, every tensor bit for bit (eager mode; the same holds compiled in one process)."""
    from dataclasses import replace
    from fashiondiff.recipes import RECIPES
    from fashiondiff.training import train

    recipe = RECIPES[name]
    # fp32: "auto" measures again in each of the two runs and may choose differently on a busy host (a resumed run
    # keeps its own choice, and bf16's exact resume is checked in tests/test_training.py)
    cfg = replace(recipe.train, epochs=None, max_steps=12, batch_size=32, checkpoint_every=6,
                  snapshot_every=0, compile=False, precision="fp32")

    def run(out, crash_after=None, resume=False):
        torch.manual_seed(0)
        model, loss_fn, n = recipe.setup(recipe, torch.device("cpu"))
        calls = []

        def crashing_loss(m, idx, g):
            calls.append(1)
            if crash_after is not None and len(calls) > crash_after:
                raise RuntimeError("simulated crash")
            return loss_fn(m, idx, g)
        train(model, crashing_loss, n, cfg, out=out, resume=resume, progress=False)

    run(tmp_path / "straight")
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(tmp_path / "crashed", crash_after=6)
    assert saved_step(tmp_path / "crashed") == 6
    run(tmp_path / "crashed", resume=True)
    a = load_tensors(tmp_path / "straight" / "checkpoint" / "state.safetensors")
    b = load_tensors(tmp_path / "crashed" / "checkpoint" / "state.safetensors")
    assert a.keys() == b.keys()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
