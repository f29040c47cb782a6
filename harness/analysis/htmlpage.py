"""report.html as a page people open: the decision page first (answer.md rendered by Python-Markdown), then each
figure beside the table it illustrates, then the full tables collapsed and sortable. Self-contained (figures as
data URIs, the style and the sorting script inline), readable at 1400 px and on a phone (wide tables scroll
inside their own box), printable (collapsed sections open before printing).

Tables are rendered here rather than by `DataFrame.to_html`, so that an empty cell says why it is empty
(`not measured`, `not swept`, ...) instead of printing pandas' `<NA>` or `nan`."""

from __future__ import annotations

import base64
import html
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import markdown
import pandas as pd


@dataclass
class Table:
    caption: str
    frame: pd.DataFrame
    empty: dict[str, str] = field(default_factory=dict)
    """Per column, why a cell without a value has none; other columns say `not measured`."""


@dataclass
class Section:
    title: str
    tables: list[Table]
    figures: list[tuple[str, str]] = field(default_factory=list)  # (file name under figures/, caption)
    collapsed: bool = False


NOT_MEASURED = "not measured"


def is_missing(value: object) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def cell_text(value: object, column: str, empty: dict[str, str]) -> str:
    """One cell as text, for Markdown and HTML alike: numbers to 3 significant digits, a missing value as the
    reason it is missing."""
    if is_missing(value):
        return empty.get(column, NOT_MEASURED)
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def markdown_table(table: Table) -> str:
    df = table.frame
    if df.empty:
        return "_none_\n"
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in df.itertuples(index=False):
        cells = [cell_text(v, c, table.empty).replace("|", "/") for v, c in zip(row, cols, strict=True)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def html_table(table: Table, sortable: bool = False) -> str:
    df = table.frame
    if df.empty:
        return "<p><em>none</em></p>"
    cols = [str(c) for c in df.columns]
    numeric = {c for c in cols if pd.api.types.is_numeric_dtype(df[c])}
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    rows = []
    for row in df.itertuples(index=False):
        cells = []
        for value, col in zip(row, cols, strict=True):
            text = html.escape(cell_text(value, col, table.empty))
            classes = [k for k, on in (("num", col in numeric), ("why", is_missing(value))) if on]
            attr = f' class="{" ".join(classes)}"' if classes else ""
            cells.append(f"<td{attr}>{text}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    kind = ' class="sortable"' if sortable else ""
    return (
        f'<div class="scroll"><table{kind}><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'
    )


OWN_TAGS = ('<details markdown="1">', "</details>", "<summary>", "</summary>")
SMALL = ("<small>", "</small>")
"""The only HTML answer.md itself writes (its folded sections); everything else in it is text."""


def inert(answer_md: str) -> str:
    """answer.md with every `<` and `&` made text, but for the page's own folding tags: a binding or variant name
    from a scenario or an ingested folder (`<img src=x onerror=...>`) is shown, never run (issue 46). Markdown
    leaves entities inside code spans alone only if written literally, so `<` in backticks stays a `<`."""
    out = []
    for line in answer_md.split("\n"):
        if line.strip() in OWN_TAGS or (line.startswith("<summary>") and line.endswith("</summary>")):
            inner = line[len("<summary>") : -len("</summary>")] if line.startswith("<summary>") else None
            out.append(line if inner is None else f"<summary>{html.escape(inner)}</summary>")
            continue
        if line.startswith(SMALL[0]) and line.endswith(SMALL[1]):  # the page's own fine print, its text escaped
            out.append(SMALL[0] + _escape_outside_code(line[len(SMALL[0]) : -len(SMALL[1])]) + SMALL[1])
            continue
        out.append(_escape_outside_code(line))
    return "\n".join(out)


def _escape_outside_code(line: str) -> str:
    """`<`, `>` and `&` as entities outside backtick code spans (inside one, Markdown escapes them itself)."""
    parts = line.split("`")
    return "`".join(html.escape(p, quote=False) if i % 2 == 0 else p for i, p in enumerate(parts))


def decision_html(answer_md: str, fig_dir: Path | None = None) -> str:
    """answer.md as HTML: headings with ids (the contents line links them), folded <details> sections rendered
    inside, tables scrolling in their own box on a narrow screen, and its figures inlined as data URIs."""
    body = markdown.markdown(inert(answer_md), extensions=["tables", "toc", "md_in_html"])
    body = body.replace("<table>", '<div class="scroll"><table>').replace("</table>", "</table></div>")
    if fig_dir is not None:
        body = re.sub(r'src="figures/([^"]+)"', lambda m: f'src="{data_uri(fig_dir / m.group(1))}"', body)
    return body


def data_uri(png: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode()


def figure_html(fig_dir: Path, name: str, caption: str) -> str:
    alt = html.escape(caption)
    return f'<figure><img alt="{alt}" src="{data_uri(fig_dir / name)}"><figcaption>{alt}</figcaption></figure>'


def section_html(section: Section, fig_dir: Path) -> str:
    tables = []
    for table in section.tables:
        if table.caption:
            tables.append(f"<h3>{html.escape(table.caption)}</h3>")
        tables.append(html_table(table, sortable=section.collapsed))
    inner = [f'<div class="tables">{"".join(tables)}</div>']
    inner += [figure_html(fig_dir, name, caption) for name, caption in section.figures]
    inner = [f'<div class="pair">{"".join(inner)}</div>'] if section.figures else inner
    title = html.escape(section.title)
    if section.collapsed:
        return (
            f'<section><details><summary><h2>{title}</h2> <span class="hint">(click to open; click a column '
            f"heading to sort)</span></summary>{''.join(inner)}</details></section>"
        )
    return f"<section><h2>{title}</h2>{''.join(inner)}</section>"


STYLE = """
body{font-family:system-ui,sans-serif;max-width:1360px;margin:0 auto;padding:0 12px;line-height:1.4;color:#111}
h1{font-size:1.6em}h2{font-size:1.3em;margin-top:1.6em;border-bottom:1px solid #ddd}h3{font-size:1.05em}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;font-size:13px;margin:.5em 0}
td,th{border:1px solid #ccc;padding:3px 7px;vertical-align:top;text-align:left}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}td.why{color:#777;font-style:italic}
table.sortable th{cursor:pointer}table.sortable th:after{content:" \\2195";color:#aaa}
img{max-width:100%;height:auto}#decision p:has(img+img){display:flex;gap:12px;align-items:flex-start}
#decision p:has(img+img) img{max-width:calc(42% - 6px)}
#decision p:has(img+img) img:first-child{max-width:58%}figure{margin:.5em 0;max-width:100%}
.pair{display:flex;flex-wrap:wrap;gap:8px 24px;align-items:flex-start}.pair>.tables{max-width:100%;min-width:0}
figcaption{font-size:.9em;color:#444}
summary h2{display:inline;border:none}summary{cursor:pointer;margin-top:1.2em}.hint{color:#777;font-size:.85em}
code{background:#f6f6f6;padding:0 3px}
#run-facts{color:#333;font-size:.95em}
@media (max-width:700px){body{padding:0 6px}table{font-size:12px}h1{font-size:1.3em}}
@media print{body{max-width:none}.hint{display:none}.scroll{overflow:visible}}
"""

# Sort a table by the clicked column (numbers as numbers, a second click reverses); open every collapsed section
# before printing, so a printout holds the whole report.
SCRIPT = """
document.querySelectorAll('table.sortable th').forEach(function(th, _){
  th.addEventListener('click', function(){
    var table = th.closest('table'), body = table.tBodies[0];
    var col = Array.prototype.indexOf.call(th.parentNode.children, th);
    var dir = th.dataset.dir === 'asc' ? -1 : 1; th.dataset.dir = dir === 1 ? 'asc' : 'desc';
    var key = function(tr){ var t = tr.children[col].textContent.trim(); var n = parseFloat(t);
      return isNaN(n) || !/^[-+.\\d]/.test(t) ? [1, t.toLowerCase()] : [0, n]; };
    Array.from(body.rows).sort(function(a, b){ var x = key(a), y = key(b);
      if (x[0] !== y[0]) return x[0] - y[0]; return (x[1] < y[1] ? -1 : x[1] > y[1] ? 1 : 0) * dir; })
      .forEach(function(tr){ body.appendChild(tr); });
  });
});
window.addEventListener('beforeprint', function(){
  document.querySelectorAll('details').forEach(function(d){ d.open = true; });
});
"""


def page(title: str, answer_md: str, facts: list[str], sections: list[Section], fig_dir: Path) -> str:
    """The whole report.html: decision page, the run's facts, then the sections in order."""
    parts = [
        f'<main><article id="decision">{decision_html(answer_md, fig_dir)}</article>',
        '<section id="run-facts"><h2>The run</h2>' + "".join(f"<p>{html.escape(f)}</p>" for f in facts) + "</section>",
    ]
    parts += [section_html(s, fig_dir) for s in sections]
    head = (
        f"<meta charset='utf-8'><meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style>"
    )
    return (
        f"<!doctype html><html lang='en'><head>{head}</head><body>{''.join(parts)}</main>"
        f"<script>{SCRIPT}</script></body></html>"
    )
