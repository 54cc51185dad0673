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
    _images/, _static/              figures extracted from the outputs; the style sheets and scripts
    _live/                          the live widgets' models, constants and onnxruntime-web (docs/live.py)

How: nbconvert renders the cells (its "lab" cell markup, our own page template and CSS in docs/templates and
docs/static). Maths is turned into MathML here, at build time, by latex2mathml, and browsers draw MathML themselves, so
the site needs no MathJax and no CDN. Each widget is drawn from the widget state stored in the notebook (images, labels,
the controls' values). A widget marked live (``fashiondiff.widgets.live_class``) also gets a live copy: docs/live.py
exports the bundled models to ONNX with their constants into _live/, and static/live.js samples them in the page with
onnxruntime-web, when the site is served over http (read from disk, the still stays). Without onnxruntime-web
installed (``npm ci --prefix docs``, once) the build says so and every widget is a still.
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
SOLUTION_LABEL = "Solution (collapsed: click to open)"                # the <summary> of each folded solution cell
READING_WORDS_PER_MINUTE = 180                                     # prose with maths in it
CODE_LINES_PER_MINUTE = 12                                         # code read, not skimmed

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


_OPERATOR_NAMES = ("arccos|arcsin|arctan|arg|cos|cosh|cot|coth|csc|deg|det|dim|exp|gcd|hom|inf|ker|lg|lim|liminf|limsup|"
                   "ln|log|max|min|Pr|sec|sin|sinh|sup|tan|tanh")


def _fix_spacing(mathml: str, display: bool) -> str:
    """What TeX does and latex2mathml leaves out: a thin space after an operator name (\\log x, \\exp x, \\cos t) unless
    a bracket or an operator follows (\\exp(x)), and, in displayed maths, limits under and over large operators
    (\\sum_j) also inside aligned environments, whose tables MathML Core draws in the compact style."""
    mathml = re.sub(rf"(?<!<msup>)(?<!<msub>)(?<!<msubsup>)(<mi>(?:{_OPERATOR_NAMES})</mi>)(?!\s*<mo|\s*</|\s*<mspace)", r'\1<mspace width="0.1667em"></mspace>',
                    mathml)
    mathml = re.sub(rf"(<(msup|msub)><mi>(?:{_OPERATOR_NAMES})</mi>(?:<mn>[^<]*</mn>|<mi>[^<]*</mi>)</\2>)"  # \cos^2 x
                    r"(?!\s*<mo|\s*</|\s*<mspace)", r'\1<mspace width="0.1667em"></mspace>', mathml)
    if display:
        mathml = re.sub(r"<(mtable|munder|munderover)\b(?![^>]*displaystyle)", r'<\1 displaystyle="true"', mathml)
    return mathml


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
    mathml = _fix_spacing(_fix_variants(mathml), display)
    mathml = mathml.replace("<math ", f'<math alttext="{html.escape(body)}" ', 1)
    # a displayed formula wider than the column scrolls in its own box (with a shadow at the cut edge), not the page
    if display:
        return f'<span class="math-display" tabindex="0">{mathml}</span>'
    if len(body) > 30:                      # a long formula in a line: on a phone it scrolls in its box, not the page
        return f'<span class="math-inline-wide">{mathml}</span>'
    return mathml


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


def live_marks(cls: str) -> tuple[str, str] | None:
    """A widget's CSS class -> (kind, bundled name or "") for the classes ``fashiondiff.widgets.live_class`` sets:
    "live-noise", "live-sample-NAME", "live-interpolate-NAME"."""
    for kind in ("noise", "sample", "interpolate"):
        if cls == f"live-{kind}":
            return kind, ""
        if cls.startswith(f"live-{kind}-"):
            return kind, cls.removeprefix(f"live-{kind}-")
    return None


def widget_mark(model: dict) -> tuple[str, str] | None:
    """The live mark of one widget model of a notebook's saved state (its first live-* CSS class), else None."""
    return next((m for m in map(live_marks, model.get("state", {}).get("_dom_classes", [])) if m), None)


def export_live(out: Path, wanted: set) -> frozenset:
    """Export what the live widgets ``wanted`` need into out/_live (docs/live.py); the marks it exported. Without
    onnxruntime-web installed, say what to run and leave every widget a still."""
    if not wanted:
        return frozenset()
    import live                                                   # docs/live.py: imports torch and the package
    reason = live.missing()
    if reason:
        print(f"docs/build: live widgets left as stills: {reason}", file=sys.stderr)
        return frozenset()
    started = time.time()
    live.export(out, wanted)
    print(f"docs/build: {len(wanted)} live widgets exported in {time.time() - started:.1f} s")
    return frozenset(wanted)


class WidgetStill:
    """Draws a widget from the state a notebook stores (metadata.widgets): boxes, images, labels, the output widget's
    stored outputs, and each control as a disabled form element showing its stored value."""

    def __init__(self, state: dict, save_image, live: set | frozenset = frozenset()):
        self.models = state.get("state", {})
        self.save_image = save_image                              # (bytes, extension) -> relative URL
        self.live = live                                          # the live marks exported (docs/live.py)

    def __call__(self, output) -> str:
        model_id = output.get("data", {}).get(WIDGET_VIEW, {}).get("model_id")
        if model_id in self.models:
            inner = self.draw(model_id)
            what = "A still of this interactive widget, as it was saved with the notebook."
        else:
            inner = ""
            what = "An interactive widget was here; its state was not saved with the notebook."
        still = f'<figure class="widget-still">{inner}<figcaption class="widget-note">{what}</figcaption></figure>'
        mark = self.mark(model_id)
        if mark not in self.live:
            return still
        initial = html.escape(json.dumps(self.initial(model_id)))
        return (f'<div class="live-widget" data-live="{mark[0]}" data-model="{html.escape(mark[1])}" '
                f'data-initial="{initial}">{still}</div>')

    def mark(self, model_id) -> tuple[str, str] | None:
        """(kind, name) from the widget's live-* CSS class (``fashiondiff.widgets.live_class``), else None."""
        return widget_mark(self.models.get(model_id, {}))

    def initial(self, model_id: str, depth: int = 0) -> dict:
        """The controls' saved values, by description: a slider's number, a menu's label (and, as "DESCRIPTION
        options", the menu's labels)."""
        model = self.models.get(model_id, {})
        s, found = model.get("state", {}), {}
        children = s.get("children", [])
        for c in children if isinstance(children, list) and depth < 20 else []:
            found.update(self.initial(c.removeprefix("IPY_MODEL_"), depth + 1))
        if s.get("description"):
            if "_options_labels" in s:                              # no index: nothing picked (value None)
                index = s.get("index")
                found[s["description"]] = s["_options_labels"][index] if isinstance(index, int) else None
                found[s["description"] + " options"] = list(s["_options_labels"])
            elif isinstance(s.get("value"), (int, float)) and not isinstance(s.get("value"), bool):
                found[s["description"]] = s["value"]
        return found

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
    words: int = 0                                                # in its markdown cells
    code_lines: int = 0                                           # non-blank lines of code
    run_seconds: float = 0.0                                      # the stored run's cell time (execution metadata)
    exercises: int = 0

    @property
    def minutes(self) -> int:
        """An estimate of the time to work through the notebook: its prose, its code, its cells' run time (the
        exercises not counted), rounded up to 5 minutes."""
        total = self.words / READING_WORDS_PER_MINUTE + self.code_lines / CODE_LINES_PER_MINUTE + self.run_seconds / 60
        return max(5, 5 * -(-int(total) // 5))

    @property
    def time_html(self) -> str:
        run = f"{self.run_seconds:.0f} s" if self.run_seconds < 90 else f"{self.run_seconds / 60:.1f} min"
        exercises = f", plus {self.exercises} exercises" if self.exercises else ""
        return (f'<span class="time-estimate" title="{self.words:,} words at {READING_WORDS_PER_MINUTE} a minute, '
                f'{self.code_lines} lines of code at {CODE_LINES_PER_MINUTE} a minute, {run} of cell time">'
                f"about {self.minutes} min{exercises}</span> "
                f'<span class="time-detail">({self.words:,} words, {self.code_lines} lines of code; its cells ran in '
                f"{run} on a 2-core CPU)</span>")

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


def _seconds(stamp: str) -> float:
    from datetime import datetime
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def measure(nb, notebook: Notebook) -> None:
    """Words, lines of code, exercises and the stored run's cell time, for the time estimate."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            text = re.sub(r"<[^>]+>|\$[^$]*\$", " ", cell.source)
            notebook.words += len(re.findall(r"[A-Za-z0-9][\w'-]*", text))
        elif cell.cell_type == "code":
            notebook.code_lines += sum(1 for line in cell.source.splitlines() if line.strip())
            stamps = cell.get("metadata", {}).get("execution", {})
            if "iopub.execute_input" in stamps and "shell.execute_reply" in stamps:
                try:
                    notebook.run_seconds += max(0.0, _seconds(stamps["shell.execute_reply"])
                                                - _seconds(stamps["iopub.execute_input"]))
                except ValueError:
                    pass
    try_it = next((i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and "## Try it" in c.source), None)
    if try_it is not None:                                         # "1. **Name** ..." after "## Try it"
        notebook.exercises = sum(len(re.findall(r"^\d+\. \*\*", c.source, re.MULTILINE))
                                 for c in nb.cells[try_it:] if c.cell_type == "markdown")




def _list_terms(block: str) -> str | None:
    """The bold lead terms of a markdown list ("1. **patches**: ...", "* **the denoiser** - ...") joined as a phrase,
    or None if any item has none."""
    items = re.findall(r"^(?:\d+\.|[*-])\s+(.*)$", block, re.MULTILINE)
    terms = [m.group(1) for m in (re.match(r"\*\*(.+?)\*\*", item) for item in items) if m]
    if not items or len(terms) != len(items):
        return None
    return terms[0] if len(terms) == 1 else ", ".join(terms[:-1]) + " and " + terms[-1]


def first_heading_and_summary(nb) -> tuple[str, str]:
    """The first markdown heading (the page's title) and the first paragraph after it (the landing page's summary)."""
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        m = re.search(r"^#\s+(.+)$", cell.source, re.MULTILINE)
        if not m:
            continue
        rest = cell.source[m.end():].strip()
        blocks = re.split(r"\n\s*\n", rest) if rest else [""]
        paragraph = blocks[0]
        if paragraph.rstrip().endswith(":") and len(blocks) > 1:     # "In this notebook we:" and a list: say what
            terms = _list_terms(blocks[1])
            paragraph = paragraph.rstrip() + (f" {terms}." if terms else "\n\n" + blocks[1])
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


def tidy(body_html: str, pages_by_notebook: dict[str, str], page_modules: dict[str, str],
         descriptions: dict[int, str] | None = None):
    """Unique, readable heading ids; links to other notebooks and to package files pointed at their pages; each figure
    described (``descriptions``: by cell index) and linked to itself full size; runs of folded solution cells in one
    <details>; the table of contents (h2/h3, and any h1 after the first) as a list of {level, id, html}. Returns the
    soup and the table of contents."""
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
        if target in site_pages or target.startswith("_images/"):
            continue
        if name in pages_by_notebook:
            a["href"] = pages_by_notebook[name] + (f"#{fragment}" if fragment else "")
        elif target.lstrip("./").startswith("fashiondiff/") and target.lstrip("./") in page_modules:
            a["href"] = page_modules[target.lstrip("./")]
        elif target:
            warn(f"a link to {href!r} points outside the site")
    for img in soup.find_all("img"):
        m = re.search(r"/output_(\d+)_(\d+)\.\w+$", img.get("src", ""))
        if m and descriptions and int(m.group(1)) in descriptions:
            img["alt"] = descriptions[int(m.group(1))] + (f", part {int(m.group(2)) + 1}" if m.group(2) != "0" else "")
        elif img.get("alt") in (None, "", "No description has been provided for this image"):
            img["alt"] = "a figure from the notebook's stored output"
        if img.find_parent(class_="jp-RenderedImage") and img.parent.name != "a":
            link = soup.new_tag("a", attrs={"class": "figure-link", "href": img["src"],
                                            "title": "open this figure full size (the image file itself)"})
            img.wrap(link)
    for details in soup.select("details.solution"):               # consecutive solution cells: one fold
        if details.parent is None:
            continue
        cells = 1
        nxt = details.find_next_sibling()
        while nxt is not None and nxt.name == "details" and "solution" in nxt.get("class", []):
            for child in list(nxt.children):
                if getattr(child, "name", None) != "summary":
                    details.append(child.extract())
            cells += 1
            nxt.decompose()
            nxt = details.find_next_sibling()
        if cells > 1:
            details.summary.string = SOLUTION_LABEL.replace("Solution", f"Solution, {cells} cells", 1)
    return soup, toc


# ---------------------------------------------------------------------------------------------------------------------
# References, figures' descriptions, the search index
# ---------------------------------------------------------------------------------------------------------------------

@dataclass
class Reference:
    key: str                                                      # "Ho et al. 2020", as the notebooks cite it
    notebooks: set[str]                                           # numbers where this key means this paper; empty: all
    html: str                                                     # the full reference, its title linked
    url: str
    text: str


def load_references() -> list[Reference]:
    """docs/references.md: a table | cited as | notebooks | reference |."""
    refs = []
    for key, where, ref in re.findall(r"^\|\s*([^|]+?)\s*\|\s*([^|]*?)\s*\|\s*(.+?)\s*\|\s*$",
                                      (DOCS / "references.md").read_text(encoding="utf-8"), re.MULTILINE):
        if key in ("cited as",) or set(key) <= {"-", " "}:
            continue
        html_ref = inline_markdown(ref)
        url = re.search(r'href="([^"]+)"', html_ref)
        refs.append(Reference(key, set(re.findall(r"\d\d", where)), html_ref, url.group(1) if url else "",
                              BeautifulSoup(html_ref, "html.parser").get_text()))
    return refs


_NAME = r"[A-Z][a-z\u00df-\u024f]+(?:-[A-Z]?[a-z\u00df-\u024f]+)?"             # Kynkäänniemi, not DDPM or DiT
_AUTHORS = rf"{_NAME}(?:,\s+{_NAME})*(?:\s+et\s+al\.|\s+(?:&|and)\s+{_NAME})?"
_CITATION = re.compile(rf"\b(?P<authors>{_AUTHORS})(?P<tail>(?:,?\s+\(?(?:[A-Z][\w]*,?\s+)*?(?P<year>(?:19|20)\d\d)\b)?)")
_NOT_PROSE = {"a", "code", "pre", "math", "script", "style", "h1", "h2", "h3", "h4", "h5", "h6", "title"}


def link_citations(soup, refs: list[Reference], number: str | None, where: str) -> list[Reference]:
    """Each citation in the prose of ``soup`` ("Ho et al. 2020", "Song et al. (2021, sec. 4.1)", "Esser et al.'s")
    becomes a link to the paper; returns the papers cited, in order. ``number``: the notebook's, to pick among papers
    cited alike in different notebooks (None: the landing page, where such a citation is left unlinked)."""
    mine = [r for r in refs if not r.notebooks or (number is not None and number in r.notebooks)]
    by_key: dict[str, list[Reference]] = {}
    for r in mine:
        by_key.setdefault(r.key, []).append(r)
    cited: list[Reference] = []

    def lookup(authors: str, year: str | None) -> Reference | None:
        authors = " ".join(authors.split())
        if year:
            found = by_key.get(f"{authors} {year}", [])
        else:                                                       # "Esser et al.": the one paper of that name
            found = [r for r in mine if r.key.rsplit(" ", 1)[0] == authors]
            found = found if len({r.url for r in found}) == 1 else []
        return found[0] if len({r.url for r in found}) == 1 else None

    for text in list(soup.find_all(string=True)):
        if any(parent.name in _NOT_PROSE for parent in text.parents) or not _CITATION.search(text):
            continue
        pieces, last, changed = [], 0, False
        for m in _CITATION.finditer(text):
            authors, year = m.group("authors"), m.group("year")
            several = " et al." in " ".join(authors.split()) or "&" in authors or " and " in authors
            if not year and not several:
                continue
            ref = lookup(authors, year)
            if ref is None:
                if year and several and not [r for r in refs if r.key == f"{' '.join(authors.split())} {year}"]:
                    warn(f"{where}: the citation {' '.join(m.group(0).split())!r} is not in docs/references.md")
                continue
            span = m.group(0) if year else authors
            pieces.append(html.escape(text[last:m.start()]))
            pieces.append(f'<a class="cite" href="{html.escape(ref.url)}" title="{html.escape(ref.text)}">'
                          f"{html.escape(span)}</a>")
            last = m.start() + len(span)
            changed = True
            if ref not in cited:
                cited.append(ref)
        if changed:
            pieces.append(html.escape(text[last:]))
            text.replace_with(BeautifulSoup("".join(pieces), "html.parser"))
    return cited


_TITLE_IN_CODE = re.compile(r"""(?:set_title|suptitle|title)\s*[(=]\s*f?(["'])(.+?)\1""")


def figure_descriptions(nb, title: str) -> dict[int, str]:
    """For each code cell with a figure, a description for the alt text: the titles the code gives its axes or figure,
    else the cell's first comment, else the section it is in."""
    out: dict[int, str] = {}
    section = title
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            heads = re.findall(r"^#{1,3}\s+(.+)$", cell.source, re.MULTILINE)
            if heads:
                section = re.sub(r"[*_`$\\]", "", heads[-1]).strip()
            continue
        if cell.cell_type != "code" or not any(
                k in o.get("data", {}) for o in cell.get("outputs", []) for k in ("image/png", "image/jpeg", "image/svg+xml")):
            continue
        titles = [re.sub(r"\{[^}]*\}", "…", t) for _, t in _TITLE_IN_CODE.findall(cell.source)]
        titles = list(dict.fromkeys(t for t in titles if t.strip() and t.strip() != "…"))
        comment = next((line.strip().lstrip("#").strip() for line in cell.source.splitlines()
                        if line.strip().startswith("#") and "NBVAL" not in line and len(line.strip()) > 3), "")
        if titles:
            described = "a figure: " + "; ".join(titles[:6]) + ("; …" if len(titles) > 6 else "")
        elif comment:
            described = f"a figure: {comment}"
        else:
            described = "a figure"
        out[i] = f"{described} (section “{section}”, cell {i})"
    return out


def search_sections(soup, page: str, page_title: str) -> list[dict]:
    """The page cut at its headings (h1-h3 with an id): one entry per section with its prose and code, for the
    search index. Maths is indexed as its TeX; outputs, anchors and prompts are left out. ``soup`` is not changed."""
    from bs4 import NavigableString, Tag
    skip = {"jp-OutputArea", "anchor-link", "jp-InputPrompt", "copy-button"}
    sections = [{"p": page_title, "s": page_title, "u": page, "t": []}]

    def text_of(el) -> str:
        out = []
        for child in el.children:
            if isinstance(child, NavigableString):
                out.append(str(child))
            elif isinstance(child, Tag):
                if child.name == "math":
                    out.append(f" {child.get('alttext', '')} ")
                elif not skip.intersection(child.get("class", [])) and child.name not in ("script", "style"):
                    out.append(text_of(child))
        return "".join(out)

    def walk(el) -> None:
        for child in el.children:
            if not isinstance(child, Tag) or skip.intersection(child.get("class", [])) or child.name in (
                    "script", "style", "nav", "math"):
                continue
            if child.name in ("h1", "h2", "h3") and child.get("id"):
                sections.append({"p": page_title, "s": " ".join(text_of(child).replace("¶", "").split()),
                                 "u": f"{page}#{child['id']}", "t": []})
            elif child.name in ("p", "li", "td", "th", "pre", "summary", "figcaption", "blockquote", "dt", "dd"):
                sections[-1]["t"].append(" ".join(text_of(child).split()))
            else:
                walk(child)

    walk(soup)
    out = []
    for section in sections:
        section["t"] = " ".join(section["t"])
        if section["t"] or section["u"] == page:
            out.append(section)
    return out


def write_module_page(env, common: dict, out: Path, module: str, users: list[Notebook]) -> list[dict]:
    source = (ROOT / module).read_text(encoding="utf-8")
    (out / module).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ROOT / module, out / module)
    formatter = HtmlFormatter(linenos="inline", lineanchors="L", anchorlinenos=True, wrapcode=True)
    depth = "../" * module.count("/")
    html_page = env.get_template("module.html.j2").render(
        module=module, code=highlight(source, PythonLexer(), formatter), users=users, title=module,
        page_kind="module", toc=None, current=None, prev=None, next=None, root=depth, **common)
    (out / (module + ".html")).write_text(html_page, encoding="utf-8")
    return [{"p": module, "s": module, "u": module + ".html", "t": " ".join(source.split())}]


def repository_address() -> str | None:
    """The repository's address, for the landing page: pyproject.toml's [project.urls] (Repository, Source or
    Homepage), else the git remote "origin"; None if neither is set."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    section = re.search(r"^\[project\.urls\]\s*$(.*?)(?=^\[|\Z)", text, re.MULTILINE | re.DOTALL)
    if section:
        for name in ("Repository", "Source", "Homepage"):
            m = re.search(rf'^\s*"?{name}"?\s*=\s*"([^"]+)"', section.group(1), re.MULTILINE | re.IGNORECASE)
            if m:
                return m.group(1)
    try:
        import subprocess
        url = subprocess.run(["git", "-C", str(ROOT), "remote", "get-url", "origin"], capture_output=True, text=True,
                             timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        url = ""
    if url.startswith("git@") and ":" in url:                       # git@host:owner/name.git -> https://host/owner/name
        host, _, path = url[4:].partition(":")
        url = f"https://{host}/{path}"
    return re.sub(r"\.git$", "", url) if url.startswith(("https://", "http://")) else None


def git_commit() -> str:
    try:
        import subprocess
        return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def build(out: Path) -> int:
    started = time.time()
    if out.exists():
        if any(out.iterdir()) and not (out / MARKER).exists():
            sys.exit(f"docs/build: {out} exists and was not made by this script; choose another --out or remove it")
        shutil.rmtree(out)
    (out / "_static").mkdir(parents=True)
    (out / "_images").mkdir()
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
        measure(contents[nb.path], nb)
    modules = sorted(seen)
    page_modules = {m: m + ".html" for m in modules}
    pages_by_notebook = {nb.path.name: nb.page for nb in notebooks}
    references = load_references()
    index: list[dict] = []                                          # the search index: one entry per section

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(DOCS / "templates"), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True)
    common = dict(notebooks=notebooks, run_live=RUN_LIVE, site_title="fashiondiff",     # what every page needs
                  tagline="a notebook-first course on diffusion models")

    # static files: ours, the code colours (light, and dark when the system asks for it), pictures the README shows
    for f in (DOCS / "static").iterdir():
        shutil.copyfile(f, out / "_static" / f.name)
    light = HtmlFormatter(style="default").get_style_defs(".highlight")
    dark = HtmlFormatter(style="github-dark").get_style_defs(".highlight")
    (out / "_static" / "pygments.css").write_text(
        f"{light}\n@media (prefers-color-scheme: dark) {{\n{dark}\n.highlight {{ background: transparent; }}\n}}\n")
    for picture in sorted((ROOT / "notebooks").glob("*.png")):
        shutil.copyfile(picture, out / "_images" / picture.name)

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
    landing_soup, landing_toc = tidy(render_markdown(landing_md), pages_by_notebook, page_modules)
    link_citations(landing_soup, references, None, "docs/index.md")
    for nb in notebooks:                                            # the summaries' citations, linked too
        summary = BeautifulSoup(nb.summary_html, "html.parser")
        link_citations(summary, references, nb.number, nb.path.name)
        nb.summary_html = str(summary)
    landing_toc.append({"level": 1, "id": "the-notebooks", "html": "The notebooks"})
    landing_toc.append({"level": 1, "id": "the-package", "html": "The package"})
    users = {m: [nb for nb in notebooks if m in nb.modules] for m in modules}
    landing = {"href": "index.html", "title_html": "Start here"}
    page = env.get_template("index.html.j2").render(
        body=str(landing_soup), toc=landing_toc, next=notebooks[0], prev=None, current=None, title="fashiondiff",
        page_kind="landing", modules=modules, module_users=users, root="", repository=repository_address(),
        commit=git_commit(), **common)
    (out / "index.html").write_text(page, encoding="utf-8")
    index += search_sections(BeautifulSoup(page, "html.parser").find("article"), "index.html", "Start here")

    # the live widgets: the bundled models and constants they need, exported for the reader's browser
    wanted = {m for nb in notebooks
              for m in map(widget_mark, contents[nb.path].metadata.get("widgets", {}).get(WIDGET_STATE, {})
                           .get("state", {}).values()) if m}
    live = export_live(out, wanted)

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

        notebook = contents[nb.path]
        state = notebook.metadata.get("widgets", {}).get(WIDGET_STATE, {})
        still = WidgetStill(state, save_image, live)
        for cell in notebook.cells:
            if cell.cell_type == "code":                            # test markers are for nbval, not for learners
                cell.source = re.sub(r"\A(?:[ \t]*#[ \t]*NBVAL_\w+[^\n]*(?:\n|\Z))+", "", cell.source)
            for output in cell.get("outputs", []):                  # a widget whose state was not saved: say so
                view = output.get("data", {}).get(WIDGET_VIEW)
                if view is not None and view.get("model_id") not in still.models:
                    output["data"] = {"text/html": still(output)}
        descriptions = figure_descriptions(notebook, nb.title)
        exporter = make_exporter(still)
        extract = ExtractOutputPreprocessor(output_filename_template="output_{cell_index}_{index}{extension}")
        resources = {"output_files_dir": f"_images/{nb.path.stem}", "outputs": {}, "solution_label": SOLUTION_LABEL}
        notebook, resources = extract.preprocess(notebook, resources)
        for name, data in resources["outputs"].items():
            (out / name).write_bytes(data)
        body, _ = exporter.from_notebook_node(notebook, resources)
        soup, toc = tidy(body, pages_by_notebook, page_modules, descriptions)
        heading = soup.find("h1")                                   # the title goes first, above the page's facts
        title_html = ""
        if heading is not None:
            heading.extract()
            title_html = str(heading)
        cited = link_citations(soup, references, nb.number, nb.path.name)
        if cited:
            toc.append({"level": 1, "id": "references", "html": "References"})
        page = env.get_template("notebook.html.j2").render(
            body=str(soup), heading=title_html, toc=toc, nb=nb, current=nb, title=nb.title, page_kind="notebook",
            prev=notebooks[i - 1] if i > 0 else landing, next=notebooks[i + 1] if i + 1 < len(notebooks) else None,
            has_widgets=WIDGET_VIEW in json.dumps([c.get("outputs", []) for c in notebook.cells]),
            has_live='class="live-widget"' in body,
            references=cited, root="", **common)
        (out / nb.page).write_text(page, encoding="utf-8")
        index += search_sections(soup, nb.page, nb.title)

    # the package modules the notebooks import
    for m in modules:
        index += write_module_page(env, common, out, m, users[m])

    # the search index, a script (a page opened from disk may not fetch a JSON file), loaded when search is used
    (out / "_static" / "search-index.js").write_text(
        "window.FASHIONDIFF_SEARCH_INDEX = " + json.dumps(index, ensure_ascii=False, separators=(",", ":")) + ";\n",
        encoding="utf-8")

    seconds = time.time() - started
    print(f"docs/build: {len(notebooks)} notebooks, {len(modules)} modules, {len(index)} sections indexed, "
          f"{len(warnings)} warnings, {seconds:.1f} s -> {out / 'index.html'}")
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
