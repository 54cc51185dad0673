"""The course website (issue #18): `bash docs/build` builds it from the notebooks' stored outputs, with the network
refused to the build process, and headless Chromium then reads every page from disk (file://) the way a learner opens
docs/_build/html/index.html:

- every page loads with no console error and no request leaving the machine (anything but file: and data: is
  blocked and reported), and nothing in the HTML or CSS points at an outside resource;
- every notebook page has the figures the notebook stores (loaded, non-zero size), a still for each widget, the
  exercise hints as working <details>, its maths rendered (MathML, no $$ or TeX left in the text), a table of contents,
  and links to its notebook file and to the package modules it imports;
- the "next" links visit the landing page and the notebooks in course order, and "previous" walks back;
- no internal link or anchor is broken.

Screenshots of the landing page and of one notebook page are saved in ``test-artifacts/`` (or
``$FASHIONDIFF_ARTIFACTS``). The build runs in a temporary folder, so docs/_build is left alone. The browser tests need
the ``playwright`` package and a system Chromium, like tests/test_browser.py, and are skipped with the reason where
either is missing.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(p for p in (ROOT / "notebooks").glob("*.ipynb") if re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", p.name))
ARTIFACTS = Path(os.environ.get("FASHIONDIFF_ARTIFACTS", ROOT / "test-artifacts"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
IMAGE_TYPES = ("image/png", "image/jpeg", "image/svg+xml")
LOCAL_SCHEMES = ("file", "data", "about", "blob")

try:
    from playwright.sync_api import sync_playwright
except ImportError:                                              # pragma: no cover - depends on the machine
    sync_playwright = None

# Loaded by the build's Python through PYTHONPATH: any attempt to resolve a name or open a connection fails the build.
NO_NETWORK = '''
import pathlib, socket
def _refuse(*args, **kwargs):
    raise OSError("docs/build tried to use the network; the site must build offline")
socket.socket.connect = socket.socket.connect_ex = _refuse
socket.create_connection = socket.getaddrinfo = socket.gethostbyname = _refuse
pathlib.Path(__file__).with_name("guard-was-loaded").touch()
'''


def _notebook(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _markdown(nb: dict) -> str:
    return "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")


def _outputs(nb: dict) -> list[dict]:
    return [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]


def _expected(path: Path) -> dict:
    """What the page of one notebook must show, read from the notebook itself."""
    nb = _notebook(path)
    outputs = _outputs(nb)
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    modules = set(re.findall(r"^\s*from\s+fashiondiff\.(\w+)", code, re.MULTILINE))
    modules |= set(re.findall(r"^\s*import\s+fashiondiff\.(\w+)", code, re.MULTILINE))
    for names in re.findall(r"^[ \t]*from[ \t]+fashiondiff[ \t]+import[ \t]+(\([^)]*\)|[^\n#;]+)", code, re.MULTILINE):
        modules |= {n.split()[0] for n in names.strip("() \t\n").split(",") if n.split()}
    return {
        "images": sum(any(t in o.get("data", {}) for t in IMAGE_TYPES) and WIDGET_VIEW not in o.get("data", {})
                      for o in outputs),
        "widgets": sum(WIDGET_VIEW in o.get("data", {}) for o in outputs),
        "details": len(re.findall(r"<details\b", _markdown(nb))),
        "has_maths": "$" in re.sub(r"`[^`\n]*`|```.*?```", "", _markdown(nb), flags=re.DOTALL),
        "modules": {m for m in modules if (ROOT / "fashiondiff" / f"{m}.py").is_file()},
    }


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """`bash docs/build --strict --out TMP` (a warning fails it), the network refused to it; returns (the site's
    folder, the build's output)."""
    out = tmp_path_factory.mktemp("site") / "html"
    guard = tmp_path_factory.mktemp("no_network")
    (guard / "sitecustomize.py").write_text(NO_NETWORK)
    env = {**os.environ, "PYTHON": sys.executable,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(guard), os.environ.get("PYTHONPATH")]))}
    started = time.time()
    build = subprocess.run(["bash", str(ROOT / "docs" / "build"), "--strict", "--out", str(out)], env=env,
                           capture_output=True, text=True, timeout=600)
    seconds = time.time() - started
    assert build.returncode == 0, f"docs/build failed:\n{build.stdout}\n{build.stderr}"
    assert (guard / "guard-was-loaded").exists(), "the no-network guard was not loaded by the build"
    print(f"built in {seconds:.1f} s: {build.stdout.strip()}")
    return out, build.stdout + build.stderr


def test_the_site_builds_offline_from_the_stored_notebooks(site):
    out, log = site
    assert NOTEBOOKS, "no notebooks"
    assert "warning:" not in log, log                       # --strict fails the build too
    assert (out / "index.html").is_file()
    for path in NOTEBOOKS:
        assert (out / f"{path.stem}.html").is_file(), f"no page for {path.name}"
        # the notebook file the page links to is the stored notebook itself: nothing was re-run or rewritten
        assert (out / "notebooks" / path.name).read_bytes() == path.read_bytes()


