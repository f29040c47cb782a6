"""Connectivity strategies: one module each, registered here by name."""

from __future__ import annotations

from strategies.base import Strategy
from strategies.bridge import Bridge
from strategies.direct import Direct
from strategies.iptables_only import IptablesOnly
from strategies.masquerade import Masquerade
from strategies.nat_proxy import NatProxy
from strategies.passt import Passt
from strategies.passt_vhost_user import PasstVhostUser
from strategies.slirp import Slirp
from strategies.tproxy import Tproxy

STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (Direct, Slirp, Passt, PasstVhostUser, Bridge, Masquerade, IptablesOnly, NatProxy, Tproxy)
}


def strategy_class(name: str) -> type[Strategy]:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise KeyError(f"unknown strategy {name!r}; known strategies: {', '.join(STRATEGIES)}.") from None
