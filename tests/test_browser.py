"""report.html as people open it: rendered by Debian's Chromium (headless) from a stored small run, its structure
read back from the DOM after the page's scripts ran, and screenshots kept beside the page for people to look at."""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from harness.analysis.browser import dump_dom, print_pdf, screenshots
from harness.analysis.report import write_report

FIXTURES = Path(__file__).resolve().parent / "fixtures"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# Appended to a copy of the page (never to the report itself): after load, record whether every image decoded,
# whether the page scrolls sideways, the state of the collapsed sections, and what a click on the `n` heading
# of the sortable table did to that column.
PROBE = """<script>
window.addEventListener('load', function () {
  var n = null, table = document.querySelector('table.sortable');
  if (table) {
    var heads = Array.from(table.tHead.rows[0].cells);
    var col = heads.findIndex(function (h) { return h.textContent === 'n'; });
    heads[col].click();
    n = Array.from(table.tBodies[0].rows).map(function (r) { return parseFloat(r.cells[col].textContent); });
  }
  var top = function (el) { return el ? el.getBoundingClientRect().top + window.scrollY : null; };
  var answer = document.getElementById('the-answer');
  var list = answer ? answer.nextElementSibling : null;
  var byAlt = function (text) {
    return Array.from(document.images).find(function (i) { return i.alt.indexOf(text) === 0; }); };
  var matrix = byAlt('Binding x mesh layout'), seed = byAlt("The seed post's pros and cons");
  var probe = {
    answerTop: top(answer), answerListTop: top(list), answerListTag: list ? list.tagName : null,
    answerItems: list ? Array.from(list.children).map(function (li) { return li.textContent; }) : [],
    matrixTop: top(matrix), matrixLoaded: matrix ? matrix.complete && matrix.naturalWidth > 0 : false,
    seedTop: top(seed), seedLoaded: seed ? seed.complete && seed.naturalWidth > 0 : false,
    images: Array.from(document.images).map(function (i) { return [i.complete, i.naturalWidth]; }),
    scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,
    details: Array.from(document.querySelectorAll('details')).map(function (d) { return d.open; }),
    sortedN: n,
  };
  var out = document.createElement('pre'); out.id = 'vmnb-probe'; out.textContent = JSON.stringify(probe);
  document.body.appendChild(out);
});
</script>"""


class Outline(HTMLParser):
    """The headings in document order, and the page's visible text."""

    def __init__(self) -> None:
        super().__init__()
        self.headings: list[tuple[str, str]] = []
        self.text: list[str] = []
        self._open: str | None = None
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("h1", "h2"):
            self._open, self.headings = tag, [*self.headings, (tag, "")]
        if tag in ("script", "style"):
            self._skip += 1

    def handle_endtag(self, tag):
        if tag == self._open:
            self._open = None
        if tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data):
        if self._open:
            tag, text = self.headings[-1]
            self.headings[-1] = (tag, text + data)
        if not self._skip:
            self.text.append(data)


def rendered(page: Path, width: int) -> tuple[Outline, dict]:
    probe_page = page.with_name("probe.html")
    probe_page.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    try:
        dom = dump_dom(probe_page, width=width)
    finally:
        probe_page.unlink()
    found = re.search(r'<pre id="vmnb-probe">(.*?)</pre>', dom, re.S)
    assert found, "the page's load handler never ran"
    outline = Outline()
    outline.feed(dom.replace(found.group(0), ""))
    return outline, json.loads(found.group(1).replace("&quot;", '"'))


def run_layouts(run: Path) -> int:
    import pandas as pd

    samples = pd.read_parquet(run / "samples.parquet")
    return samples[samples.strategy != "direct"].sidecar.nunique()


