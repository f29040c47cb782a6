"""Istio releases: what each installs in the pod and on the node that changes a binding's path. Users run a
release, not "Istio"; every row of an Istio mesh mode records the one modelled (`istio`) and the redirection
backend (`istio_backend`), as `kubevirt` records KubeVirt's (harness/pod/kubevirt.py).

Read in upstream (istio/istio at each release's tag; the dates are the tags' commits):
- **Redirection backend.** iptables in every release (tools/istio-iptables). A native nftables backend for the
  sidecar's init container and istio-cni's sidecar plugin since 1.27.0 (tools/istio-nftables, first in that tag;
  tools/istio-nftables/pkg/README.md: `inet` tables `istio-proxy-nat`, `istio-proxy-mangle`, `istio-proxy-raw`,
  base chains at the nat priority dstnat = -100), chosen with the chart value `global.nativeNftables` (default
  false: manifests/charts/istio-control/istio-discovery/values.yaml, the injection template passes
  `--native-nftables` to istio-init). Ambient's in-pod rules in nftables since 1.28.0 (cni/pkg/nftables, first
  in that tag: tables `istio-ambient-nat`, `istio-ambient-mangle`, `istio-ambient-raw`), the same chart value.
- **Ambient's DNS capture** (`cni.ambient.dnsCapture`, manifests/charts/istio-cni/values.yaml): false in 1.24.0,
  true from 1.25.0 on.
- **`istio.io/reroute-virtual-interfaces`**: istio-cni's ambient node agent reads it from 1.25.0
  (cni/pkg/nodeagent/net.go; 1.24.0's has no virtual-interface handling, so a VM's interface gets the pod's
  plain inbound rules there); the sidecar injector and the CNI sidecar plugin read it beside the deprecated
  `traffic.sidecar.istio.io/kubevirtInterfaces` from 1.25.0 (cni/pkg/plugin/sidecar_redirect.go), and only the
  latter before.

Rules inside each backend are the same from the first release that has it to 1.30.3 for the cases the fixture
tests compare (the golden files are unchanged between those tags; tests/test_upstream_fixtures.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class IstioRelease(StrEnum):
    """The Istio releases a scenario can model (`istio:`)."""

    V1_24 = "1.24"
    V1_25 = "1.25"
    V1_26 = "1.26"
    V1_27 = "1.27"
    V1_28 = "1.28"
    V1_29 = "1.29"
    V1_30 = "1.30"


class IstioBackend(StrEnum):
    """How Istio redirects a pod's traffic to its proxy (`istio_backends:`)."""

    IPTABLES = "iptables"
    NFTABLES = "nftables"


@dataclass(frozen=True)
class Release:
    name: IstioRelease
    tag: str
    released: str
    """The date of the tag's commit (istio/istio `git log -1 <tag>`)."""
    sidecar_backends: tuple[IstioBackend, ...]
    ambient_backends: tuple[IstioBackend, ...]
    ambient_dns_capture: bool
    """The chart's default `cni.ambient.dnsCapture`."""
    ambient_reroutes_virtual_interfaces: bool
    """istio-cni's ambient node agent honours `istio.io/reroute-virtual-interfaces`."""


_IPT = (IstioBackend.IPTABLES,)
_BOTH = (IstioBackend.IPTABLES, IstioBackend.NFTABLES)
RELEASES: dict[IstioRelease, Release] = {
    r.name: r
    for r in (
        Release(IstioRelease.V1_24, "1.24.0", "2024-11-05", _IPT, _IPT, False, False),
        Release(IstioRelease.V1_25, "1.25.0", "2025-02-25", _IPT, _IPT, True, True),
        Release(IstioRelease.V1_26, "1.26.0", "2025-05-06", _IPT, _IPT, True, True),
        Release(IstioRelease.V1_27, "1.27.0", "2025-08-08", _BOTH, _IPT, True, True),
        Release(IstioRelease.V1_28, "1.28.0", "2025-10-30", _BOTH, _BOTH, True, True),
        Release(IstioRelease.V1_29, "1.29.0", "2026-02-10", _BOTH, _BOTH, True, True),
        Release(IstioRelease.V1_30, "1.30.3", "2026-07-13", _BOTH, _BOTH, True, True),
    )
}
LATEST = IstioRelease.V1_30


def istio_release(name: IstioRelease | str) -> Release:
    """The modelled release; ValueError naming the known ones for another."""
    if str(name) not in RELEASES:
        raise ValueError(f"unknown Istio release {str(name)!r}; known: {', '.join(RELEASES)}")
    return RELEASES[IstioRelease(str(name))]


@dataclass(frozen=True)
class IstioSetup:
    """The Istio a pod's mesh is installed from: the release and its redirection backend."""

    release: IstioRelease = LATEST
    backend: IstioBackend = IstioBackend.IPTABLES
    dual_stack: bool = True
    """On a dual-stack pod, Istio captures IPv6 too: the sidecar's istio-init with ISTIO_DUAL_STACK (without it,
    tools/common/config/config.go getLocalIP takes the pod's first address, IPv4, and writes IPv4 rules only) and
    istio-cni's `ambient.ipv6` (chart default true). False installs the IPv4-only rules on a dual-stack pod."""

    def __post_init__(self) -> None:  # the words a scenario or option gives, as the enums
        object.__setattr__(self, "release", IstioRelease(str(self.release)))
        object.__setattr__(self, "backend", IstioBackend(str(self.backend)))

    @property
    def nftables(self) -> bool:
        return self.backend is IstioBackend.NFTABLES

    def label(self) -> str:
        """`1.30 nftables`: how page headings and rows name it."""
        return f"{self.release} {self.backend}"


DEFAULT_ISTIO = IstioSetup()
"""The newest modelled release with the iptables backend (Istio's chart default, `global.nativeNftables: false`)."""
