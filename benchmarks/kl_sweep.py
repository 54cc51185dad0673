"""How the latent pipeline's quality moves with the VAE's KL weight (beta): for each beta, train a VAE, train the
latent UNet on it, and score both, with the course's own commands.

    python benchmarks/kl_sweep.py [--betas 1e-4,1e-3,1e-2] [--vae-steps 800] [--unet-steps 1000] [--out runs/kl_sweep]

Each point runs

    fashiondiff train vae --kl-weight BETA --max-steps S1 --out OUT/beta_BETA/vae        (its record: recon. metrics)
    fashiondiff train latent --vae-weights OUT/beta_BETA/vae --max-steps S2 --no-eval --out OUT/beta_BETA/latent
    fashiondiff evaluate latent --weights OUT/beta_BETA/latent --n 2000 --json          (the default sampler)

The runs are shorter than the bundled recipe (7 VAE epochs = 3,276 steps, 20 UNet epochs = 4,680 steps), so the
absolute figures are worse than the bundled pipeline's; the comparison between betas at equal training is the point.
Prints one JSON line per beta and writes all of them, with the commands, commit and wall times, to OUT/kl_sweep.json.
When OUT already holds a sweep, new betas are added to it and the ones it has (at the same lengths) are skipped.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


# the checkout this script lives in, not whichever fashiondiff is installed: its records name this commit
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fashiondiff.devices import pick_device
from fashiondiff.provenance import git_commit, hardware


def fashiondiff(*args: str) -> tuple[dict, float, str]:
    """Run ``python -m fashiondiff ARGS``; (its last JSON line, wall seconds, the command)."""
    cmd = [sys.executable, "-m", "fashiondiff", *args]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    line = [s for s in out.splitlines() if s.startswith("{")][-1]
    return json.loads(line), round(time.perf_counter() - t0, 1), "fashiondiff " + " ".join(args)


def point(beta: float, vae_steps: int, unet_steps: int, out: Path, n: int) -> dict:
    folder = out / f"beta_{beta:g}"
    _, vae_s, vae_cmd = fashiondiff("train", "vae", "--kl-weight", f"{beta:g}", "--max-steps", str(vae_steps),
                                      "--no-progress", "--out", str(folder / "vae"))
    _, unet_s, unet_cmd = fashiondiff("train", "latent", "--vae-weights", str(folder / "vae"), "--max-steps",
                                      str(unet_steps), "--no-eval", "--no-progress", "--out", str(folder / "latent"))
    ev, eval_s, eval_cmd = fashiondiff("evaluate", "latent", "--weights", str(folder / "latent"), "--n", str(n), "--json")
    record = json.loads((folder / "vae" / "record.json").read_text())
    return {"beta": beta, "vae_steps": vae_steps, "unet_steps": unet_steps,
            "vae": record["metrics"], "samples": ev,
            "wall_time_s": {"vae_training": record["wall_time_s"], "vae_command": vae_s, "unet_command": unet_s,
                            "evaluate": eval_s},
            "commands": [vae_cmd, unet_cmd, eval_cmd]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--betas", default="1e-4,1e-3,1e-2", help="comma-separated KL weights")
    p.add_argument("--vae-steps", type=int, default=800)
    p.add_argument("--unet-steps", type=int, default=1000)
    p.add_argument("--n", type=int, default=2000, help="samples per evaluation")
    p.add_argument("--out", type=Path, default=Path("runs/kl_sweep"))
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    path = a.out / "kl_sweep.json"                          # an earlier sweep in OUT: add to it, skip its betas
    results = json.loads(path.read_text()) if path.exists() else {"benchmark": "kl_sweep", "runs": [], "points": []}
    results["runs"].append({"command": "python benchmarks/kl_sweep.py " + " ".join(sys.argv[1:]), "git_commit": git_commit(),
                            "hardware": hardware(pick_device("cpu"))})
    done = {(p["beta"], p["vae_steps"], p["unet_steps"]) for p in results["points"]}
    for beta in (float(b) for b in a.betas.split(",")):
        if (beta, a.vae_steps, a.unet_steps) in done:
            continue
        r = {**point(beta, a.vae_steps, a.unet_steps, a.out, a.n), "git_commit": results["runs"][-1]["git_commit"]}
        results["points"] = sorted(results["points"] + [r], key=lambda p: p["beta"])
        path.write_text(json.dumps(results, indent=1))
        print(json.dumps({"beta": beta, **{k: r["samples"].get(k) for k in ("fid", "real_fid", "cond_acc")},
                          "recon": r["vae"], "wall_time_s": r["wall_time_s"]}), flush=True)
    for r in results["points"]:
        s = r["samples"]
        print(f"beta {r['beta']:g}: samples fid/real_fid {s['fid'] / s['real_fid']:.2f}, accuracy {s['cond_acc']:.3f}")


if __name__ == "__main__":
    main()
