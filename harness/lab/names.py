"""Names of everything a run creates: `vmnb-<run id>-<role>`, so runs coexist and leftovers are findable."""

from __future__ import annotations

import re
import secrets

PREFIX = "vmnb"
IFNAMSIZ = 15  # the kernel's limit on interface names, without the trailing NUL
RUN_ID_PATTERN = re.compile(r"[0-9a-f]{6}")  # always fullmatch: `$` would accept a trailing newline


def new_run_id() -> str:
    """Six hex digits: short enough that `vmnb-<id>-xxx` fits an interface name."""
    return secrets.token_hex(3)


def check_run_id(run_id: str) -> str:
    if not RUN_ID_PATTERN.fullmatch(run_id):
        raise ValueError(f"run id {run_id!r} is invalid; it must be six lowercase hex digits, e.g. 3fa9c1.")
    return run_id


def resource_name(run_id: str, role: str) -> str:
    """Name of a namespace (no length limit) or other object owned by a run."""
    return f"{PREFIX}-{run_id}-{role}"


def link_name(run_id: str, role: str) -> str:
    name = resource_name(run_id, role)
    if len(name) > IFNAMSIZ:
        raise ValueError(f"link name {name!r} is longer than the kernel's {IFNAMSIZ} characters.")
    return name


def run_id_of(name: str) -> str | None:
    """The run id inside a `vmnb-<id>-...` name, or None for names that are not ours."""
    m = re.match(rf"^{PREFIX}-([0-9a-f]{{6}})-", name)
    return m.group(1) if m else None
