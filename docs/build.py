"""Build the course website from the notebooks as they are stored: nothing is executed and nothing is downloaded.

    bash docs/build                 # -> docs/_build/html/index.html
    bash docs/build --out DIR       # somewhere else

What it makes (every link relative, so the folder opens from disk or from any static host):

    index.html                      the landing page: docs/index.md, then every notebook in course order
    NN_topic.html                   one page per notebooks/NN_topic.ipynb, found by name (00, 01, ...), with its stored
                                    outputs, a table of contents, previous/next links, links to the notebook file and to
                                    the package modules it imports
    notebooks/NN_topic.ipynb        a copy of each notebook (the "notebook file" link)
    fashiondiff/X.py(.html)         a copy of each package module a notebook imports, and its highlighted source page
    _images/, _static/              figures extracted from the outputs; the style sheets

How: nbconvert renders the cells (its "lab" cell markup, our own page template and CSS in docs/templates and
docs/static). Maths is turned into MathML here, at build time, by latex2mathml, and browsers draw MathML themselves, so
the site needs no MathJax, no CDN and no JavaScript at all. Widgets cannot run without a kernel: each is drawn from the
widget state stored in the notebook (images, labels, the controls' values) with a note on how to run it live.
"""
from __future__ import annotations

import argparse
import base64
import html
import json
import re
import shutil
import sys
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

try:
    import jinja2
    import nbformat
    from bs4 import BeautifulSoup
    from latex2mathml.converter import convert as latex_to_mathml
    from nbconvert import HTMLExporter
    from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath
    from nbconvert.preprocessors import ExtractOutputPreprocessor
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer
except ImportError as e:                                          # pragma: no cover - depends on the environment
    sys.exit(f"docs/build: {e}. Install the development extras first: pip install -e \".[dev]\"")

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
NOTEBOOK_NAME = re.compile(r"(\d\d)_([a-z0-9_]+)\.ipynb")
MARKER = ".fashiondiff-site"                                       # marks a folder this script may wipe and rebuild
RUN_LIVE = "jupyter lab notebooks/"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"

warnings: list[str] = []


