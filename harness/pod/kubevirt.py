"""KubeVirt releases: what each writes into the launcher pod that changes a binding's path under a mesh, and which
bindings it ships in core. Users run a release, not "KubeVirt"; every row records the one modelled (`kubevirt`).

Read in upstream (kubevirt/kubevirt main at d923fdb, 2026-08-22, and the kubevirt/user-guide release notes):
- Every launcher pod with a masquerade interface is annotated by virt-controller, whether or not Istio is
  injected (pkg/network/pod/annotations/generator.go, `shouldAddIstioKubeVirtAnnotation`: any interface with the
  masquerade binding). Up to v1.6.0 (tag 2025-07-24) with `traffic.sidecar.istio.io/kubevirtInterfaces: k6t-eth0`
  only; since v1.7.0 (tag 2025-11-22, commit ca89611818 "Support Istio v1.25 and above") also with
  `istio.io/reroute-virtual-interfaces: k6t-eth0`. istio-cni's ambient node agent reads only the latter (istio/istio
  cni/pkg/nodeagent/net.go), so under ambient a 1.7+ masquerade pod gets the virtual-interface rules
  (harness/pod/ambient.py) without the user annotating anything, and a 1.6 one does not. (Istio's sidecar
  injector reads either, so in sidecar mode both give the same rule: harness/pod/sidecars.py.)
- slirp left core in v1.8 (it remains a network binding plugin); passt was a network binding plugin (a stream
  socket; vhost-user since v1.6) and became the core `passtBinding` in v1.8 (vhost-user, started by libvirt for
  `<interface type="vhostuser"><backend type="passt">`); masquerade port ranges arrived as alpha in v1.9.
- The 2018 research design ("Research: run VMs with Istio service mesh", kubevirt.io) is not a release: its
  iptables-only, nat-proxy and tproxy bindings never shipped.

Not modelled here: what differs between releases inside the rules a binding writes (masquerade's nft rules are
the same from 1.6 to main for the cases tests/test_upstream_fixtures.py compares) and port ranges.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

REROUTE_ANNOTATION = "istio.io/reroute-virtual-interfaces"
KUBEVIRT_INTERFACES_ANNOTATION = "traffic.sidecar.istio.io/kubevirtInterfaces"
MASQUERADE_BRIDGE = "k6t-eth0"


class KubevirtRelease(StrEnum):
    """The releases a scenario can model (`kubevirt:`)."""

    RESEARCH_2018 = "research-2018"
    V1_6 = "1.6"
    V1_7 = "1.7"
    V1_8 = "1.8"
    V1_9 = "1.9"


LATEST = KubevirtRelease.V1_9


@dataclass(frozen=True)
class Release:
    name: KubevirtRelease
    released: str
    """The date of the release's tag commit (kubevirt/kubevirt `git log -1 v1.x.0`)."""
    annotates_masquerade_reroute: bool
    """The launcher pod of a VMI with a masquerade interface carries REROUTE_ANNOTATION (v1.7+)."""
    core: frozenset[str]
    """The strategies that stand for a binding this release ships in core."""
    plugins: dict[str, str]
    """Strategies that stand for a network binding plugin in this release, with what to say about it."""
    absent: dict[str, str] = field(default_factory=dict)
    """Strategies whose binding the release no longer ships in that form, with what it ships instead."""


_PAST_PLUGIN = "a network binding plugin (not in core) in this release"
CORE_SINCE_1_8 = frozenset({"bridge", "masquerade", "passt-vhost-user"})
PLUGINS_SINCE_1_8 = {"slirp": "plugin only since 1.8"}
ABSENT_SINCE_1_8 = {
    "passt": "core passt is vhost-user since 1.8 (passt-vhost-user); a stream-socket passt is not shipped",
}
RELEASES: dict[KubevirtRelease, Release] = {
    KubevirtRelease.RESEARCH_2018: Release(
        KubevirtRelease.RESEARCH_2018,
        "2018",
        False,
        frozenset({"bridge", "slirp", "iptables-only", "nat-proxy", "tproxy"}),
        {},
    ),  # fmt: skip
    KubevirtRelease.V1_6: Release(
        KubevirtRelease.V1_6,
        "2025-07-24",
        False,
        frozenset({"bridge", "masquerade", "slirp"}),
        {"passt": _PAST_PLUGIN, "passt-vhost-user": _PAST_PLUGIN},
    ),  # fmt: skip
    KubevirtRelease.V1_7: Release(
        KubevirtRelease.V1_7,
        "2025-11-22",
        True,
        frozenset({"bridge", "masquerade", "slirp"}),
        {"passt": _PAST_PLUGIN, "passt-vhost-user": _PAST_PLUGIN},
    ),  # fmt: skip
    KubevirtRelease.V1_8: Release(
        KubevirtRelease.V1_8,
        "2026-03-18",
        True,
        CORE_SINCE_1_8,
        PLUGINS_SINCE_1_8,
        ABSENT_SINCE_1_8,
    ),  # fmt: skip
    KubevirtRelease.V1_9: Release(
        KubevirtRelease.V1_9,
        "2026-07-27",
        True,
        CORE_SINCE_1_8,
        PLUGINS_SINCE_1_8,
        ABSENT_SINCE_1_8,
    ),  # fmt: skip
}
RESEARCH_ONLY = ("iptables-only", "nat-proxy", "tproxy")


