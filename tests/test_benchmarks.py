"""The scripts in benchmarks/ run and print what they promise: one JSON line per measurement, then a summary.
Nothing is asserted about the timings themselves (they depend on the machine), only that they are measured; what
train_throughput makes of them is checked with planted timings."""
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from conftest import needs_data
from fashiondiff.recipes import GENERATORS, RECIPES
from fashiondiff.sampling import samplers_for

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def run(script: str, *args: str) -> tuple[list[dict], str]:
    r = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.splitlines()
    records = [json.loads(s) for s in lines if s.startswith("{")]
    summary = "\n".join(s for s in lines if not s.startswith("{"))
    return records, summary


def test_attention_cost_times_every_method_at_every_length():
    records, summary = run("attention_cost.py", "--max-tokens", "64")
    assert {(r["method"], r["tokens"]) for r in records} == {(m, n) for m in ("softmax", "sdpa", "linear") for n in (16, 32, 64)}
    assert all(r["ms"] > 0 for r in records)
    assert "linear" in summary


@needs_data
def test_train_throughput_reports_speed_and_memory():
    records, summary = run("train_throughput.py", "--model", "classifier", "--steps", "2")
    (r,) = records
    assert r["model"] == "classifier" and r["batch_size"] == 128 and r["images_per_s"] > 0 and r["repeats"] == 3
    assert r["images_per_s_range"][0] <= r["images_per_s"] <= r["images_per_s_range"][1]
    assert r["peak_rss_mb"] > 100 and r["step_adds_mb"] >= 0          # the training set alone is ~190 MB
    assert "images/s" in summary and "roofline" in summary
    # the classifier's matrix-product FLOPs per image in closed form: 2 per multiply-add, forward (f), then backward:
    # weight gradients (f again) and input gradients (f, less the first convolution's, whose input needs none)
    macs = [28 * 28 * 32 * 9, 14 * 14 * 64 * 32 * 9, 14 * 14 * 64 * 64 * 9, 7 * 7 * 128 * 64 * 9, 6272 * 128, 128 * 10]
    assert r["flops_per_image"] == 2 * (3 * sum(macs) - macs[0])
    assert r["matmul_gflops"][0] > 0 and r["onednn_gflops"][0] > 0 and r["matmul_fraction"] > 0


@pytest.mark.parametrize("precision, roofline", [("fp32", 2000), ("bf16", 5000)])
def test_train_throughput_reports_the_median_speed_against_its_own_precisions_roofline(monkeypatch, precision,
                                                                                       roofline):
    """Step times, product speeds and FLOPs planted: the record's numbers follow by hand. Three timed runs of 10 steps
    at batch 100 take 2, 1 and 4 s: 500, 1000 and 250 images/s, median 500. MKL runs at 100 then 120 GFLOP/s, oneDNN
    at 180 then 220, bf16 at 400 then 600. In fp32 the faster, on average, is oneDNN at 200 GFLOP/s, so at 1e8 FLOP
    per image the roofline is 2000 images/s and the step reaches 500 / 2000 = 0.25 of it; in bf16 the roofline is
    its own products' 500 GFLOP/s, 5000 images/s, and the step reaches 0.1 of it."""
    monkeypatch.syspath_prepend(str(BENCH))
    import train_throughput
    model, cfg = torch.nn.Linear(4, 4), SimpleNamespace(batch_size=100, compile=False, precision=precision)
    seconds = iter([0.1, 2.0, 1.0, 4.0])                                   # the warm-up, then the timed runs
    speeds = iter([{"mkl": 100.0, "onednn": 180.0, "bf16": 400.0}, {"mkl": 120.0, "onednn": 220.0, "bf16": 600.0}])
    monkeypatch.setattr(train_throughput, "recipe_run", lambda *args: (lambda steps: next(seconds), model, cfg))
    monkeypatch.setattr(train_throughput, "product_speeds", lambda bf16: next(speeds))   # GFLOP/s before and after
    monkeypatch.setattr(train_throughput, "flops_per_image", lambda run, batch_size: 1e8)
    (r,) = train_throughput.throughput("classifier", 10, torch.device("cpu"), linear="aten", repeats=3,
                                       precision=precision)
    assert r["images_per_s"] == 500 and r["images_per_s_range"] == [250, 1000] and r["seconds_per_step"] == 0.2
    assert r["matmul_gflops"] == [100, 120] and r["onednn_gflops"] == [180, 220] and r["flops_per_image"] == 1e8
    assert r["roofline_images_per_s"] == roofline and r["matmul_fraction"] == 500 / roofline
    assert r["precision"] == precision and ("bf16_gflops" in r) == (precision == "bf16")


