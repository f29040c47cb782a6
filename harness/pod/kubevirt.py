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

Each binding's own story in these releases (core, plugin, research design; its name; its VMI interface field;
the Istio annotation) is declared on its strategy class with the types below (KubevirtBinding, InRelease) and
read by name through harness/pod/bindings.py; this module holds the releases themselves.

Not modelled here: what differs between releases inside the rules a binding writes (masquerade's nft rules are
the same from 1.6 to main for the cases tests/test_upstream_fixtures.py compares) and port ranges.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    annotates_reroute: bool
    """The launcher pod of a VMI whose binding virt-controller annotates for Istio (Masquerade declares it) also
    carries REROUTE_ANNOTATION (v1.7+)."""


RELEASES: dict[KubevirtRelease, Release] = {
    KubevirtRelease.RESEARCH_2018: Release(KubevirtRelease.RESEARCH_2018, "2018", False),
    KubevirtRelease.V1_6: Release(KubevirtRelease.V1_6, "2025-07-24", False),
    KubevirtRelease.V1_7: Release(KubevirtRelease.V1_7, "2025-11-22", True),
    KubevirtRelease.V1_8: Release(KubevirtRelease.V1_8, "2026-03-18", True),
    KubevirtRelease.V1_9: Release(KubevirtRelease.V1_9, "2026-07-27", True),
}
ALLOW_BRIDGE_MIGRATION = "kubevirt.io/allow-pod-bridge-network-live-migration"
"""The VMI annotation that lets KubeVirt migrate a VMI with a bridge interface on the pod network (api/core/v1
AllowPodBridgeNetworkLiveMigrationAnnotation); the guest keeps the source pod's address unless it renews it."""
PAST_PLUGIN = "a network binding plugin (not in core) in this release"
SINCE_1_8 = (KubevirtRelease.V1_8, KubevirtRelease.V1_9)
BEFORE_1_8 = (KubevirtRelease.V1_6, KubevirtRelease.V1_7)
RELEASED = (*BEFORE_1_8, *SINCE_1_8)
"""The releases users run (not the 2018 research)."""


def release(name: KubevirtRelease | str) -> Release:
    if str(name) not in {str(k) for k in KubevirtRelease}:
        raise ValueError(f"unknown KubeVirt release {str(name)!r}; known: {', '.join(k for k in KubevirtRelease)}")
    return RELEASES[KubevirtRelease(str(name))]


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


@dataclass(frozen=True)
class InRelease:
    """How one release ships the binding a strategy stands for."""

    shipping: Shipping
    user_name: str
    """What users of the release call it (KubeVirt's VMI interface spec and user guide): `passtBinding`."""
    interface: dict | None = None
    """The VMI interface's binding field as the release spells it (api v1.Interface, without name and ports);
    None where no VMI can ask for it."""
    note: str = ""
    """What a row's `binding_status` says when it is not plain `core` (a plugin's or an absent form's story)."""

    @property
    def status(self) -> str:
        if self.note:
            return self.note
        return {Shipping.RESEARCH: "research design: never shipped in a KubeVirt release"}.get(
            self.shipping, str(self.shipping)
        )


@dataclass(frozen=True)
class KubevirtBinding:
    """A strategy's KubeVirt story, release by release (declared on the strategy's class, strategies/<name>.py)."""

    forms: dict[KubevirtRelease, InRelease]
    otherwise: InRelease
    annotated_for_istio: bool = False
    """virt-controller annotates the launcher pod of a VMI with this binding for Istio (generator.go,
    `shouldAddIstioKubeVirtAnnotation`)."""
    istio_ipv4_only: bool = False
    """Its Istio adaptation covers IPv4 only: on a dual-stack pod the sidecar's IPv6 inbound is not forwarded to
    the VM (masquerade.go adds only the IPv4 pod address to the set its Istio rules match)."""
    live_migration: str = ""
    """When KubeVirt live-migrates a VMI with this binding on the pod network ('' = it refuses):
    `VerifyVMIMigratable` in pkg/network/vmispec/interface.go allows masquerade, passtBinding, plugins that
    declare `migration`, and bridge only with the VMI annotation ALLOW_BRIDGE_MIGRATION."""

    def migration_verdict(self, name: KubevirtRelease | str) -> str:
        """What the release does when asked to live-migrate such a VMI, in words for a row."""
        form, label = self.of(name), f"KubeVirt {release(name).name}"
        if not form.shipping.shipped:
            return f"not in {label}: no VMI can ask for it"
        if not self.live_migration:
            return f"refused by {label} (VerifyVMIMigratable)"
        return self.live_migration

    def of(self, name: KubevirtRelease | str) -> InRelease:
        return self.forms.get(release(name).name, self.otherwise)

    @classmethod
    def per_release(
        cls,
        table: dict[tuple[KubevirtRelease, ...], InRelease],
        otherwise: InRelease,
        *,
        annotated_for_istio: bool = False,
        istio_ipv4_only: bool = False,
        live_migration: str = "",
    ) -> KubevirtBinding:
        forms = {r: form for releases, form in table.items() for r in releases}
        return cls(forms, otherwise, annotated_for_istio, istio_ipv4_only, live_migration)

    @classmethod
    def plain_pod(cls, user_name: str) -> KubevirtBinding:
        return cls({}, InRelease(Shipping.PLAIN_POD, user_name))

    @classmethod
    def research(cls, user_name: str) -> KubevirtBinding:
        """A binding of the 2018 research design: the post's own core, never in a KubeVirt release."""
        return cls(
            {KubevirtRelease.RESEARCH_2018: InRelease(Shipping.CORE, user_name)},
            InRelease(Shipping.RESEARCH, user_name),
        )

    @classmethod
    def unknown(cls, name: str) -> KubevirtBinding:
        """A name no strategy declares (a row ingested from elsewhere): in no release."""
        return cls({}, InRelease(Shipping.ABSENT, name))


def rerouted_interfaces(annotations: dict[str, str]) -> list[str]:
    """The interfaces istio-cni's node agent reroutes for a pod: REROUTE_ANNOTATION's comma-separated list."""
    return [i.strip() for i in annotations.get(REROUTE_ANNOTATION, "").split(",") if i.strip()]
