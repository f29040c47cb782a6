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
    """What the sidecar's own counters say about a test's bytes (harness.kinds.measure.traversal)."""

    NO_SIDECAR = "no-sidecar"
    THROUGH_MESH = "through-mesh"  # the mesh's proxy carried them: the sidecar, or the node proxy in ambient
    BYPASSED = "bypassed"
    MESH_PLAINTEXT = "mesh-plaintext"  # a meshed peer's bytes crossed the proxies, but not inside mTLS / HBONE
    FAILED = "failed"
    NO_EVIDENCE = "no-evidence"
    UNVERIFIED = "unverified"  # ingested from a cluster (harness/cluster/ingest.py): the mesh's counters were not read


class GuestKind(StrEnum):
    NETNS = "netns"  # the VM's network stack as a namespace in the pod
    QEMU = "qemu"  # a real VM