def release(name: KubevirtRelease | str) -> Release:
    if str(name) not in {str(k) for k in KubevirtRelease}:
        raise ValueError(f"unknown KubeVirt release {str(name)!r}; known: {', '.join(k for k in KubevirtRelease)}")
    return RELEASES[KubevirtRelease(str(name))]


def binding_status(name: KubevirtRelease | str, strategy: str) -> str:
    """What a strategy is in a release: `core`, a plugin note, `plain pod`, `research design: never shipped`,
    or `not in this release`."""
    r = release(name)
    if strategy == "direct":
        return "plain pod"
    if strategy in r.core:
        return "core"
    if strategy in r.plugins:
        return r.plugins[strategy]
    if strategy in r.absent:
        return r.absent[strategy]
    if strategy in RESEARCH_ONLY:
        return "research design: never shipped in a KubeVirt release"
    return "not in this release"


class Shipping(StrEnum):
    """Whether a user of the release can choose the binding a strategy stands for."""

    PLAIN_POD = "plain pod"
    CORE = "core"
    PLUGIN = "plugin"
    RESEARCH = "research design"
    ABSENT = "not in this release"

    @property
    def shipped(self) -> bool:
        return self in (Shipping.CORE, Shipping.PLUGIN)

    @property
    def runnable(self) -> bool:
        """A user of the release can deploy it: a shipped binding or a plain pod."""
        return self.shipped or self is Shipping.PLAIN_POD


def shipping(name: KubevirtRelease | str, strategy: str) -> Shipping:
    """binding_status as a category: what the recommendation's first condition reads."""
    r = release(name)
    if strategy == "direct":
        return Shipping.PLAIN_POD
    if strategy in r.core:
        return Shipping.CORE  # the research-2018 "release" is the post's own design: its bindings are its core
    if strategy in r.plugins:
        return Shipping.PLUGIN
    return Shipping.RESEARCH if strategy in RESEARCH_ONLY else Shipping.ABSENT


def shipped_bindings(name: KubevirtRelease | str) -> list[str]:
    """The strategies standing for the bindings a release ships (core, then plugins), sorted within each."""
    r = release(name)
    return sorted(r.core) + sorted(r.plugins)


# What users of a release call the binding a strategy stands for (KubeVirt's VMI interface spec and user guide).
_USER_NAMES = {
    "direct": "plain pod (no VM)",
    "bridge": "bridge",
    "masquerade": "masquerade",
    "iptables-only": "iptables only (2018 research)",
    "nat-proxy": "iptables + nat-proxy (2018 research)",
    "tproxy": "iptables + TPROXY (2018 research)",
}
_USER_NAMES_BEFORE_1_8 = {"slirp": "slirp", "passt": "passt plugin", "passt-vhost-user": "passt plugin (vhost-user)"}
_USER_NAMES_SINCE_1_8 = {"slirp": "slirp plugin", "passt": "passt (stream socket)", "passt-vhost-user": "passtBinding"}


def user_name(name: KubevirtRelease | str | None, strategy: str) -> str:
    """The binding as a user of the release knows it (`passtBinding` for passt-vhost-user from 1.8 on)."""
    late = name is not None and str(name) in (KubevirtRelease.V1_8, KubevirtRelease.V1_9)
    return {**_USER_NAMES, **(_USER_NAMES_SINCE_1_8 if late else _USER_NAMES_BEFORE_1_8)}.get(strategy, strategy)


def pod_annotations(name: KubevirtRelease | str, strategy: str) -> dict[str, str]:
    """The mesh-related annotations the release's virt-controller puts on the launcher pod of a VMI with this
    binding (generator.go); what istio-cni and the sidecar injector then read."""
    r = release(name)
    if strategy != "masquerade" or r.name is KubevirtRelease.RESEARCH_2018:
        return {}
    annotations = {KUBEVIRT_INTERFACES_ANNOTATION: MASQUERADE_BRIDGE}
    if r.annotates_masquerade_reroute:
        annotations[REROUTE_ANNOTATION] = MASQUERADE_BRIDGE
    return annotations


def rerouted_interfaces(annotations: dict[str, str]) -> list[str]:
    """The interfaces istio-cni's node agent reroutes for a pod: REROUTE_ANNOTATION's comma-separated list."""
    return [i.strip() for i in annotations.get(REROUTE_ANNOTATION, "").split(",") if i.strip()]
