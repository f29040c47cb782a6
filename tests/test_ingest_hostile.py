"""`vmnetbench ingest` reads a folder a user copied from a cluster: nothing in it can reach outside it, hang the
harness, or leave a half-made run behind (issue 46, item 2). Each hostile folder is a copy of what `vmnetbench
manifests` wrote, with one thing changed; each must give one `error:` line (or, where the input is only odd, a
complete run), never a traceback, a `running` run.json or a folder that blocks the run id."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
VMNETBENCH = str(Path(sys.executable).with_name("vmnetbench"))
SCENARIO = """
name: hostile
strategies: [direct, masquerade]
sidecars: [none]
repetitions: 1
tests:
  - {kind: tcp_throughput, duration_s: 1, omit_s: 0, directions: [ingress]}
"""


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    """What `vmnetbench manifests` writes for a two-cell scenario, with an (empty) logs folder per cell."""
    root = tmp_path_factory.mktemp("manifests")
    (root / "s.yaml").write_text(SCENARIO)
    done = subprocess.run(
        [VMNETBENCH, "manifests", str(root / "s.yaml"), "--out", str(root / "out"), "--kubevirt", "1.9"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    for cell in json.loads((root / "out" / "index.json").read_text())["cells"]:
        (root / "out" / cell["folder"] / "logs").mkdir(parents=True, exist_ok=True)
        (root / "out" / cell["folder"] / "logs" / "job.log").write_text("vmnb|x|rc|0\n")
    return root / "out"


def _index(folder: Path) -> dict:
    return json.loads((folder / "index.json").read_text())


def _edit_index(change: Callable[[dict], object]) -> Callable[[Path, Path], None]:
    def edit(folder: Path, _outside: Path) -> None:
        index = _index(folder)
        result = change(index)
        (folder / "index.json").write_text(json.dumps(index if result is None else result))

    return edit


def _first_cell(folder: Path) -> Path:
    return folder / _index(folder)["cells"][0]["folder"]


def _log_links_outside(folder: Path, outside: Path) -> None:
    (_first_cell(folder) / "logs" / "job.log").unlink()
    (_first_cell(folder) / "logs" / "job.log").symlink_to(outside)


def _logs_link_to_root(folder: Path, _outside: Path) -> None:
    shutil.rmtree(_first_cell(folder) / "logs")
    (_first_cell(folder) / "logs").symlink_to("/")


def _cell_folder_linked(folder: Path, outside: Path) -> None:
    cell = _first_cell(folder)
    shutil.move(cell, outside.parent / "moved-cell")
    cell.symlink_to(outside.parent / "moved-cell")


def _fifo(relative: Callable[[Path], Path]) -> Callable[[Path, Path], None]:
    def plant(folder: Path, _outside: Path) -> None:
        path = relative(folder)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        os.mkfifo(path)

    return plant


def _device_as_vmi(folder: Path, _outside: Path) -> None:
    os.mknod(_first_cell(folder) / "vmi.json", 0o600 | 0o020000, os.makedev(1, 5))  # a /dev/zero


def _zero_link_as_vmi(folder: Path, _outside: Path) -> None:
    (_first_cell(folder) / "vmi.json").symlink_to("/dev/zero")


def _huge_rc(folder: Path, _outside: Path) -> None:
    (_first_cell(folder) / "logs" / "job.log").write_text("vmnb|x|rc|" + "9" * 5000 + "\n")


def _odd_cluster_objects(folder: Path, _outside: Path) -> None:
    (folder / "cluster").mkdir(exist_ok=True)
    (folder / "cluster" / "nodes.json").write_text("[1, 2]")
    (folder / "cluster" / "kubevirt.json").write_text('{"items": "x"}')
    (folder / "cluster" / "istio.json").write_text('{"meshVersion": [7]}')
    (_first_cell(folder) / "vmi.json").write_text('{"status": []}')


HOSTILE: dict[str, tuple[Callable[[Path, Path], None], str]] = {
    # name: (how the folder is changed, what the one error line must say; "" = a complete run is right)
    "log-symlink-outside": (_log_links_outside, "symbolic link"),
    "logs-symlink-to-root": (_logs_link_to_root, "symbolic link"),
    "cell-folder-symlink": (_cell_folder_linked, "symbolic link"),
    "folder-dotdot": (_edit_index(lambda i: i["cells"][0].update(folder="../../etc")), "field cells.0.folder"),
    "folder-absolute": (_edit_index(lambda i: i["cells"][0].update(folder="/etc")), "field cells.0.folder"),
    "index-a-list": (_edit_index(lambda i: [1]), "index.json"),
    "index-extra-key": (_edit_index(lambda i: i.update(extra=1)), "field extra"),
    "index-missing-cells": (_edit_index(lambda i: i.pop("cells") and None), "field cells"),
    "cell-extra-key": (_edit_index(lambda i: i["cells"][0].update(x=1)), "field cells.0.x"),
    "cell-vcpus-text": (_edit_index(lambda i: i["cells"][0].update(vcpus="2")), "field cells.0.vcpus"),
    "test-index-beyond": (_edit_index(lambda i: i["cells"][0]["blocks"][0].update(test=7)), "test index"),
    "block-name-path": (_edit_index(lambda i: i["cells"][0]["blocks"][0].update(name="../x")), "name"),
    "scenario-garbled": (_edit_index(lambda i: i.update(scenario="strategies: 5")), "field scenario"),
    "index-not-json": (lambda f, _o: (f / "index.json").write_text("{"), "not readable JSON"),
    "index-fifo": (_fifo(lambda f: f / "index.json"), "not a regular file"),
    "version-json-fifo": (_fifo(lambda f: f / "cluster" / "version.json"), "not a regular file"),
    "vmi-json-fifo": (_fifo(lambda f: _first_cell(f) / "vmi.json"), "not a regular file"),
    "log-fifo": (_fifo(lambda f: _first_cell(f) / "logs" / "job.log"), "not a regular file"),
    "vmi-json-device": (_device_as_vmi, "not a regular file"),
    "vmi-json-dev-zero-link": (_zero_link_as_vmi, "symbolic link"),
    "rc-5000-digits": (_huge_rc, ""),
    "cluster-objects-odd-shapes": (_odd_cluster_objects, ""),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_ingest_folder_gives_one_line_and_leaves_nothing(case: str, written: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    shutil.copytree(written, folder)
    outside = tmp_path / "secret.txt"
    outside.write_text("SECRET-OUTSIDE-THE-INPUT\n")
    change, expected = HOSTILE[case]
    change(folder, outside)
    results = tmp_path / "results"
    done = subprocess.run(
        [VMNETBENCH, "ingest", str(folder), "--results", str(results), "--run-id", "1f6e57"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert "Traceback" not in done.stderr + done.stdout, done.stderr[-2000:]
    runs = list(results.iterdir()) if results.exists() else []
    if expected:
        assert done.returncode == 2 and done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
        assert expected in done.stderr, done.stderr
        assert runs == [], "a refused ingest leaves no run folder (the id stays free)"
    else:
        assert done.returncode == 0, done.stderr
        (run,) = runs
        assert json.loads((run / "run.json").read_text())["status"] == "complete"
    for run in runs:
        assert "SECRET-OUTSIDE" not in "".join(p.read_text(errors="replace") for p in run.rglob("*") if p.is_file())
