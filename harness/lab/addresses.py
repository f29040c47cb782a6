"""The address plan's rule for every address a user may choose: inside the RFC 2544 benchmarking range
198.18.0.0/15 (docs/design.md), and clear of the bed's own networks, so no traffic can leave for a real network and
no option can collide with the peer or pod network."""

from __future__ import annotations

import ipaddress

from harness.lab.bed import AddressPlan

BENCH_RANGE = ipaddress.IPv4Network("198.18.0.0/15")


def check_vm_network(value: str, *, smallest_prefix: int = 30) -> str:
    """`value` as a VM network: an IPv4 network (no host bits set) of /`smallest_prefix` or larger, inside
    198.18.0.0/15, overlapping neither the peer's nor the pod's network. Raises ValueError saying which rule."""
    if not isinstance(value, str):
        raise ValueError(f"must be an IPv4 network as text, e.g. 198.19.0.0/24 (got {value!r})")
    try:
        net = ipaddress.IPv4Network(value, strict=True)
    except ValueError as e:
        raise ValueError(f"must be an IPv4 network such as 198.19.0.0/24 ({e})") from None
    if net.prefixlen > smallest_prefix:
        raise ValueError(f"must be a /{smallest_prefix} or larger, e.g. 198.19.0.0/24 (got {value})")
    if not net.subnet_of(BENCH_RANGE):
        raise ValueError(
            f"must lie inside the benchmarking range {BENCH_RANGE} (RFC 2544), e.g. 198.19.0.0/24 (got {value})"
        )
    plan = AddressPlan()
    for name, taken in (("peer", plan.peer_net), ("pod", plan.pod_net), ("proxy pod", plan.proxy_pod_net)):
        if net.overlaps(ipaddress.IPv4Network(taken)):
            raise ValueError(f"overlaps the {name} network {taken}; choose one inside 198.19.0.0/16 (got {value})")
    return value