def _pages(out: Path) -> list[Path]:
    return sorted(out.rglob("*.html"))


def test_nothing_points_outside_the_site(site):
    """No page or style sheet asks for a resource from elsewhere: no CDN script, font, style or image."""
    from bs4 import BeautifulSoup

    out, _ = site
    remote = re.compile(r"^\s*(?:[a-z][a-z0-9+.-]*:)?//", re.IGNORECASE)
    found = []
    for page in _pages(out):
        soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
        for tag in soup.find_all(["script", "link", "img", "iframe", "source", "video", "audio", "embed", "object"]):
            for attr in ("src", "href", "data", "srcset"):
                if tag.get(attr) and remote.match(tag[attr]):
                    found.append(f"{page.name}: <{tag.name} {attr}={tag[attr]!r}>")
        for style in soup.find_all("style"):
            found += [f"{page.name}: {u}" for u in re.findall(r"url\(\s*['\"]?((?:[a-z]+:)?//[^)'\"]*)", style.text)]
    for css in out.rglob("*.css"):
        text = css.read_text(encoding="utf-8")
        found += [f"{css.name}: {u}" for u in re.findall(r"url\(\s*['\"]?((?:[a-z]+:)?//[^)'\"]*)", text)]
        found += [f"{css.name}: @import" for _ in re.findall(r"@import", text)]
    assert not found, found


def test_no_broken_internal_link(site):
    from bs4 import BeautifulSoup

    out, _ = site
    ids: dict[Path, set[str]] = {}

    def ids_of(page: Path) -> set[str]:
        if page not in ids:
            soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
            ids[page] = {t["id"] for t in soup.find_all(id=True)}
        return ids[page]

    broken, checked = [], 0
    for page in _pages(out):
        soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
        for tag, attr in [(a, "href") for a in soup.find_all("a", href=True)] + \
                         [(t, "src") for t in soup.find_all(["img", "script"], src=True)] + \
                         [(t, "href") for t in soup.find_all("link", href=True)]:
            url = tag[attr]
            if re.match(r"^[a-z][a-z0-9+.-]*:", url, re.IGNORECASE):
                continue                                          # data:, and any link to another site
            checked += 1
            path, _, fragment = url.partition("#")
            target = (page.parent / unquote(path)).resolve() if path else page
            if not target.is_file() or out.resolve() not in target.parents:
                broken.append(f"{page.relative_to(out)}: {url}")
            elif fragment and target.suffix == ".html" and fragment not in ids_of(target):
                broken.append(f"{page.relative_to(out)}: {url} (no such anchor)")
    assert checked > len(NOTEBOOKS) * 10
    assert not broken, broken


def test_landing_page_says_what_the_course_is_and_how_to_start(site):
    from bs4 import BeautifulSoup

    out, _ = site
    text = (out / "index.html").read_text(encoding="utf-8")
    words = " ".join(BeautifulSoup(text, "html.parser").get_text().split())
    for needed in ("Track 1", "Track 2", "Sampling faster, and measuring", "What you need", 'pip install -e ".[dev]" && jupyter lab notebooks/',
                   "conda env create -f environment.yml && conda activate fashiondiff && jupyter lab notebooks/"):
        assert needed in words, needed
    for path in NOTEBOOKS:
        assert f'href="{path.stem}.html"' in text, f"the landing page does not list {path.name}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_page_links_to_its_file_and_modules(site, path):
    out, _ = site
    text = (out / f"{path.stem}.html").read_text(encoding="utf-8")
    assert f'href="notebooks/{path.name}"' in text
    for module in _expected(path)["modules"]:
        assert f'href="fashiondiff/{module}.py.html"' in text, f"no link to fashiondiff/{module}.py"
        assert (out / "fashiondiff" / f"{module}.py.html").is_file()


# --------------------------------------------------------------------------------------------------- in a browser

class Browser:
    """One Chromium page that records console errors and every request that is not local (and blocks it)."""

    def __init__(self, playwright):
        self.browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        self.context = self.browser.new_context(viewport={"width": 1400, "height": 950})
        self.errors: list[str] = []
        self.outside: list[str] = []
        self.context.route(re.compile(r"^(?!file:|data:|about:|blob:)"), self._block)
        self.page = self.context.new_page()
        self.page.on("console", lambda m: self.errors.append(f"{self.page.url}: {m.text}") if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"{self.page.url}: {e}"))
        self.page.on("request", self._seen)

    def _block(self, route):
        self.outside.append(route.request.url)
        route.abort()

    def _seen(self, request):
        if urlparse(request.url).scheme not in LOCAL_SCHEMES and request.url not in self.outside:
            self.outside.append(request.url)

    def open(self, url: str):
        self.page.goto(url, wait_until="load")
        return self.page

    def close(self):
        self.browser.close()


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("no system Chromium (Debian: apt-get install chromium)")
    if sync_playwright is None:
        pytest.skip("the playwright package is not installed (pip install playwright)")
    with sync_playwright() as p:
        b = Browser(p)
        yield b
        b.close()