def test_train_throughput_variants_pair_every_linear_with_every_precision_but_one_bf16(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import train_throughput
    assert train_throughput.variants("both", "both", "auto") == [("aten", "fp32"), ("conv", "fp32"), ("aten", "bf16")]
    assert train_throughput.variants("conv", "default", "auto") == [("conv", "auto")]          # measured on the model
    assert train_throughput.variants("both", "fp32", "auto") == [("aten", "fp32"), ("conv", "fp32")]
    assert train_throughput.variants("both", "auto", "fp32") == [("aten", "auto"), ("conv", "auto")]


@needs_data
def test_profile_step_shares_add_up():
    records, summary = run("profile_step.py", "--model", "classifier", "--steps", "1", "--rows", "5")
    (r,) = records
    assert len(r["top"]) == 5 and 0 < sum(r["top"].values()) <= 1.0001 and 0 < r["matmul_share"] < 1
    assert r["ms_per_step"] > 0 and "per step" in summary


@needs_data
def test_sample_throughput_covers_every_sampler():
    records, summary = run("sample_throughput.py", "--n", "10")
    assert {(r["model"], r["sampler"], r["steps"]) for r in records} >= {
        ("transformer", "ddpm", 10), ("transformer", "ddim", 10), ("latent", "ddim", 50), ("latent", "ddpm", 1000)}
    fp32 = [r for r in records if r["precision"] == "fp32"]          # and, where bf16 runs, each again in bf16
    assert sum(r["default"] for r in fp32) == len(GENERATORS) and all(r["images_per_s"] > 0 for r in records)
    assert {r["model"] for r in records} == set(GENERATORS) and "default" in summary


def test_train_throughput_all_measures_every_recipe(monkeypatch):
    """`--model all` starts one measurement per recipe, and one per attention for a model that chooses its own
    (the measurements themselves are replaced by processes that print nothing)."""
    monkeypatch.syspath_prepend(str(BENCH))
    import train_throughput
    commands = []

    def fake_run(cmd, **kw):
        commands.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, stdout="", stderr="")

    monkeypatch.setattr(train_throughput.subprocess, "run", fake_run)
    monkeypatch.setattr(sys, "argv", ["train_throughput.py", "--model", "all", "--steps", "1", "--repeats", "1"])
    train_throughput.main()
    started = [(c[c.index("--model") + 1], c[c.index("--attention") + 1] if "--attention" in c else None)
               for c in commands]
    assert started == train_throughput.measurements()
    assert {kind for kind, _ in started} == set(RECIPES)
    for kind, recipe in RECIPES.items():
        attentions = {a for k, a in started if k == kind}
        assert attentions == ({"linear", "softmax"} if "attention" in recipe.config else {None}), kind


