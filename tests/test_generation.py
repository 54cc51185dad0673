"""Generators and the sampler table: every registered generator satisfies the interface on its own, every row of
the table runs its own loop and refuses another process's, and guidance intervals in sigma guide the steps the old
timestep intervals guided."""
import math
import re

import pytest
import torch

from fashiondiff.generation import Generator, check_settings, generate, network_calls, step_names
from fashiondiff.recipes import GENERATORS, RECIPES
from fashiondiff.sampling import SAMPLERS, SamplingConfig, SettingError, samplers_for
from fashiondiff.schedule import NoiseSchedule


def small(name):
    """The recipe's generator, untrained (the latent model with a tiny VAE config of its own)."""
    r = RECIPES[name]
    if name == "latent":
        vae = dict(latent_channels=4, widths=(8, 8, 8))
        return r.build(vae=vae, unet={**r.config["unet"], "widths": (8, 16, 16), "latent_channels": 4}).eval()
    return r.build().eval()


@pytest.mark.parametrize("name", GENERATORS)
def test_every_generator_satisfies_the_interface_on_its_own(name):
    model = small(name)
    assert isinstance(model, Generator)
    assert model.sampling == RECIPES[name].sampling                        # built with its default, not patched on
    assert SAMPLERS[model.sampling.sampler].process == model.process
    assert (model.schedule is None) == (model.process == "flow")
    images, xs = generate(model, torch.arange(2), model.sampling.replace(steps=2), trajectory=True)
    assert images.shape == (2, 1, model.image_size, model.image_size)
    assert len(xs) == len(step_names(model, model.sampling.replace(steps=2)))
    for other in set(SAMPLERS) - set(samplers_for(model.process)):
        with pytest.raises(SettingError) as e:
            check_settings(model, SamplingConfig(other, 2))
        assert e.value.field == "sampler"


def test_the_table_covers_both_processes_and_each_loop_refuses_what_it_does_not_implement():
    """A loop handed another row's settings raises instead of silently running its own update."""
    assert set(samplers_for("diffusion")) == {"ddpm", "ddim", "edm-heun", "dpm++2m"}
    assert set(samplers_for("flow")) == {"euler", "heun", "consistency", "dpm++2m-flow"}
    models = {"diffusion": small("transformer"), "flow": small("flow")}
    for name, row in SAMPLERS.items():
        for other in SAMPLERS.values():
            if other.loop is not row.loop:
                with pytest.raises(ValueError, match=f"implements .*not '{re.escape(name)}'"):
                    other.loop(models[other.process], torch.arange(2), SamplingConfig(name, 2),
                               torch.Generator().manual_seed(0))


def test_a_fixed_eta_is_the_rows_and_ddims_is_a_choice():
    for name, row in SAMPLERS.items():
        assert SamplingConfig(name).eta == (1.0 if row.fixed_eta is None else row.fixed_eta)
    assert SamplingConfig("ddim", eta=0.3).replace(sampler="euler").eta == 0.0
    assert SamplingConfig("euler").replace(sampler="ddim").eta == 1.0


def test_a_diffusion_models_sigma_is_the_noise_of_x_over_sqrt_abar():
    """x_t / sqrt(abar_t) = x0 + sigma_t eps with sigma_t = sqrt((1 - abar_t) / abar_t)."""
    s = NoiseSchedule(1000, "linear")
    x0, eps = torch.randn(4, 1, 2, 2, dtype=torch.float64), torch.randn(4, 1, 2, 2, dtype=torch.float64)
    for t in (1, 250, 1000):
        x_t = s.q_sample(x0, torch.full((4,), t), eps)
        torch.testing.assert_close(x_t / s.abar[t].sqrt(), x0 + s.sigma(t) * eps)
    assert s.sigma(0) == 0.0


# What each bundled setting guided before the unit changed: the model, its steps, the interval in the old units
# (timesteps; for the flow thousandths of t) and the interval in sigma that replaced it.
CONVERTED = [
    ("transformer", 10, (3, 7), (0.5, 2.0)), ("transformer", 10, (1, 6), (0.0, 1.5)),
    ("transformer", 10, (3, 8), (0.5, 4.0)), ("transformer", 4, (3, 7), (0.5, 2.0)),
    ("latent", 25, (1, 400), (0.0, 2.0)), ("latent", 25, (1, 500), (0.0, 4.0)),
    ("latent", 25, (100, 600), (0.35, 6.0)), ("latent", 25, (200, 700), (0.7, 12.0)),
    ("flow", 10, (300, 700), (0.4, 2.5)),
]


def guided_before(model, steps, old):
    """The network evaluations the old rule guided: lo <= t <= hi on timesteps (flow: on round(1000 t))."""
    if model.process == "flow":
        grid = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64).tolist()[:-1]
        return [old[0] <= round(t * 1000) <= old[1] for t in grid]
    return [old[0] <= t <= old[1] for t in model.schedule.timesteps(steps)]


@pytest.mark.parametrize("name, steps, old, new", CONVERTED)
def test_a_converted_interval_guides_exactly_the_steps_it_guided(name, steps, old, new):
    model = small(name)
    settings = model.sampling.replace(steps=steps, guidance=2.0, guidance_interval=new)
    levels = SAMPLERS[settings.sampler].noise_levels(model, steps)
    now = [settings.guidance_at(sigma) == 2.0 for sigma in levels]
    assert now == guided_before(model, steps, old) and any(now) and not all(now)


def test_every_interval_of_the_recipes_and_bundled_records_is_a_converted_one():
    """The defaults and sweeps name only intervals whose steps the test above checked."""
    from fashiondiff.pipelines import bundled, record
    checked = {(name, new) for name, _, _, new in CONVERTED}
    for name in GENERATORS:
        r = RECIPES[name]
        rows = [r.sampling] + [r.sampling.replace(**changes) for changes in r.sweep]
        if (bundled(name) / "record.json").is_file():
            m = record(name)["metrics"]
            rows += [SamplingConfig(**{k: row[k] for k in ("sampler", "steps", "guidance", "guidance_interval", "eta")})
                     for row in [m["sampling"], *m["sweep"]]]
        for s in rows:
            assert s.guidance_interval is None or (name, s.guidance_interval) in checked, (name, s)


def test_an_open_upper_end_reaches_pure_noise_and_survives_json():
    s = SamplingConfig("euler", 4, guidance=2.0, guidance_interval=(0.5, None))
    assert s.guidance_interval == (0.5, math.inf) and s.guidance_at(math.inf) == 2.0 and s.guidance_at(0.4) == 1.0
    assert SamplingConfig(**s.to_dict()) == s and s.to_dict()["guidance_interval"] == [0.5, None]
    assert network_calls(small("flow"), s) == 2 + 2 + 2 + 1     # t = 1, 0.75 (sigma 3) and 0.5 (1) guided; 0.25 not
