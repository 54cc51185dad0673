"""The command line: bad input exits with status 2 and one line; good input writes what it says."""
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import needs_data


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "fashiondiff", *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize("args, message", [
    (["generate", "transformer", "--classes", "Sneakers", "--out", "x.png"], "did you mean 'Sneaker'"),
    (["generate", "transformer", "--n-per-class", "0", "--out", "x.png"], "--n-per-class"),
    (["generate", "transformer", "--n-per-class", "-3", "--out", "x.png"], "--n-per-class"),
    (["generate", "transformer", "--steps", "0", "--out", "x.png"], "--steps"),
    (["generate", "transformer", "--steps", "11", "--out", "x.png"], "--steps"),
    (["generate", "transformer", "--guidance", "-1", "--out", "x.png"], "--guidance"),
    (["generate", "transformer", "--out", "no/such/folder/x.png"], "does not exist"),
    (["generate", "transformer", "--out", "x.jpg"], "unknown extension"),
    (["generate", "transformer", "--weights", "no_such_dir", "--out", "x.png"], "does not exist"),
    (["evaluate", "transformer", "--n", "1"], "--n must be at least 2"),
    (["train", "transformer", "--max-steps", "0"], "must be positive"),
    (["train", "nonsense"], "invalid choice"),
    (["generate", "transformer", "--sampler", "nonsense", "--out", "x.png"], "invalid choice"),
    (["generate", "transformer", "--sampler", "euler", "--out", "x.png"], "this model samples with ddpm or ddim"),
    (["generate", "latent", "--sampler", "heun", "--out", "x.png"], "this model samples with ddpm or ddim"),
    (["generate", "transformer", "--sampler", "euler", "--eta", "0.5", "--out", "x.png"], "--eta applies to the ddim"),
    (["train", "transformer", "--prediction", "x1", "--max-steps", "1"], "--prediction must be one of x0, eps, v"),
    (["train", "transformer", "--loss-weighting", "snr", "--max-steps", "1"], "--loss-weighting must be one of"),
    (["train", "flow", "--prediction", "eps", "--max-steps", "1"], "--prediction only applies to `train transformer`"),
    (["generate", "transformer", "--guidance-interval", "6,1", "--out", "x.png"],
     "--guidance-interval needs 0 <= lo <= hi (noise levels sigma)"),
    (["generate", "transformer", "--guidance-interval", "0.5", "--out", "x.png"], "expected LO,HI"),
    (["evaluate", "classifier", "--steps", "3"], "--steps applies to generators only"),
    (["generate", "latent", "--steps", "1001", "--out", "x.png"], "--steps"),
    (["generate", "latent", "--eta", "1.5", "--out", "x.png"], "--eta must be between 0 and 1"),
    (["generate", "latent", "--sampler", "ddpm", "--eta", "0.5", "--out", "x.png"], "--eta applies to the ddim sampler only"),
    (["evaluate", "latent", "--guidance", "-0.5"], "--guidance"),
    (["train", "transformer", "--vae-weights", "somewhere", "--max-steps", "1"], "--vae-weights only applies"),
    (["train", "latent", "--vae-weights", "no_such_dir", "--max-steps", "1"], "does not exist"),
    (["train", "transformer", "--kl-weight", "1e-3", "--max-steps", "1"], "--kl-weight only applies to `train vae`"),
    (["train", "vae", "--kl-weight", "-1", "--max-steps", "1"], "must be >= 0"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, args, message):
    r = run(*args, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr
    assert not list(tmp_path.iterdir()), "nothing may be written"


def test_weights_of_the_wrong_model_are_refused(tmp_path):
    from fashiondiff.pipelines import bundled
    r = run("generate", "transformer", "--weights", str(bundled("classifier")), "--out", "x.png", cwd=tmp_path)
    assert r.returncode == 2 and "holds 'classifier' weights, not 'transformer'" in r.stderr


def test_truncated_weights_are_refused(tmp_path):
    import shutil
    from fashiondiff.pipelines import bundled
    folder = tmp_path / "w"
    shutil.copytree(bundled("transformer"), folder)
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    r = run("generate", "transformer", "--weights", str(folder), "--out", str(tmp_path / "x.png"))
    assert r.returncode == 2 and "truncated" in r.stderr and not (tmp_path / "x.png").exists()


def test_generate_npz_holds_what_was_asked(tmp_path):
    out = tmp_path / "s.npz"
    r = run("generate", "transformer", "--classes", "sneaker,Bag", "--n-per-class", "3", "--out", str(out))
    assert r.returncode == 0, r.stderr
    z = np.load(out)
    assert z["images"].dtype == np.uint8 and z["images"].shape == (6, 16, 16)
    assert z["labels"].dtype == np.int64 and z["labels"].tolist() == [7, 7, 7, 8, 8, 8]


def test_generate_progression_png(tmp_path):
    out = tmp_path / "fashion_mnist_generation.png"
    r = run("generate", "transformer", "--progression", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@needs_data
def test_evaluate_classifier_json():
    r = run("evaluate", "classifier", "--json")
    assert r.returncode == 0, r.stderr
    scores = json.loads(r.stdout)
    assert scores["accuracy"] >= 0.93 and scores["accuracy_16"] >= 0.9


@needs_data
def test_evaluate_transformer_json_small():
    r = run("evaluate", "transformer", "--n", "100", "--json")
    assert r.returncode == 0, r.stderr
    scores = json.loads(r.stdout)
    assert {"fid", "real_fid", "ratio", "cond_acc", "n", "sampler", "steps", "guidance"} <= set(scores)
    assert {"kid", "kid_std", "real_kid", "precision", "recall"} <= set(scores)
    assert scores["n"] == 100 and scores["steps"] == 10
    # the samples' precision (a share in [0, 1]) is not overwritten by the arithmetic's (auto: fp32 or bf16)
    assert 0 <= scores["precision"] <= 1 and scores["network_precision"] in ("fp32", "bf16")


def test_generate_latent_npz_holds_28x28_images(tmp_path):
    out = tmp_path / "s.npz"
    r = run("generate", "latent", "--classes", "sneaker", "--n-per-class", "2", "--steps", "10", "--out", str(out))
    assert r.returncode == 0, r.stderr
    z = np.load(out)
    assert z["images"].dtype == np.uint8 and z["images"].shape == (2, 28, 28)
    assert z["labels"].tolist() == [7, 7]


@needs_data
def test_evaluate_latent_json_reports_the_sampling_settings():
    r = run("evaluate", "latent", "--n", "100", "--steps", "10", "--eta", "0.5", "--guidance-interval", "0.5,inf",
            "--json")
    assert r.returncode == 0, r.stderr
    scores = json.loads(r.stdout)
    assert {"fid", "real_fid", "ratio", "cond_acc", "n", "sampler", "steps", "guidance", "eta"} <= set(scores)
    assert (scores["n"], scores["steps"], scores["eta"], scores["sampler"]) == (100, 10, 0.5, "ddim")
    assert scores["guidance"] == 3.0 and scores["guidance_interval"] == [0.5, None]     # the default's w, kept


def test_a_vae_given_to_the_latent_generator_is_refused(tmp_path):
    from fashiondiff.pipelines import bundled
    r = run("generate", "latent", "--weights", str(bundled("vae")), "--out", "x.png", cwd=tmp_path)
    assert r.returncode == 2 and "holds 'vae' weights, not 'latent'" in r.stderr
    assert "Traceback" not in r.stderr and not list(tmp_path.iterdir())
