"""The widgets in a real browser: JupyterLab, headless, on a free localhost port; notebook 03 opened in Chromium
through Playwright, all cells run, the timestep slider moved with the keyboard, and the picture checked to change;
likewise part 5's editing panels, from a small notebook written here (no course notebook shows them yet): the
SDEdit strength moved with the keyboard, a cell of the inpainting grid clicked. Screenshots are saved in
``test-artifacts/`` (or ``$FASHIONDIFF_ARTIFACTS``).

Needs the ``playwright`` Python package and a system Chromium (Debian's package ``chromium``, driven through
``executable_path``, so no browser is downloaded); skipped with the reason where either is missing. ``.ci/run``
installs both.
"""
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import needs_data

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "03_ddpm_schedule.ipynb"
ARTIFACTS = Path(os.environ.get("FASHIONDIFF_ARTIFACTS", Path(__file__).resolve().parent.parent / "test-artifacts"))
# No sandbox (CI runs as root), no GPU, nothing that reaches for the network.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:                                          # pragma: no cover - depends on the machine
    sync_playwright = None

pytestmark = [
    needs_data,
    pytest.mark.skipif(CHROMIUM is None, reason="no system Chromium (Debian: apt-get install chromium)"),
    pytest.mark.skipif(sync_playwright is None, reason="the playwright package is not installed (pip install playwright)"),
]

