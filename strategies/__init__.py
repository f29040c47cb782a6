"""Connectivity strategies: one module each, registered here by name."""

from __future__ import annotations

from strategies.base import Strategy
from strategies.direct import Direct
from strategies.masquerade import Masquerade
from strategies.nat_proxy import NatProxy
from strategies.tproxy import Tproxy

STRATEGIES: dict[str, type[Strategy]] = {cls.name: cls for cls in (Direct, Masquerade, NatProxy, Tproxy)}


def strategy_class(name: str) -> type[Strategy]:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise KeyError(f"unknown strategy {name!r}; known strategies: {', '.join(STRATEGIES)}.") from None