PAGE_FACTS = """() => {
  document.querySelectorAll('details').forEach(d => d.open = true);
  const visible = el => { const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
  const imgs = [...document.querySelectorAll('main img')];
  const prose = document.querySelector('main').cloneNode(true);
  prose.querySelectorAll('pre, code, math, .highlight').forEach(e => e.remove());
  return {
    outputImages: document.querySelectorAll('main .jp-RenderedImage img').length,
    widgetStills: document.querySelectorAll('main .widget-still').length,
    widgetNotes: [...document.querySelectorAll('main .widget-still')].filter(w => w.textContent.includes('jupyter lab notebooks/')).length,
    brokenImages: imgs.filter(i => !(i.complete && i.naturalWidth > 0 && visible(i))).map(i => i.getAttribute('src')),
    images: imgs.length,
    maths: document.querySelectorAll('main math').length,
    invisibleMaths: [...document.querySelectorAll('main math')].filter(m => !visible(m)).map(m => m.getAttribute('alttext')),
    mathErrors: [...document.querySelectorAll('.math-error')].map(e => e.textContent),
    text: prose.innerText,
    details: [...document.querySelectorAll('main details')].map(d => visible(d) && d.innerText.length > d.querySelector('summary').innerText.length),
    toc: [...document.querySelectorAll('nav.toc a')].map(a => a.getAttribute('href')),
    title: document.title,
  };
}"""


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_page_in_the_browser(site, browser, path):
    out, _ = site
    expected = _expected(path)
    before = len(browser.errors)
    facts = browser.open((out / f"{path.stem}.html").as_uri()).evaluate(PAGE_FACTS)
    assert browser.errors[before:] == [], "console errors"
    assert browser.outside == [], "requests that left the machine"
    assert facts["outputImages"] == expected["images"], "the page does not show every stored figure"
    assert facts["brokenImages"] == [], "images that did not load, or have no size"
    assert facts["widgetStills"] == expected["widgets"] == facts["widgetNotes"], "each widget: a still and a note"
    assert facts["details"] == [True] * expected["details"], "exercise hints (<details>) missing, or empty when opened"
    assert facts["toc"], "no table of contents"
    if expected["has_maths"]:
        assert facts["maths"] > 0, "no rendered maths"
    assert facts["invisibleMaths"] == [] and facts["mathErrors"] == []
    leftover = re.findall(r"\$\$|\$[^$\s][^$\n]*\$|\\(?:frac|alpha|beta|sqrt|mathcal|mathbb|hat|bar|sum|mid)\b",
                          facts["text"])
    assert leftover == [], f"raw TeX left in the text: {leftover[:5]}"


def test_landing_and_module_pages_in_the_browser(site, browser):
    out, _ = site
    pages = [out / "index.html"] + sorted((out / "fashiondiff").glob("*.html"))
    for page in pages:
        before = len(browser.errors)
        facts = browser.open(page.as_uri()).evaluate(PAGE_FACTS)
        assert browser.errors[before:] == [], f"console errors on {page.name}"
        assert facts["brokenImages"] == []
    assert browser.outside == [], "requests that left the machine"


def test_next_and_previous_follow_the_course_order(site, browser):
    out, _ = site
    order = ["index.html"] + [f"{p.stem}.html" for p in NOTEBOOKS]
    page = browser.open((out / "index.html").as_uri())
    sidebar = page.eval_on_selector_all("nav.course-nav a", "as => as.map(a => a.getAttribute('href'))")
    assert sidebar == order, "the sidebar does not list the pages in course order"
    visited = [Path(urlparse(page.url).path).name]
    while page.locator("a[rel=next]").count():
        with page.expect_navigation():
            page.locator("a[rel=next]").click()
        visited.append(Path(urlparse(page.url).path).name)
        assert len(visited) <= len(order), visited
    assert visited == order
    back = [visited[-1]]
    while page.locator("a[rel=prev]").count():
        with page.expect_navigation():
            page.locator("a[rel=prev]").click()
        back.append(Path(urlparse(page.url).path).name)
        assert len(back) <= len(order), back
    assert back == order[::-1]
    assert browser.outside == []


def test_screenshots(site, browser):
    """The landing page, whole, and the top of the first notebook page with both figures and maths."""
    out, _ = site
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.open((out / "index.html").as_uri()).screenshot(path=str(ARTIFACTS / "site_landing.png"), full_page=True)
    shown = next((p for p in NOTEBOOKS if _expected(p)["images"] and _expected(p)["has_maths"]), NOTEBOOKS[0])
    page = browser.open((out / f"{shown.stem}.html").as_uri())
    page.screenshot(path=str(ARTIFACTS / "site_notebook.png"))
    assert (ARTIFACTS / "site_landing.png").stat().st_size > 10_000
    assert (ARTIFACTS / "site_notebook.png").stat().st_size > 10_000
