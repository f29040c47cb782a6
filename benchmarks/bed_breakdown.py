"""Where a bed's time goes (issue 41): the per-bed breakdown a run records in run.json `bed_seconds` (the runner's
CellRunner times setup, each test, teardown and the samples table's rewrite of every bed).

    .venv/bin/python benchmarks/bed_breakdown.py RUN_DIR [RUN_DIR ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def breakdown(run_dir: Path) -> dict[str, float]:
    seconds = json.loads((run_dir / "run.json").read_text()).get("bed_seconds") or {}
    beds = seconds.get("beds", 0)
    if not beds:
        return {}
    total = seconds["bed (all)"]
    parts = {k: v for k, v in seconds.items() if k not in ("beds", "bed (all)")}
    parts["other (progress, waits between steps)"] = total - sum(parts.values())
    return {"beds": beds, **{k: v / beds for k, v in parts.items()}, "per bed": total / beds}


def main() -> None:
    runs = [Path(a) for a in sys.argv[1:]]
    if not runs:
        sys.exit("usage: bed_breakdown.py RUN_DIR [RUN_DIR ...]")
    tables = {r.name: breakdown(r) for r in runs}
    keys = list(dict.fromkeys(k for t in tables.values() for k in t))
    print("| seconds per bed | " + " | ".join(tables) + " |")
    print("|---|" + "---|" * len(tables))
    for key in keys:
        cells = [(f"{t[key]:.0f}" if key == "beds" else f"{t[key]:.2f}") if key in t else "-" for t in tables.values()]
        print(f"| {key} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
