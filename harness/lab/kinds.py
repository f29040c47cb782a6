"""The project's vocabularies, each list of names written once. StrEnums, so they compare equal to the strings
stored in result files and scenario YAML."""

from __future__ import annotations

from enum import StrEnum


class Direction(StrEnum):
    INGRESS = "ingress"  # the peer is the client, the VM serves
    EGRESS = "egress"  # the VM is the client, the peer serves


class Protocol(StrEnum):
    TCP = "tcp"
    UDP = "udp"


class Status(StrEnum):
    OK = "ok"
    FAILED = "failed"


class TrafficPath(StrEnum):
    """What the sidecar's own counters say about a test's bytes (harness.experiment.measure.traversal)."""

    NO_SIDECAR = "no-sidecar"
    THROUGH_MESH = "through-mesh"  # the mesh's proxy carried them: the sidecar, or the node proxy in ambient
    BYPASSED = "bypassed"
    FAILED = "failed"
    NO_EVIDENCE = "no-evidence"


class SidecarKind(StrEnum):
    NONE = "none"
    ENVOY_REDIRECT = "envoy-redirect"
    ENVOY_TPROXY = "envoy-tproxy"
    LINKERD_STYLE = "linkerd-style"
    AMBIENT = "ambient"  # Istio ambient: istio-cni's in-pod rules, the node's proxy (harness.pod.ambient)
    AMBIENT_REROUTE = "ambient-reroute"  # the same, the pod annotated istio.io/reroute-virtual-interfaces

    @property
    def istio(self) -> bool:
        """An Istio sidecar (REDIRECT or TPROXY mode) is injected: what KubeVirt's Istio adaptations key on."""
        return self in (SidecarKind.ENVOY_REDIRECT, SidecarKind.ENVOY_TPROXY)

    @property
    def ambient(self) -> bool:
        return self in (SidecarKind.AMBIENT, SidecarKind.AMBIENT_REROUTE)


class GuestKind(StrEnum):
    NETNS = "netns"  # the VM's network stack as a namespace in the pod
    QEMU = "qemu"  # a real VM
