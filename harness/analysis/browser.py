"""Debian's Chromium, headless, as the reader of report.html: the DOM after the page's scripts ran, and screenshots.

Chromium runs as a child in its own session with a throwaway profile folder, and its whole process group is
ended when it returns or times out, so no browser process outlives the call. As root it needs --no-sandbox."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-headless-shell")
TIMEOUT_S = 90
VIRTUAL_TIME_MS = 5000  # lets the page's load handlers and scripts finish before the DOM is dumped


class BrowserError(RuntimeError):
    pass


def chromium() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    raise BrowserError("no Chromium found (Debian's package `chromium`; `make deps-test` installs it)")


def _run(args: list[str], url: str) -> str:
    with tempfile.TemporaryDirectory(prefix="vmnb-chromium-") as profile:
        cmd = [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            f"--user-data-dir={profile}",
            f"--virtual-time-budget={VIRTUAL_TIME_MS}",
            *args,
            url,
        ]
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            env={**os.environ, "HOME": profile},
        )
        try:
            out, err = proc.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            out, err = "", f"no answer within {TIMEOUT_S} s"
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # its renderer and zygote children too
            proc.wait()
    if proc.returncode not in (0, -signal.SIGKILL) or (not out and "--dump-dom" in args):
        raise BrowserError(f"chromium failed on {url}: {err.strip().splitlines()[-1] if err.strip() else 'no output'}")
    return out


def dump_dom(page: Path, width: int = 1400, height: int = 1000) -> str:
    """The page's DOM as serialised after load (scripts run), at a window of width x height CSS pixels."""
    return _run(["--dump-dom", f"--window-size={width},{height}"], page.resolve().as_uri())


def screenshot(page: Path, png: Path, width: int = 1400, height: int = 2400) -> Path:
    """A PNG of the top width x height pixels of the page, as a reader's window shows it."""
    _run([f"--screenshot={png.resolve()}", f"--window-size={width},{height}"], page.resolve().as_uri())
    if not png.is_file() or png.stat().st_size == 0:
        raise BrowserError(f"chromium wrote no screenshot {png}")
    return png


def screenshots(page: Path) -> list[Path]:
    """The report as a reader sees it: the first screen at 1400 x 900 (what a reader sees before scrolling), the top
    2400 px at 1400 px and on a narrow (phone-sized) screen, beside the page."""
    return [
        screenshot(page, page.with_name("report-first-screen.png"), 1400, 900),
        screenshot(page, page.with_name("report-1400px.png"), 1400, 2400),
        screenshot(page, page.with_name("report-narrow.png"), 500, 2400),
    ]


def print_pdf(page: Path, pdf: Path) -> Path:
    """The page printed to PDF as a reader's "Print" would (folded sections open before printing)."""
    _run([f"--print-to-pdf={pdf.resolve()}", "--no-pdf-header-footer"], page.resolve().as_uri())
    if not pdf.is_file() or pdf.stat().st_size == 0:
        raise BrowserError(f"chromium wrote no PDF {pdf}")
    return pdf