def warn(message: str) -> None:
    warnings.append(message)
    print(f"docs/build: warning: {message}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------------------------------
# Maths: TeX -> MathML at build time
# ---------------------------------------------------------------------------------------------------------------------

# JupyterLab's own way to find the maths in a markdown cell before the markdown is parsed (removeMath in
# @jupyterlab/rendermime's latex.ts, ported): $...$, $$...$$, \(...\), \[...\] and \begin{env}...\end{env}, with braces
# balanced, never across a blank line, never inside `code`. So a cell reads here as it reads in JupyterLab, including
# maths inside raw HTML such as the <details> hints.
_MATH_SPLIT = re.compile(r"(\$\$?|\\(?:begin|end)\{[a-z]*\*?\}|\\[{}$]|[{}]|(?:\n\s*)+|@@\d+@@|\\\\(?:\(|\)|\[|\]))",
                         re.IGNORECASE)


def remove_math(text: str) -> tuple[str, list[str]]:
    """``text`` with each piece of maths replaced by ``@@n@@``, and the pieces (delimiters included)."""
    math: list[str] = []
    if "`" in text or "~~~" in text:                              # hide $ inside code from the splitter
        text = text.replace("~", "~T")
        text = re.sub(r"^(?P<fence>`{3,}|(?:~T){3,})[^`\n]*\n[\s\S]*?^(?P=fence)`*$",
                      lambda m: m.group(0).replace("$", "~D"), text, flags=re.MULTILINE)
        text = re.sub(r"(^|[^\\])(`+)([^\n]*?[^`\n])\2(?!`)",
                      lambda m: m.group(0).replace("$", "~D"), text, flags=re.MULTILINE)

        def detilde(s: str) -> str:
            return re.sub(r"~([TD])", lambda m: "~" if m.group(1) == "T" else "$", s)
    else:
        def detilde(s: str) -> str:
            return s

    blocks = _MATH_SPLIT.split(text.replace("\r\n", "\n").replace("\r", "\n"))
    start = end = last = None
    braces = 0

    def take(i: int, j: int) -> None:
        piece = "".join(blocks[i:j + 1])
        for k in range(i + 1, j + 1):
            blocks[k] = ""
        blocks[i] = f"@@{len(math)}@@"
        math.append(detilde(piece))

    i = 1
    while i < len(blocks):
        block = blocks[i]
        if block.startswith("@"):                                 # text that looks like a placeholder: keep it as is
            blocks[i] = f"@@{len(math)}@@"
            math.append(block)
        elif start is not None:
            if block == end:
                if braces:
                    last = i
                else:
                    take(start, i)
                    start = end = last = None
            elif re.search(r"\n.*\n", block):                      # a blank line ends any maths
                if last is not None:
                    i = last
                    take(start, i)
                start = end = last = None
                braces = 0
            elif block == "{":
                braces += 1
            elif block == "}" and braces:
                braces -= 1
        elif block in ("$", "$$"):
            start, end, braces = i, block, 0
        elif block in ("\\\\(", "\\\\["):
            start, end, braces = i, "\\\\)" if block.endswith("(") else "\\\\]", 0
        elif block[1:6] == "begin":
            start, end, braces = i, "\\end" + block[6:], 0
        i += 2
    if start is not None and last is not None:
        take(start, last)
    return detilde("".join(blocks)), math


_VARIANT_NAMES = {"bold": "BOLD", "italic": "ITALIC", "bold-italic": "BOLD ITALIC", "script": "SCRIPT",
                  "bold-script": "BOLD SCRIPT", "fraktur": "FRAKTUR", "bold-fraktur": "BOLD FRAKTUR",
                  "double-struck": "DOUBLE-STRUCK", "sans-serif": "SANS-SERIF", "bold-sans-serif": "SANS-SERIF BOLD",
                  "sans-serif-italic": "SANS-SERIF ITALIC", "monospace": "MONOSPACE"}
_LETTERLIKE = {"FRAKTUR": "BLACK-LETTER"}                          # the holes in the Unicode maths alphabets


def _styled(char: str, style: str) -> str | None:
    """``char`` in a Unicode mathematical alphabet (script N -> U+1D4A9), or None where there is none."""
    try:
        name = unicodedata.name(char)
    except ValueError:
        return None
    m = re.fullmatch(r"(?:LATIN|GREEK) (CAPITAL|SMALL) LETTER (\w+)|DIGIT (\w+)", name)
    if not m:
        return None
    tail = f"DIGIT {m.group(3)}" if m.group(3) else f"{m.group(1)} {m.group(2)}"
    for candidate in (f"MATHEMATICAL {style} {tail}", f"{_LETTERLIKE.get(style, style)} {tail}",
                      "PLANCK CONSTANT" if (style, tail) == ("ITALIC", "SMALL H") else ""):
        try:
            return unicodedata.lookup(candidate)
        except KeyError:
            continue
    return None


def _fix_variants(mathml: str) -> str:
    """Chromium draws MathML Core, which ignores mathvariant other than "normal": write \\mathcal N as the character
    U+1D4A9 itself (and likewise bold, fraktur, double-struck ...), which every browser shows."""
    def fix(m: re.Match) -> str:
        tag, before, variant, after, text = m.groups()
        style = _VARIANT_NAMES.get(variant)
        chars = html.unescape(text)
        styled = [_styled(c, style) for c in chars] if style else [None]
        if None in styled:
            return m.group(0)
        return f"<{tag}{before}{after}>{''.join(styled)}</{tag}>"
    return re.sub(r'<(mi|mn|mtext)([^>]*?) mathvariant="([a-z-]+)"([^>]*)>([^<]*)</\1>', fix, mathml)


def tex_to_mathml(piece: str) -> str:
    """One piece from remove_math (delimiters included) as a <math> element; on failure, the TeX in a marked <code>."""
    if piece.startswith("$$") or piece.startswith("\\\\["):
        body, display = piece[2:-2] if piece.startswith("$$") else piece[3:-3], True
    elif piece.startswith("$") or piece.startswith("\\\\("):
        body, display = piece[1:-1] if piece.startswith("$") else piece[3:-3], False
    else:                                                        # \begin{env} ... \end{env}
        body, display = piece, True
    body = body.strip()
    try:
        mathml = latex_to_mathml(body, display="block" if display else "inline")
    except Exception as e:                                        # noqa: BLE001 - any converter failure is reported
        warn(f"maths not converted ({type(e).__name__}: {e}): {piece[:80]!r}")
        return f'<code class="math-error" title="maths the site could not render">{html.escape(piece)}</code>'
    mathml = _fix_variants(mathml)
    return mathml.replace("<math ", f'<math alttext="{html.escape(body)}" ', 1)


def render_markdown(source: str, attachments: dict | None = None) -> str:
    """Markdown as JupyterLab shows it (nbconvert's parser and heading anchors), its maths as MathML."""
    text, math = remove_math(source)
    renderer = IPythonRenderer(escape=False, attachments=attachments or {}, anchor_link_text="¶")
    out = MarkdownWithMath(renderer=renderer).render(text)

    def as_text(m: re.Match) -> str:                             # inside a tag (a heading's id): the TeX as text
        return html.escape(math[int(m.group(1))].strip("$"))

    def put_back(m: re.Match) -> str:
        piece = math[int(m.group(1))]
        return piece if piece.startswith("@@") else tex_to_mathml(piece)
    out = re.sub(r"<[^>]*>", lambda tag: re.sub(r"@@(\d+)@@", as_text, tag.group(0)), out)
    return re.sub(r"@@(\d+)@@", put_back, out)


# ---------------------------------------------------------------------------------------------------------------------
# Widgets: a still of the stored state
# ---------------------------------------------------------------------------------------------------------------------

def _format_number(value, fmt: str) -> str:
    try:
        return format(value, fmt or "")
    except (TypeError, ValueError):
        return str(value)


class WidgetStill:
    """Draws a widget from the state a notebook stores (metadata.widgets): boxes, images, labels, the output widget's
    stored outputs, and each control as a disabled form element showing its stored value."""

    def __init__(self, state: dict, save_image):
        self.models = state.get("state", {})
        self.save_image = save_image                              # (bytes, extension) -> relative URL

    def __call__(self, output) -> str:
        model_id = output.get("data", {}).get(WIDGET_VIEW, {}).get("model_id")
        if model_id in self.models:
            inner = self.draw(model_id)
            what = "A still of this interactive widget, as it was saved with the notebook."
        else:
            inner = ""
            what = "An interactive widget was here; its state was not saved with the notebook."
        return (f'<figure class="widget-still">{inner}<figcaption class="widget-note">{what} Widgets need a running '
                f'kernel: to use it, run <code>{RUN_LIVE}</code> and run this notebook.</figcaption></figure>')

    def draw(self, model_id: str, depth: int = 0) -> str:
        model = self.models.get(model_id)
        if model is None or depth > 20:
            return ""
        name, s = model.get("model_name", ""), model.get("state", {})
        label = html.escape(str(s.get("description", "")))
        label_html = f'<span class="widget-label">{label}</span>' if label else ""
        children = s.get("children", [])
        if isinstance(children, str):                               # very old state: a repr of the list
            children = re.findall(r"IPY_MODEL_\w+", children)
        if name.endswith("BoxModel") or name in ("AccordionModel", "TabModel", "StackModel"):
            kind = "hbox" if name == "HBoxModel" else "vbox"
            inner = "".join(self.draw(c.removeprefix("IPY_MODEL_"), depth + 1) for c in children)
            return f'<div class="widget-{kind}">{inner}</div>'
        if name == "ImageModel":
            data = next((b["data"] for b in model.get("buffers", []) if b.get("path") == ["value"]), None)
            if data is None and isinstance(s.get("value"), str):
                data = s["value"]
            if not data:
                return ""
            fmt = s.get("format", "png")
            src = self.save_image(base64.b64decode(data), "jpg" if fmt == "jpeg" else fmt)
            size = "".join(f' {k}="{html.escape(str(s[k]))}"' for k in ("width", "height") if s.get(k))
            return f'<img class="widget-image" src="{src}" alt="the widget\'s picture as saved"{size}>'
        if name == "OutputModel":
            return f'<div class="widget-output">{"".join(self.draw_output(o) for o in s.get("outputs", []))}</div>'
        if name in ("LabelModel", "HTMLModel", "HTMLMathModel", "ValidModel"):
            value = str(s.get("value", ""))
            value = value if name != "LabelModel" else html.escape(value)
            return f'<div class="widget-text">{label_html}<span>{value}</span></div>'
        if "_options_labels" in s:                                  # Dropdown, Select, RadioButtons, ToggleButtons
            options = s.get("_options_labels", [])
            index = s.get("index")
            picked = set(index if isinstance(index, (list, tuple)) else [index])
            opts = "".join(f"<option{' selected' if i in picked else ''}>{html.escape(str(o))}</option>"
                           for i, o in enumerate(options))
            return f'<label class="widget-control">{label_html}<select disabled>{opts}</select></label>'
        if "Slider" in name or "Progress" in name:
            value = s.get("value")
            if isinstance(value, list):                              # a range slider
                shown = " – ".join(_format_number(v, s.get("readout_format", "")) for v in value)
                value = value[0]
            else:
                shown = _format_number(value, s.get("readout_format", ""))
            return (f'<label class="widget-control">{label_html}<input type="range" disabled min="{s.get("min", 0)}" '
                    f'max="{s.get("max", 100)}" step="{s.get("step", 1) or "any"}" value="{value}">'
                    f'<output>{html.escape(shown)}</output></label>')
        if name in ("CheckboxModel", "ToggleButtonModel"):
            checked = " checked" if s.get("value") else ""
            return f'<label class="widget-control"><input type="checkbox" disabled{checked}>{label_html}</label>'
        if name == "ButtonModel":
            return f'<button class="widget-button" disabled>{label or "button"}</button>'
        if "value" in s and not isinstance(s["value"], (dict, list)):
            return (f'<label class="widget-control">{label_html}<input type="text" disabled '
                    f'value="{html.escape(str(s["value"]))}"></label>')
        if name in ("LayoutModel",) or name.endswith("StyleModel"):
            return ""
        return f'<span class="widget-unknown">[{html.escape(name.removesuffix("Model"))}]</span>'

    def draw_output(self, output: dict) -> str:
        data = output.get("data", {})
        for mime, ext in (("image/png", "png"), ("image/jpeg", "jpg")):
            if mime in data:
                src = self.save_image(base64.b64decode(data[mime]), ext)
                return f'<img class="widget-image" src="{src}" alt="the widget\'s output as saved">'
        if "image/svg+xml" in data:
            svg = data["image/svg+xml"]
            return self.save_image_svg("".join(svg) if isinstance(svg, list) else svg)
        if "text/html" in data:
            return "".join(data["text/html"])
        text = output.get("text") if output.get("output_type") == "stream" else data.get("text/plain")
        if text:
            return f"<pre>{html.escape(''.join(text))}</pre>"
        return ""

    def save_image_svg(self, svg: str) -> str:
        src = self.save_image(svg.encode(), "svg")
        return f'<img class="widget-image" src="{src}" alt="the widget\'s output as saved">'


# ---------------------------------------------------------------------------------------------------------------------
# The course: notebooks, their titles and the package modules they use
# ---------------------------------------------------------------------------------------------------------------------

@dataclass
class Notebook:
    path: Path
    number: str
    slug: str                                                     # "fashion_mnist" for 00_fashion_mnist.ipynb
    title: str = ""                                               # plain text, for <title>
    title_html: str = ""                                          # with its maths, for links
    summary_html: str = ""
    modules: list[str] = field(default_factory=list)              # "fashiondiff/data.py", in order of first import
    new_modules: list[str] = field(default_factory=list)          # those no earlier notebook imports

    @property
    def page(self) -> str:
        return self.path.stem + ".html"

    @property
    def href(self) -> str:
        return self.page


def find_notebooks() -> list[Notebook]:
    found = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        m = NOTEBOOK_NAME.fullmatch(path.name)
        if m:
            found.append(Notebook(path, m.group(1), m.group(2)))
        else:
            warn(f"{path.relative_to(ROOT)} is not named NN_topic.ipynb: left out of the site")
    return found


_IMPORT = re.compile(r"^[ \t]*(?:from[ \t]+fashiondiff\.(\w+)(?:\.\w+)*[ \t]+import\b"
                     r"|from[ \t]+fashiondiff[ \t]+import[ \t]+(\([^)]*\)|[^\n#;]+)"
                     r"|import[ \t]+fashiondiff\.(\w+))", re.MULTILINE)


def module_file(name: str) -> str | None:
    for candidate in (f"fashiondiff/{name}.py", f"fashiondiff/{name}/__init__.py"):
        if (ROOT / candidate).is_file():
            return candidate
    return None


def imported_modules(nb) -> list[str]:
    """The package modules a notebook imports (`from fashiondiff.X import ...`, `from fashiondiff import X, Y`,
    `import fashiondiff.X`), as repository paths, in the order of their first import."""
    names: list[str] = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for m in _IMPORT.finditer(cell.source):
            if m.group(2):                                        # from fashiondiff import a, b as c, (d, e)
                found = [part.split()[0] for part in m.group(2).strip("() \t\n").split(",") if part.split()]
            else:
                found = [m.group(1) or m.group(3)]
            names += [n for n in found if n and n not in names]
    return [f for f in map(module_file, names) if f]


def inline_markdown(text: str) -> str:
    """One line of markdown (a title) as inline HTML, its maths as MathML."""
    out = render_markdown(text).strip()
    return re.sub(r"^<p>(.*)</p>$", r"\1", out, flags=re.DOTALL)


def first_heading_and_summary(nb) -> tuple[str, str]:
    """The first markdown heading (the page's title) and the first paragraph after it (the landing page's summary)."""
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        m = re.search(r"^#\s+(.+)$", cell.source, re.MULTILINE)
        if not m:
            continue
        rest = cell.source[m.end():].strip()
        paragraph = re.split(r"\n\s*\n", rest)[0] if rest else ""
        summary = render_markdown(paragraph) if paragraph else ""
        return m.group(1).strip(), summary
    return "", ""


# ---------------------------------------------------------------------------------------------------------------------
# Pages
# ---------------------------------------------------------------------------------------------------------------------

class SiteExporter(HTMLExporter):
    """nbconvert's HTML exporter with our cell template (docs/templates/nbconvert/site) and our markdown filter."""

    @jinja2.pass_context
    def markdown2html(self, context, source):                      # replaces nbconvert's (which leaves $...$ for MathJax)
        cell = context.get("cell", {})
        return render_markdown(source, cell.get("attachments", {}))


def make_exporter(widget_still) -> SiteExporter:
    exporter = SiteExporter(template_name="site", extra_template_basedirs=[str(DOCS / "templates" / "nbconvert")])
    exporter.register_filter("widget_still", widget_still)
    exporter.register_filter("tex_to_mathml", lambda tex: tex_to_mathml(tex if tex.lstrip().startswith(("$", "\\"))
                                                                           else f"$${tex}$$"))
    return exporter


def slugify(text: str) -> str:
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


def tidy(body_html: str, pages_by_notebook: dict[str, str], page_modules: dict[str, str]) -> tuple[str, list[dict]]:
    """Unique, readable heading ids; links to other notebooks and to package files pointed at their pages; the table of
    contents (h2/h3, and any h1 after the first) as a list of {level, id, html}."""
    soup = BeautifulSoup(body_html, "html.parser")
    site_pages = {"index.html", *pages_by_notebook.values(), *page_modules.values()}
    used: set[str] = set()
    toc = []
    first_h1 = True
    for h in soup.find_all(["h1", "h2", "h3", "h4", "h5", "h6"]):
        anchor = h.find("a", class_="anchor-link")
        label = BeautifulSoup("".join(str(c) for c in h.contents if c is not anchor), "html.parser")
        base = slugify(label.get_text())
        new_id, n = base, 1
        while new_id in used:
            n += 1
            new_id = f"{base}-{n}"
        used.add(new_id)
        h["id"] = new_id
        if anchor is not None:
            anchor["href"] = f"#{new_id}"
            anchor["aria-label"] = "link to this section"
        if h.name == "h1" and first_h1:
            first_h1 = False
            continue
        if h.name in ("h1", "h2", "h3"):
            toc.append({"level": 1 if h.name in ("h1", "h2") else 2, "id": new_id, "html": str(label).strip()})
    for a in soup.find_all("a", href=True):
        href = a["href"]
        if re.match(r"^[a-z][a-z0-9+.-]*:|^#|^//", href):
            continue
        target, _, fragment = href.partition("#")
        name = Path(target).name
        if target in site_pages:
            continue
        if name in pages_by_notebook:
            a["href"] = pages_by_notebook[name] + (f"#{fragment}" if fragment else "")
        elif target.lstrip("./").startswith("fashiondiff/") and target.lstrip("./") in page_modules:
            a["href"] = page_modules[target.lstrip("./")]
        elif target:
            warn(f"a link to {href!r} points outside the site")
    for img in soup.find_all("img"):
        if img.get("alt") in (None, "No description has been provided for this image"):
            img["alt"] = "a figure from the notebook's stored output"
    return str(soup), toc


def write_module_page(env, common: dict, out: Path, module: str, users: list[Notebook]) -> None:
    source = (ROOT / module).read_text(encoding="utf-8")
    (out / module).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ROOT / module, out / module)
    formatter = HtmlFormatter(linenos="inline", lineanchors="L", anchorlinenos=True, wrapcode=True)
    depth = "../" * module.count("/")
    html_page = env.get_template("module.html.j2").render(
        module=module, code=highlight(source, PythonLexer(), formatter), users=users, title=module,
        page_kind="module", toc=None, current=None, prev=None, next=None, root=depth, **common)
    (out / (module + ".html")).write_text(html_page, encoding="utf-8")


