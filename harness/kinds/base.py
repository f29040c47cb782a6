"""What every test kind is: the base class a kind subclasses (its scenario fields, validated; its protocol,
primary metric, ports, how it runs, what a cluster runs instead) and the registry every kind enters as its class
is defined (`TEST_KINDS`). Scenarios read a test through `Test`, which asks the registry, so a new kind is its own
module and nothing else (docs/extending.md)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationInfo, WrapValidator

from harness.guests.attachment import Ends
from harness.kinds.outcome import Outcome
from harness.lab.vocabulary import Direction, Protocol

if TYPE_CHECKING:
    from harness.kinds.measure import Cell


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _both_directions() -> list[Direction]:
    return list(Direction)


Directions = Annotated[list[Direction], Field(default_factory=_both_directions, min_length=1)]


TOOL_OVERHEAD_S = 0.4  # starting a server, waiting for it to listen, the client's start-up, reading its output
# (an mtu.yaml run here: 144 cells of two 1-s iperf3 tests took 410 s, 2.85 s per cell)


def gbit(bits_per_second: float | None) -> float | None:
    return bits_per_second / 1e9 if bits_per_second else None


class TestKind(Strict):
    """What every test kind has; subclasses add their fields and `measure`."""

    __test__ = False  # not a pytest class
    kind: str
    directions: Directions
    primary_metric: ClassVar[str]
    proxy_cost_per_request: ClassVar[bool] = False
    """Rows get each mesh proxy's CPU per 1000 requests per second and its resident memory (Istio's own units)."""
    sweep_fields: ClassVar[dict[str, str]] = {}
    """Which of a scenario's test-level sweeps (message_bytes, streams) this kind takes, and into which field."""
    _swept: str = PrivateAttr("")
    _family: str = PrivateAttr("ipv4")
    ipv6_missing: ClassVar[str] = "its tool's IPv6 run is not built here"
    """Why it has no IPv6 run, or '' when its tool and servers work over IPv6 (a dual-stack bed's `ip_families:
    [.., ipv6]` then runs it once per family; otherwise over IPv4 only, and the run says why)."""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        _register(cls)

    @property
    def protocol(self) -> Protocol:
        return Protocol.TCP

    @property
    def base_label(self) -> str:
        return self.kind

    @property
    def label(self) -> str:
        """The test's name in rows; a value a sweep set is part of it (`rr_tcp_closed/1400B`), so every analysis
        keyed on the test keeps the swept values apart."""
        return self.base_label + self._swept

    @property
    def ip_family(self) -> str:
        """`ipv4` or `ipv6`: which of a dual-stack bed's addresses the test dials."""
        return self._family

    def for_family(self, family: str) -> TestKind:
        """A copy over `family`; an IPv6 one is labelled `/ipv6` (`tcp_throughput/ipv6`), so every analysis keyed
        on the test keeps the families apart and judges each against the direct of the same family."""
        copy = self.model_copy()
        copy._swept, copy._family = self._swept + ("/ipv6" if family == "ipv6" else ""), family
        return copy

    def swept(self, parameter: str, value: int) -> TestKind:
        """A copy with a sweep's value set (`parameter` one of sweep_fields)."""
        copy = self.model_copy(update={self.sweep_fields[parameter]: value})
        copy._swept = self._swept + ("/" + (f"{value}B" if parameter == "message_bytes" else f"P{value}"))
        copy._family = self._family
        return copy

    def columns(self) -> dict:
        """The test's parameters that rows carry as columns (message size, streams, load)."""
        return {"message_bytes": None, "streams": None, "load": None, "offered_rps": None}

    def expected_seconds(self) -> float:
        """Wall time of one direction, for a sweep's time estimate: the tool's run plus starting its server."""
        return self.duration_s + TOOL_OVERHEAD_S

    def ports(self) -> tuple[set[int], set[int]]:
        """(TCP ports, UDP ports) the VM must serve for this test."""
        return {self.port}, set()

    def measure(self, ends: Ends, label: str) -> Outcome:
        raise NotImplementedError

    def measure_in(self, cell: Cell, direction: Direction, label: str) -> Outcome:
        """The test on a set-up cell: most kinds need only the direction's ends; a kind that works on the cell
        itself (a live migration adds a second pod) overrides this."""
        assert cell.attachment is not None
        return self.measure(cell.attachment.ends(direction, self.ip_family), label)

    # What a cluster runs instead (harness/cluster): the same client with the same arguments, long-lived servers,
    # and the same parsing of the client's output into an Outcome.
    netns_only: ClassVar[str] = ""
    """Why the kind runs only on the netns runtime with the netns guest ('' = it runs anywhere)."""
    consumes_bed: ClassVar[bool] = False
    """The test leaves its bed unusable for another test (a migration moves the VM away and deletes the source
    pod): the plan gives it a bed of its own, both directions in it."""
    qemu_only: ClassVar[str] = ""
    """Why the kind runs only on the netns runtime with the QEMU guest ('' = it runs anywhere)."""
    cluster_unsupported: ClassVar[str] = ""
    cluster_prints: ClassVar[tuple[str, ...]] = ()
    """Files the client writes that a cluster's Job prints after the client's output (`outcome_from_output` reads
    them there)."""
    """Why a kind has no cluster Job (it needs the harness's own bed), or empty."""

    def cluster_reason(self) -> str:
        """Empty when this test can run on a cluster; else why not, in one sentence."""
        return self.cluster_unsupported

    def client_argv(self, target: str, binary: Callable[[str], str] = str, *, host: str = "server") -> list[str]:
        """The client's command line (`binary` finds a project tool; on a cluster it is on PATH)."""
        raise NotImplementedError

    def server_argvs(self, binary: Callable[[str], str] = str) -> list[list[str]]:
        """The long-lived servers a cluster's far end runs for this test."""
        raise NotImplementedError

    def outcome_from_output(self, stdout: str, stderr: str = "", returncode: int = 0) -> Outcome:
        """The client's output (as the harness reads it, or as a cluster's Job printed it) as an Outcome."""
        raise NotImplementedError


TEST_KINDS: dict[str, type[TestKind]] = {}
"""Every test kind by the name scenarios give it (`kind:`), in the order the classes were defined."""


def _register(cls: type[TestKind]) -> None:
    annotation = cls.model_fields["kind"].annotation
    names = getattr(annotation, "__args__", ())
    if len(names) != 1:  # an abstract intermediate class (no `kind: Literal[...]` of its own)
        return
    TEST_KINDS[names[0]] = cls


def unregister_kind(name: str) -> None:
    """Forget a kind (tests add dummy kinds and take them away again)."""
    TEST_KINDS.pop(name, None)


def _as_registered_kind(value: Any, handler: Callable[[Any], Any], info: ValidationInfo) -> TestKind:
    """A scenario's test entry validated by the class its `kind` names; an unknown kind is one sentence with the
    kinds allowed. In JSON mode (scenario files go through JSON) the entry is validated strictly, as the scenario."""
    if isinstance(value, TestKind):
        return value
    kind = value.get("kind") if isinstance(value, dict) else None
    if kind not in TEST_KINDS:
        raise ValueError(f"kind must be one of: {', '.join(TEST_KINDS)} (got {kind!r})")
    cls = TEST_KINDS[kind]
    if info.mode == "json":
        return cls.model_validate_json(json.dumps(value), strict=True)
    return cls.model_validate(value)


Test = Annotated[TestKind, WrapValidator(_as_registered_kind)]
"""A scenario's test: any registered kind, chosen by its `kind` field."""
