"""Does a binding's path work under a mesh layout, which way, and through the mesh's proxy: the verdict every
page's matrix, the recommendation and the cost tables share, read from every test's rows of the cell."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from harness.lab.vocabulary import Status


@dataclass(frozen=True)
class Works:
    verdict: str  # both ways | ingress only | egress only | fails | not measured
    reason: str = ""
    both_ways: bool = False
    """Every protocol measured worked in both directions (whatever path it took)."""
    bypassed: tuple[str, ...] = ()
    """Directions (of any protocol) that worked without crossing the mesh's proxy."""
    plaintext: tuple[str, ...] = ()
    """Directions that crossed both proxies of a meshed client but not inside mTLS/HBONE."""
    unverified: tuple[str, ...] = ()
    """Directions whose path through the mesh could not be read (a cluster's rows)."""

    @property
    def through_mesh(self) -> bool:
        """Both ways, and every direction's bytes crossed the mesh (inside mTLS for a meshed client)."""
        return self.both_ways and not self.bypassed and not self.plaintext


def works(samples: pd.DataFrame, strategy: str, sidecar: str) -> Works:
    """From every test's rows, per protocol and direction: a direction works when all its attempts
    succeeded. One verdict when TCP and UDP agree, else one per protocol ("TCP both ways; UDP egress only")."""
    cell = samples[
        (samples.strategy == strategy)
        & (samples.sidecar == sidecar)
        & (samples.test.fillna("") != "")
        & (samples.test != "harness")
    ]
    if cell.empty:
        setup = samples[(samples.strategy == strategy) & (samples.sidecar == sidecar) & (samples.status != Status.OK)]
        return Works("fails" if not setup.empty else "not measured", _common(list(setup.reason.fillna(""))))
    verdicts, reasons, all_ways = {}, [], True
    every_bypassed, every_plaintext, every_unverified = set(), set(), set()
    for protocol, rows in cell.groupby(cell.protocol.fillna("tcp"), sort=True):
        per_direction, bypassed, plaintext, unverified = {}, [], [], []
        for direction in ("ingress", "egress"):
            d = rows[rows.direction == direction]
            if not d.empty:
                failed = d[d.status != Status.OK]
                per_direction[direction] = failed.empty
                reasons += [r for r in failed.reason.fillna("") if r]
                paths = set(d["path"].dropna()) if "path" in d.columns else set()
                if failed.empty and "bypassed" in paths:  # it works, but not through the mesh's proxy
                    bypassed.append(direction)
                if failed.empty and "mesh-plaintext" in paths:  # through the proxies, but not inside mTLS/HBONE
                    plaintext.append(direction)
                if failed.empty and "unverified" in paths:  # a cluster's row: the proxies' counters were not read
                    unverified.append(direction)
        verdict = _direction_verdict(per_direction)
        all_ways &= verdict == "both ways"
        every_bypassed |= set(bypassed)
        every_plaintext |= set(plaintext)
        every_unverified |= set(unverified)
        if bypassed:
            verdict += f", {' and '.join(bypassed)} bypassing the mesh"
        if plaintext:
            verdict += f", {' and '.join(plaintext)} not inside mTLS"
        if unverified:
            verdict += f", {' and '.join(unverified)} path through the mesh unverified"
        verdicts[str(protocol).upper()] = verdict
    facts = {
        "both_ways": all_ways,
        "bypassed": tuple(sorted(every_bypassed)),
        "plaintext": tuple(sorted(every_plaintext)),
        "unverified": tuple(sorted(every_unverified)),
    }
    if len(set(verdicts.values())) == 1:
        return Works(next(iter(verdicts.values())), _common(reasons), **facts)
    return Works("; ".join(f"{p} {v}" for p, v in verdicts.items()), _common(reasons), **facts)


def _direction_verdict(per_direction: dict[str, bool]) -> str:
    ok_in, ok_out = per_direction.get("ingress", False), per_direction.get("egress", False)
    verdict = {
        (True, True): "both ways",
        (True, False): "ingress only",
        (False, True): "egress only",
        (False, False): "fails",
    }[(ok_in, ok_out)]
    if len(per_direction) == 1:
        direction = next(iter(per_direction))
        verdict = f"{direction} only measured" if per_direction[direction] else "fails"
    return verdict


def _common(reasons: list[str]) -> str:
    reasons = [r for r in reasons if r]
    return max(set(reasons), key=reasons.count)[:160] if reasons else ""


def _clip(text: str, limit: int) -> str:
    text = text.replace("|", "/")
    return text if len(text) <= limit else text[: limit - 1] + "…"
