"""The recipes (fashiondiff.recipes) reproduce what is bundled: `fashiondiff train NAME` with no training flags has
each bundled model's training settings, model config and default sampling; the VAE's training ends with fitted latent
statistics, which the latent model's training requires; and the recipes' helpers."""
from dataclasses import asdict

import pytest
import torch

from conftest import needs_data
from fashiondiff.checkpoint import CONFIG, load_json
from fashiondiff.pipelines import bundled, load_model, record
from fashiondiff.recipes import RECIPES
from fashiondiff.training import TrainConfig

BUNDLED = [name for name in RECIPES if (bundled(name) / "record.json").is_file()]
N_TRAIN = 60_000                       # Fashion-MNIST's training images: what an epoch counts
# Length is compared in steps; checkpoint_every and log_every change when files are written, not the weights; and
# precision is how this machine does the arithmetic, like the device: a bf16 run's weights differ from an fp32
# run's by rounding (tests/test_training.py), and a record says which precision its run took.
IGNORED = {"epochs", "max_steps", "checkpoint_every", "log_every", "precision"}


def test_every_model_is_bundled_with_a_record():
    assert set(BUNDLED) == set(RECIPES)


@pytest.mark.parametrize("name", BUNDLED)
def test_the_recipes_training_settings_are_the_bundled_runs(name):
    r, ran = RECIPES[name], TrainConfig(**record(name)["train"])
    assert r.train.total_steps(N_TRAIN) == ran.total_steps(N_TRAIN), name
    mine = {k: v for k, v in asdict(r.train).items() if k not in IGNORED}
    assert mine == {k: v for k, v in asdict(ran).items() if k not in IGNORED}


@pytest.mark.parametrize("name", BUNDLED)
def test_the_recipes_model_config_and_sampling_are_the_bundled_ones(name):
    r, saved = RECIPES[name], load_json(bundled(name) / CONFIG)
    changes = {}
    if name == "latent":                           # the VAE's part comes from the VAE it is trained on
        vae = saved["config"]["vae"]
        changes = dict(vae=vae, unet={**r.config["unet"], "latent_channels": vae["latent_channels"]})
    assert r.build(**changes).config == load_model(name, device="cpu").config    # defaults filled in alike
    if r.is_generator:
        assert saved["sampling"] == r.sampling.to_dict()


def test_the_recipes_own_options_are_the_bundled_runs():
    """The VAE trained at the recipe's beta; the latent model on the VAE that is bundled."""
    assert float(record("vae")["options"]["kl_weight"]) == RECIPES["vae"].config["beta"]
    from fashiondiff.checkpoint import load_tensors
    vae = load_tensors(bundled("vae") / "model.safetensors")
    latent = load_tensors(bundled("latent") / "model.safetensors")
    for key, value in vae.items():
        torch.testing.assert_close(latent[f"vae.{key}"], value, rtol=0, atol=0)


@needs_data
def test_training_the_vae_ends_with_fitted_latent_statistics_and_latent_refuses_a_vae_without(tmp_path):
    from fashiondiff.runs import run
    rec = run("vae", tmp_path / "vae", dict(max_steps=2, batch_size=32), device="cpu", progress=False, measure=False)
    assert rec["metrics"] == {}
    from fashiondiff.checkpoint import load_module
    from fashiondiff.vae import VAE
    vae = load_module(VAE, tmp_path / "vae", "vae")
    assert vae.latent_stats_fitted                                 # fitted although nothing was measured

    vae.latent_scale.fill_(1.0), vae.latent_mean.zero_()          # as a VAE saved before fitting
    from fashiondiff.checkpoint import save_weights
    save_weights(tmp_path / "unfitted", vae, "vae", vae.config)
    r = RECIPES["latent"]
    with pytest.raises(ValueError, match="no fitted latent statistics"):
        r.setup(r, torch.device("cpu"), vae_weights=tmp_path / "unfitted")


def test_random_shifts_move_each_image_by_whole_pixels_and_fill_with_black():
    from fashiondiff.recipes import shift
    x = torch.rand(64, 1, 6, 6) * 2 - 1
    out = shift(x, 2, torch.Generator().manual_seed(0))
    seen = set()
    for a, b in zip(x, out):
        padded = torch.nn.functional.pad(a, (2, 2, 2, 2), value=-1.0)                  # (1, 10, 10)
        hits = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                if torch.equal(b, padded[:, 2 - dy:8 - dy, 2 - dx:8 - dx])]
        assert len(hits) == 1                                                           # exactly one shift explains it
        seen.add(hits[0])
    assert len(seen) > 10                                                               # and the shifts vary
    assert torch.equal(shift(x, 0, torch.Generator()), x)