@pytest.mark.parametrize("fixture", ["run-small", "run-mesh", "run-bench"])
def test_report_page_opens_with_the_decision_page_in_a_real_browser(tmp_path, fixture):
    run = tmp_path / fixture
    shutil.copytree(FIXTURES / fixture, run)
    _, page = write_report(run)
    figures = sorted((run / "figures").glob("*.png"))
    outline, probe = rendered(page, 1400)
    headings = [text.strip() for _, text in outline.headings]
    assert outline.headings[0][0] == "h1" and headings[0].startswith("Which binding, and what it costs")
    first_data = headings.index("The run")
    decision = headings[:first_data]
    # the answer first: its heading, one line per mesh layout, then the matrix picture, all in the first screen
    assert decision[1] == "The answer" and "The seed's table, measured" in decision and "Costs per layout" in decision
    assert probe["answerListTag"] == "UL" and len(probe["answerItems"]) == run_layouts(run)
    assert all(
        any(w in item for w in ("use ", "undecided between", "no shipped binding")) for item in probe["answerItems"]
    )
    assert probe["matrixLoaded"] and probe["answerListTop"] < 900 and probe["matrixTop"] < 900, probe
    if (run / "claims.json").exists():  # a run that judged the seed's claims shows them in the first screen too
        assert probe["seedLoaded"] and probe["seedTop"] < 900, probe
        assert "The seed's table, measured" in decision and "does not hold" in " ".join(outline.text)
    # then the figures beside their tables, then the full tables (collapsed, so the page stays short)
    assert headings.index("TCP throughput (Gbit/s)") > first_data
    full = [i for i, h in enumerate(headings) if h.startswith(("Every measured metric", "Every failure"))]
    assert full and min(full) > headings.index("TCP throughput (Gbit/s)")
    assert probe["details"] and not any(probe["details"])
    # every figure is an image the browser decoded; the page is self-contained (nothing but data URIs)
    assert len(probe["images"]) == len(figures) >= 3
    assert all(complete and width > 0 for complete, width in probe["images"])
    assert not re.search(r'src="(?!data:)', page.read_text())
    text = " ".join(outline.text)
    for empty in ("<NA>", "NaN", " nan ", "None"):
        assert empty not in text, empty
    # the sortable table sorted on a click on its heading
    assert probe["sortedN"] and probe["sortedN"] == sorted(probe["sortedN"])
    assert probe["scrollWidth"] <= probe["innerWidth"]
    # on a narrow screen the page itself does not scroll sideways: wide tables scroll inside their own box
    _, narrow = rendered(page, 500)
    assert narrow["scrollWidth"] <= narrow["innerWidth"], narrow
    shots = screenshots(page)
    for png in shots:
        assert png.parent == run and png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 20_000
    # printing works: a PDF, several pages (the folded sections open before printing)
    pdf = print_pdf(page, run / "report.pdf")
    data = pdf.read_bytes()
    assert data[:5] == b"%PDF-" and data.count(b"/Type /Page") - data.count(b"/Type /Pages") >= 2
    print(f"screenshots for people to look at: {', '.join(map(str, shots))}")


def test_an_empty_cell_says_why_it_is_empty():
    import pandas as pd

    from harness.analysis.htmlpage import Table, html_table, markdown_table

    frame = pd.DataFrame({"strategy": ["slirp", "passt"], "pod_mtu": [1500, pd.NA], "median": [1.5, float("nan")]})
    table = Table("", frame, {"pod_mtu": "not swept"})
    for rendered_table in (html_table(table), markdown_table(table)):
        assert "not swept" in rendered_table and "not measured" in rendered_table
        assert "NA" not in rendered_table and "nan" not in rendered_table


def test_a_name_that_looks_like_html_is_shown_as_text_on_the_page():
    """A variant or binding name from a scenario or an ingested folder never becomes markup (issue 46): the
    decision page escapes everything but its own folding tags."""
    from harness.analysis.htmlpage import decision_html

    hostile = "<img src=x onerror=alert(1)>"
    md = (
        f"# t\n\n| binding | x |\n|---|---|\n| {hostile} | 1 |\n\n- **{hostile}**: use it\n\n"
        f'<details markdown="1">\n<summary>{hostile}</summary>\n\n`{hostile}` & more\n\n</details>\n'
    )
    page = decision_html(md)
    assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<details>" in page or "<details" in page  # the page's own folding survives
    assert page.count("<summary>") == 1


HOSTILE = "<img src=x onerror=alert(1)>"
HOSTILE_SCENARIO = f"""
name: hostile
strategies: [direct, "{HOSTILE}"]
variants:
  "{HOSTILE}": {{strategy: masquerade}}
repetitions: 1
design: rounds
tests:
  - {{kind: tcp_throughput, duration_s: 1, omit_s: 0, directions: [ingress]}}
"""


def _assert_shown_as_text(page: Path) -> None:
    """In the DOM Chromium built (after the page's scripts ran): the name is text, never an element."""
    dom = dump_dom(page)
    assert 'onerror="alert(1)"' not in dom and "<img src=x" not in dom, "a planted name became markup"
    assert "&lt;img src=x onerror=alert(1)&gt;" in dom, "the planted name is not shown as text"


@pytest.mark.slow
def test_a_script_bearing_name_from_a_run_or_an_ingested_folder_stays_text_in_the_browser(tmp_path):
    """Issue 46, item 3, through both ways a name reaches a page: a scenario's variant measured by `run`, and a
    cell of an ingested cluster folder (index.json is the user's file). Both pages, opened in Chromium, show the
    name as text."""
    import os
    import subprocess
    import sys

    vmnetbench = str(Path(sys.executable).with_name("vmnetbench"))
    (tmp_path / "s.yaml").write_text(HOSTILE_SCENARIO)
    env = {k: v for k, v in os.environ.items() if k != "VMNB_NO_REPORT"}
    ran = subprocess.run(
        [vmnetbench, "run", str(tmp_path / "s.yaml"), "--results", str(tmp_path / "r"), "--run-id", "4e5a01"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    _assert_shown_as_text(tmp_path / "r" / "4e5a01" / "report.html")
    made = subprocess.run(
        [vmnetbench, "manifests", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "m"), "--kubevirt", "1.9"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    index = json.loads((tmp_path / "m" / "index.json").read_text())
    assert any(cell["strategy"] == HOSTILE for cell in index["cells"])
    done = subprocess.run(
        [vmnetbench, "ingest", str(tmp_path / "m"), "--results", str(tmp_path / "r"), "--run-id", "4e5a02"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    write_report(tmp_path / "r" / "4e5a02")
    _assert_shown_as_text(tmp_path / "r" / "4e5a02" / "report.html")