# JupyterLab 4 renders only the cells in view ("windowing"); render them all so the widget exists in the page,
# and do not ask about news.
LAB_SETTINGS = {"@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
                "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                                   "checkForUpdates": False}}
# True once every code cell of the open notebook has run and its kernel is idle.
ALL_CELLS_RAN = """() => {
  const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  if (!panel || !panel.content || !panel.sessionContext) return false;
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  const cells = panel.content.widgets.filter(c => c.model.type === 'code');
  return !!kernel && kernel.status === 'idle' && cells.length > 0 && cells.every(c => c.model.executionCount !== null);
}"""
KERNEL_READY = """() => {
  const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const kernel = panel && panel.sessionContext && panel.sessionContext.session && panel.sessionContext.session.kernel;
  return !!kernel && kernel.status === 'idle';
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def jupyterlab(tmp_path, notebook: Path):
    """JupyterLab serving a copy of ``notebook`` (so nothing in the repository is touched); yields its URL."""
    work = tmp_path / "lab"
    work.mkdir()
    shutil.copy(notebook, work / notebook.name)
    settings = tmp_path / "settings"
    for name, value in LAB_SETTINGS.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    port, token = free_port(), "fashiondiff-test"
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}", "--allow-root",
           "--LabApp.expose_app_in_browser=True"]
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(settings), "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
           "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    log = open(tmp_path / "lab.log", "w")
    proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                pytest.fail("JupyterLab did not start:\n" + (tmp_path / "lab.log").read_text()[-2000:])
            time.sleep(0.5)
    try:
        yield f"{url}/lab/tree/{notebook.name}?token={token}&reset"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def lab(tmp_path):
    """JupyterLab on a copy of notebook 03; yields its URL."""
    with jupyterlab(tmp_path, NOTEBOOK) as url:
        yield url


# Part 5's two panels on the bundled transformer (16x16, 10 steps), as a notebook would show them.
EDITING_CELLS = ["from fashiondiff.pipelines import load_model\n"
                 "from fashiondiff.widgets import InpaintExplorer, SDEditExplorer\n"
                 "model = load_model('transformer', device='cpu')",
                 "sdedit = SDEditExplorer(model, n=4, image=0, label=7, strength=0.5)\nsdedit.widget",
                 "inpaint = InpaintExplorer(model, image=9, shape='centre box')\ninpaint.widget"]


@pytest.fixture
def editing_lab(tmp_path):
    """JupyterLab on a small notebook of the two editing panels, written into ``tmp_path``; yields its URL."""
    import nbformat
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in EDITING_CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "editing_panels.ipynb"
    nbformat.write(nb, path)
    with jupyterlab(tmp_path, path) as url:
        yield url


@contextlib.contextmanager
def notebook_page(url: str, screenshot: str):
    """A headless Chromium page on ``url`` with every cell run; a screenshot of the page is saved at the end
    (passed or failed) as ``screenshot`` in the artifacts folder."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        try:
            page.goto(url)
            page.wait_for_function(KERNEL_READY, timeout=180_000, polling=500)
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            page.wait_for_function(ALL_CELLS_RAN, timeout=600_000, polling=1000)
            yield page
        finally:
            page.screenshot(path=str(ARTIFACTS / screenshot))
            browser.close()


def test_moving_the_timestep_slider_redraws_the_picture(lab):
    with notebook_page(lab, "notebook03_slider.png") as page:
        # the explorer: a VBox with the T and schedule dropdowns, the t slider, a label and the picture
        slider = page.locator(".widget-vbox .widget-hslider").first
        box = slider.locator("xpath=..")
        label = box.locator(".widget-label").filter(has_text=re.compile(r"^t = \d+ of T = ")).first
        picture = box.locator("img").first
        picture.scroll_into_view_if_needed(timeout=60_000)
        before_text, before_png = label.inner_text(), picture.screenshot()
        handle = slider.locator(".noUi-handle").first
        handle.focus()
        for _ in range(3):                                       # three steps of t, with the keyboard
            handle.press("ArrowRight")
        expect(label).not_to_have_text(before_text, timeout=60_000)
        page.wait_for_timeout(1500)                              # the kernel's new picture arrives with the label
        after_text, after_png = label.inner_text(), picture.screenshot()
    t_before, t_after = int(before_text.split()[2]), int(after_text.split()[2])
    assert t_after == t_before + 3, (before_text, after_text)
    assert after_png != before_png, "the picture did not change when the slider moved"


def slider_named(page, name: str):
    """The ipywidgets slider whose description is exactly ``name``."""
    return page.locator(".widget-hslider", has=page.locator(".widget-label", has_text=re.compile(f"^{name}$"))).first


def test_the_editing_panels_redraw_on_the_strength_keys_and_a_grid_click(editing_lab):
    with notebook_page(editing_lab, "editing_panels.png") as page:
        # SDEdit: a VBox with the image and class menus, the strength and seed sliders, the caption, the picture
        strength = slider_named(page, "strength")
        box = strength.locator("xpath=..")
        caption = box.locator(".widget-label").filter(has_text=re.compile(r"^strength \d")).first
        picture = box.locator("img").first
        picture.scroll_into_view_if_needed(timeout=60_000)
        before_text, before_src, before_png = caption.inner_text(), picture.get_attribute("src"), picture.screenshot()
        handle = strength.locator(".noUi-handle").first
        handle.focus()
        for _ in range(2):                                       # two steps of 1 / 10, with the keyboard
            handle.press("ArrowRight")
        # each key is a redraw; the caption of the second comes after its picture
        expect(caption).to_have_text(re.compile(r"^strength 0\.70: the last 7 of 10 steps"), timeout=60_000)
        expect(picture).not_to_have_attribute("src", before_src, timeout=60_000)
        page.wait_for_timeout(500)                               # the new picture decoded and drawn
        after_png = picture.screenshot()
        # inpainting: the VBox of the step slider; click the top-left cell of the grid (fill it too)
        step = slider_named(page, "step")
        inpaint_picture = step.locator("xpath=..").locator("img").first
        cell = page.locator(".widget-toggle-button").first
        cell.scroll_into_view_if_needed(timeout=60_000)
        cell_src, cell_png = inpaint_picture.get_attribute("src"), inpaint_picture.screenshot()
        cell.click()
        expect(cell).to_have_class(re.compile("mod-active"), timeout=60_000)
        expect(inpaint_picture).not_to_have_attribute("src", cell_src, timeout=60_000)
        page.wait_for_timeout(500)
        clicked_png = inpaint_picture.screenshot()
    assert before_text.startswith("strength 0.50: the last 5 of 10 steps"), before_text
    assert after_png != before_png, "the SDEdit picture did not change when the strength moved"
    assert clicked_png != cell_png, "the inpainting picture did not change when a cell was clicked"