def build(out: Path) -> int:
    started = time.time()
    if out.exists():
        if any(out.iterdir()) and not (out / MARKER).exists():
            sys.exit(f"docs/build: {out} exists and was not made by this script; choose another --out or remove it")
        shutil.rmtree(out)
    (out / "_static").mkdir(parents=True)
    (out / MARKER).write_text("made by docs/build; the whole folder is replaced on each build\n")

    notebooks = find_notebooks()
    if not notebooks:
        sys.exit("docs/build: no notebooks/NN_topic.ipynb found")
    contents = {nb.path: nbformat.read(nb.path, as_version=4) for nb in notebooks}
    seen: set[str] = set()
    for nb in notebooks:
        title, nb.summary_html = first_heading_and_summary(contents[nb.path])
        nb.title_html = inline_markdown(title or nb.path.stem)
        nb.title = BeautifulSoup(nb.title_html, "html.parser").get_text()
        nb.modules = imported_modules(contents[nb.path])
        nb.new_modules = [m for m in nb.modules if m not in seen]
        seen.update(nb.modules)
    modules = sorted(seen)
    page_modules = {m: m + ".html" for m in modules}
    pages_by_notebook = {nb.path.name: nb.page for nb in notebooks}

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(DOCS / "templates"), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True)
    common = dict(notebooks=notebooks, run_live=RUN_LIVE, site_title="fashiondiff",     # what every page needs
                  tagline="a notebook-first course on diffusion models")

    # static files
    for f in (DOCS / "static").iterdir():
        shutil.copyfile(f, out / "_static" / f.name)
    (out / "_static" / "pygments.css").write_text(HtmlFormatter(style="default").get_style_defs(".highlight"))

    # the landing page
    landing_md = (DOCS / "index.md").read_text(encoding="utf-8")
    slugs = {nb.slug: nb for nb in notebooks}

    def nb_link(m: re.Match) -> str:
        text, slug = m.group(1), m.group(2)
        if slug not in slugs:                                       # a notebook renamed: say so, link to the list
            warn(f"docs/index.md links to nb:{slug}, but there is no notebooks/NN_{slug}.ipynb")
            return f"[{text or slug}](#the-notebooks)"
        return f"[{text or slugs[slug].title}]({slugs[slug].page})"
    landing_md = re.sub(r"\[([^\]]*)\]\(nb:([a-z0-9_]+)\)", nb_link, landing_md)
    landing_body, landing_toc = tidy(render_markdown(landing_md), pages_by_notebook, page_modules)
    landing_toc.append({"level": 1, "id": "the-notebooks", "html": "The notebooks"})
    landing_toc.append({"level": 1, "id": "the-package", "html": "The package"})
    users = {m: [nb for nb in notebooks if m in nb.modules] for m in modules}
    landing = {"href": "index.html", "title_html": "Start here"}
    page = env.get_template("index.html.j2").render(
        body=landing_body, toc=landing_toc, next=notebooks[0], prev=None, current=None, title="fashiondiff",
        page_kind="landing", modules=modules, module_users=users, root="", **common)
    (out / "index.html").write_text(page, encoding="utf-8")

    # one page per notebook
    (out / "notebooks").mkdir()
    for i, nb in enumerate(notebooks):
        shutil.copyfile(nb.path, out / "notebooks" / nb.path.name)
        images = out / "_images" / nb.path.stem
        images.mkdir(parents=True)
        counter = iter(range(10**6))

        def save_image(data: bytes, ext: str, images=images, counter=counter) -> str:
            name = f"widget_{next(counter)}.{ext}"
            (images / name).write_bytes(data)
            return f"_images/{images.name}/{name}"

        state = contents[nb.path].metadata.get("widgets", {}).get(WIDGET_STATE, {})
        still = WidgetStill(state, save_image)
        for cell in contents[nb.path].cells:                    # a widget whose state was not saved: say so
            for output in cell.get("outputs", []):
                view = output.get("data", {}).get(WIDGET_VIEW)
                if view is not None and view.get("model_id") not in still.models:
                    output["data"] = {"text/html": still(output)}
        exporter = make_exporter(still)
        extract = ExtractOutputPreprocessor(output_filename_template="output_{cell_index}_{index}{extension}")
        resources = {"output_files_dir": f"_images/{nb.path.stem}", "outputs": {}}
        notebook, resources = extract.preprocess(contents[nb.path], resources)
        for name, data in resources["outputs"].items():
            (out / name).write_bytes(data)
        body, _ = exporter.from_notebook_node(notebook, resources)
        body, toc = tidy(body, pages_by_notebook, page_modules)
        page = env.get_template("notebook.html.j2").render(
            body=body, toc=toc, nb=nb, current=nb, title=nb.title, page_kind="notebook",
            prev=notebooks[i - 1] if i > 0 else landing, next=notebooks[i + 1] if i + 1 < len(notebooks) else None,
            has_widgets=WIDGET_VIEW in json.dumps([c.get("outputs", []) for c in notebook.cells]),
            root="", **common)
        (out / nb.page).write_text(page, encoding="utf-8")

    # the package modules the notebooks import
    for m in modules:
        write_module_page(env, common, out, m, users[m])

    seconds = time.time() - started
    print(f"docs/build: {len(notebooks)} notebooks, {len(modules)} modules, {len(warnings)} warnings, "
          f"{seconds:.1f} s -> {out / 'index.html'}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Build the course website from the stored notebooks (offline).")
    parser.add_argument("--out", type=Path, default=DOCS / "_build" / "html",
                        help="output folder (default: docs/_build/html); replaced on each build")
    parser.add_argument("--strict", action="store_true", help="exit with status 1 if there was any warning")
    args = parser.parse_args(argv)
    status = build(args.out.resolve())
    return 1 if args.strict and warnings else status


if __name__ == "__main__":
    sys.exit(main())
