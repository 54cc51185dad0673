"""The install files agree with each other, and the committed notebooks are clean runs."""
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parent.parent
CONDA_NAMES = {"pytorch": "torch"}          # conda-forge name -> PyPI name


def _split(req: str) -> tuple[str, str]:
    name, spec = re.match(r"([A-Za-z0-9_.\-]+)\s*(.*)", req.strip()).groups()
    return CONDA_NAMES.get(name.lower(), name.lower()), spec.replace(" ", "")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = dict(_split(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "conda-forge" in env["channels"]
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    have = dict(_split(d) for d in conda if not d.startswith(("python", "pip")))
    assert have == wanted, "environment.yml and pyproject.toml list different packages or bounds"
    assert "-e ." in pip, "environment.yml must install the package itself, editable"


def _release(version: str) -> tuple[int, ...]:
    """(2, 14, 1) for "2.14.1+cu130", "2.14.1rc1" or "2.14.1.dev20250101"."""
    return tuple(int(p) for p in re.match(r"\d+(?:\.\d+)*", version).group().split("."))


def test_no_pin_newer_than_the_local_torch():
    """Every dependency in both install files has a lower bound only (name>=X.Y: no ==, <, ~= or != that would
    refuse a newer release), and torch's lower bound is one the torch running these tests satisfies."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str) and not d.startswith(("python", "pip"))]
    bounds = {}
    for source, reqs in (("pyproject.toml", project["dependencies"] + project["optional-dependencies"]["dev"]),
                         ("environment.yml", conda)):
        for req in reqs:
            name, spec = _split(req)
            assert re.fullmatch(r">=\d+(\.\d+)*", spec), f"{source}: {req!r} must be a lower bound only (name>=X.Y)"
            bounds.setdefault(name, {})[source] = spec[2:]
    assert set(bounds["torch"]) == {"pyproject.toml", "environment.yml"}, "torch must be listed in both files"
    for source, bound in bounds["torch"].items():
        assert _release(torch.__version__) >= _release(bound), f"{source}: torch>={bound}, here {torch.__version__}"


def test_console_script_and_module_entry_point():
    script = Path(sys.executable).parent / "fashiondiff"             # the console script of this environment
    assert script.is_file(), "pip install -e . should have created the `fashiondiff` command"
    for cmd in ([str(script), "--help"], [sys.executable, "-m", "fashiondiff", "--help"]):
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        assert out.returncode == 0 and "train" in out.stdout and "generate" in out.stdout


NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_notebooks_are_numbered_in_order():
    names = [p.name for p in NOTEBOOKS]
    assert names, "no notebooks"
    assert all(re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", n) for n in names), names
    assert [int(n[:2]) for n in names] == list(range(len(names))), "notebooks must be numbered 00, 01, ..."


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_from_one_clean_run(path):
    assert path.stat().st_size < 2_000_000, "notebook larger than 2 MB"
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert [c["execution_count"] for c in code] == list(range(1, len(code) + 1)), "re-run top to bottom and save"
    assert not [o for c in code for o in c["outputs"] if o["output_type"] == "error"], "stored error output"
    assert sum(bool(c["outputs"]) for c in code) >= len(code) // 2, "outputs missing"
    text = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert "Try it" in text, "a lesson ends with 'Try it' exercises"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_figure_a_notebook_draws_is_stored(path):
    """A cell that shows a figure stores it as an image: executing with a non-interactive backend (MPLBACKEND=Agg)
    silently drops every figure, and the website and a learner's first look then show none."""
    nb = json.loads(path.read_text())
    for i, c in enumerate(nb["cells"]):
        if c["cell_type"] == "code" and "plt.show()" in "".join(c["source"]):
            data = [o.get("data", {}) for o in c.get("outputs", [])]
            live = any("application/vnd.jupyter.widget-view+json" in d for d in data)   # a widget draws it live
            assert live or any("image/png" in d for d in data), \
                f"{path.name}: code cell {i} shows a figure but stores no image (re-run without MPLBACKEND=Agg)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_exercise_has_a_collapsed_worked_solution(path):
    """Each numbered "Try it" exercise is followed by a solution cell, hidden in JupyterLab, that nbval runs."""
    nb = json.loads(path.read_text())
    cells = nb["cells"]
    start = next(i for i, c in enumerate(cells) if c["cell_type"] == "markdown" and "## Try it" in "".join(c["source"]))
    exercises = [i for i, c in enumerate(cells[start:], start) if c["cell_type"] == "markdown"
                 and re.search(r"^\d\. \*\*", "".join(c["source"]), re.M)]
    solutions = [i for i, c in enumerate(cells) if "solution" in c.get("metadata", {}).get("tags", [])]
    assert exercises, f"{path.name}: no numbered exercises after 'Try it'"
    for k, i in enumerate(exercises):
        end = exercises[k + 1] if k + 1 < len(exercises) else len(cells)
        mine = [j for j in solutions if i < j < end]
        assert mine, f"{path.name}: exercise in cell {i} has no solution cell before the next exercise"
        for j in mine:
            assert cells[j]["cell_type"] == "code" and cells[j]["metadata"].get("jupyter", {}).get("source_hidden")
            assert cells[j]["outputs"] or cells[j]["execution_count"], f"{path.name}: solution cell {j} never ran"


def test_nothing_imports_upward():
    """The module map in fashiondiff/__init__.py is the import order: each module imports only modules listed before
    it (its own row's earlier modules included), and every module is on the map."""
    import re
    import fashiondiff
    package = Path(fashiondiff.__file__).parent
    rows = re.findall(r"^    [a-z ]{3,17}?\s{2,}(.+(?:\n {22}.+)*)", fashiondiff.__doc__, flags=re.M)
    rows = [re.sub(r"\([^)]*\)", "", row.replace("\n", " ")).split(":")[0] for row in rows]   # names only
    order = [m.strip() for row in rows for m in row.split(",")]
    modules = {p.stem for p in package.glob("*.py")} - {"__init__", "__main__"}
    assert set(order) == modules, set(order) ^ modules
    for i, name in enumerate(order):
        text = (package / f"{name}.py").read_text()
        imported = set(re.findall(r"^from \.(\w+) import", text, flags=re.M))
        imported |= {m for names in re.findall(r"^from \. import ([\w, ]+)", text, flags=re.M)
                     for m in re.split(r",\s*", names.strip())}
        assert imported <= set(order[:i]), (name, imported - set(order[:i]))