def test_sample_throughput_times_every_generator_with_settings_it_takes(monkeypatch):
    """Every generator is timed at its default and at settings its samplers accept (the bundled weights are loaded;
    the sampling itself is replaced by a check of the settings)."""
    from fashiondiff.generation import check_settings
    monkeypatch.syspath_prepend(str(BENCH))
    import sample_throughput
    timed = []

    def fake_generate(model, labels, settings, *args, **kw):
        check_settings(model, settings)                  # the sampler and the steps fit the model
        timed.append((model, settings, len(labels)))
        return torch.zeros(len(labels), 1, model.image_size, model.image_size)

    monkeypatch.setattr(sample_throughput, "generate", fake_generate)
    monkeypatch.setattr(sys, "argv", ["sample_throughput.py", "--n", "10", "--device", "cpu"])
    sample_throughput.main()
    assert {type(m) for m, _, _ in timed} == {RECIPES[name].model for name in GENERATORS}
    for name in GENERATORS:
        settings = [s for m, s, _ in timed if type(m) is RECIPES[name].model]
        model = next(m for m, _, _ in timed if type(m) is RECIPES[name].model)
        assert model.sampling in settings and set(samplers_for(model.process)) == {s.sampler for s in settings}, name


def test_kl_sweep_adds_new_betas_to_an_earlier_sweep_and_skips_done_ones(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import kl_sweep
    trained = []

    def fake_point(beta, vae_steps, unet_steps, out, n):
        trained.append(beta)
        return {"beta": beta, "vae_steps": vae_steps, "unet_steps": unet_steps, "vae": {"recon_ratio": 2.0}, "wall_time_s": {},
                "samples": {"fid": 10 * beta, "real_fid": 1.0, "cond_acc": 0.9}}

    monkeypatch.setattr(kl_sweep, "point", fake_point)
    for betas in ("1e-3,1e-2", "1e-2,1e-4"):
        monkeypatch.setattr(sys, "argv", ["kl_sweep.py", "--betas", betas, "--out", str(tmp_path)])
        kl_sweep.main()
    assert trained == [1e-3, 1e-2, 1e-4]                                  # 1e-2 was not trained twice
    rec = json.loads((tmp_path / "kl_sweep.json").read_text())
    assert [p["beta"] for p in rec["points"]] == [1e-4, 1e-3, 1e-2] and len(rec["runs"]) == 2
    assert all("git_commit" in p for p in rec["points"])


@needs_data
def test_train_throughput_compares_linear_layers_interleaved():
    records, summary = run("train_throughput.py", "--model", "classifier", "--steps", "1", "--repeats", "2",
                           "--linear", "both", "--precision", "fp32")
    assert [r["linear"] for r in records] == ["aten", "conv"] and all(r["interleaved"] for r in records)
    assert records[0]["flops_per_image"] == records[1]["flops_per_image"]       # the same products, either way
    assert "interleaved" in summary


def test_classifier_guidance_record_holds_every_point_with_its_calls_counted_as_the_samplers_count_them():
    """The stored record (benchmarks/classifier_guidance.py) covers the script's points at n = 2,000, and each
    point's network calls are what ``generation.network_calls`` counts for its settings (a guided step two calls)."""
    from fashiondiff.generation import network_calls
    sys.path.insert(0, str(BENCH))
    import classifier_guidance
    rec = json.loads((BENCH / "records" / "classifier_guidance.json").read_text())
    assert rec["n"] == 2000
    assert [(p["method"], p["steps"], p["guidance"], p["classifier_scale"]) for p in rec["points"]] == \
        [tuple(q) for q in classifier_guidance.POINTS]
    model = RECIPES["transformer"].build(layers=1, dim=32, ff_dim=32, heads=2)
    for p in rec["points"]:
        settings = model.sampling.replace(steps=p["steps"], eta=0.0, guidance=p["guidance"], guidance_interval=None)
        assert p["network_calls"] == network_calls(model, settings)
        assert p["classifier_gradients"] == (p["steps"] if p["classifier_scale"] else 0)


def _check_editing_record(rec: dict) -> None:
    """What holds of any run of benchmarks/editing.py, whatever its n: the points its sections promise, each at the
    stated n; SDEdit's start level noisier and the edit further from its input as the strength grows; the known
    pixels of an inpainting exactly the input's, at r network calls a step but the last (replace: as many as a
    whole run of the sampler); inversion closer to the input at its most steps than at its fewest."""
    n = rec["n"]
    sd = rec["sdedit"]
    assert [q["strength"] for q in sd] == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    assert all(q["n"] == n["sdedit"] for q in sd) and rec["sdedit_real"]["n"] == n["sdedit"]
    edits = sd[1:]
    assert [q["start_index"] for q in edits] == list(range(9, -1, -1))
    assert all(a["sigma0"] < b["sigma0"] for a, b in zip(edits, edits[1:]))
    assert sd[0]["rmse"] == 0 and all(a["rmse"] < b["rmse"] for a, b in zip(sd, sd[1:]))
    assert all(a["calls"] < b["calls"] for a, b in zip(sd, sd[1:])) and sd[-1]["calls"] == 15
    for model, size in (("transformer", n["inpaint"]), ("latent", n["inpaint_latent"])):
        rows = [q for q in rec["inpaint"] if q["model"] == model]
        assert {(q["mask"], q["resample"]) for q in rows} == {(m, r) for m in ("left half", "top half", "centre box")
                                                              for r in (0, 1, 2, 4)}
        assert all(q["n"] == size and q["known_max_error"] == 0 for q in rows)
    for model, mask in {(q["model"], q["mask"]) for q in rec["inpaint"]}:
        calls = {q["resample"]: q["calls"] for q in rec["inpaint"] if (q["model"], q["mask"]) == (model, mask)}
        # every step but the last r times over; the last, to sigma = 0, once (twice where guided)
        assert any(all(calls[r] - last == r * (calls[1] - last) for r in (2, 4)) for last in (1, 2)), calls
    assert {q["calls"] for q in rec["inpaint"] if q["model"] == "transformer" and q["resample"] == 1} == {sd[-1]["calls"]}
    for model in ("flow", "latent"):
        curve = [q for q in rec["invert"] if q["model"] == model and q["guidance"] == 1.0]
        assert [q["steps"] for q in curve] == sorted(q["steps"] for q in curve) and len(curve) >= 2
        assert curve[-1]["rmse"] < curve[0]["rmse"] and all(q["n"] == n["invert"] for q in curve)
    assert [q["model"] for q in rec["invert"]].count("transformer") == 2
    assert {q["how"] for q in rec["interpolate"]} == {"slerp of inverted noises", "straight line of inverted noises",
                                                      "pixel average", "real images (floor)"}
    assert all(q["n_pairs"] == n["interpolate_pairs"] for q in rec["interpolate"])
    assert 0.5 < rec["interpolate_noise_norm_ratio"] < 1                 # a straight line's midpoint is shorter
    assert rec["git_commit"] and rec["hardware"]["cores"] and rec["wall_time_s"] > 0


@needs_data
def test_editing_quick_writes_a_record_of_every_section_and_its_figures(tmp_path):
    records, summary = run("editing.py", "--quick", "--out", str(tmp_path / "editing.json"))
    rec = json.loads((tmp_path / "editing.json").read_text())
    assert rec["quick"] and rec["n"]["sdedit"] == 20
    _check_editing_record(rec)
    assert len(records) == len(rec["sdedit"]) + len(rec["inpaint"]) + len(rec["invert"]) + len(rec["interpolate"])
    assert all((tmp_path / f"editing_{name}.png").stat().st_size > 10_000 for name in ("sdedit", "inpaint", "inversion"))
    assert "SDEdit" in summary and "wall time" in summary


def test_the_editing_record_holds_the_stated_n_and_curves_the_maths_orders():
    rec = json.loads((BENCH / "records" / "editing.json").read_text())
    assert not rec["quick"] and rec["n"]["sdedit"] >= 1000
    _check_editing_record(rec)
    curve = [q for q in rec["invert"] if q["model"] == "flow"]
    assert [q["rmse"] for q in curve] == sorted((q["rmse"] for q in curve), reverse=True)   # more steps, less error
    for name in rec["figures"]:
        path = BENCH.parent / name
        assert 10_000 < path.stat().st_size < 110_000, name
