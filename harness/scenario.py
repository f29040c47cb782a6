"""Scenario files (scenarios/*.yaml), validated with pydantic; bad input gets one sentence naming the file,
the field and what is allowed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from harness.qemu import QemuOptions
from strategies import STRATEGIES
from strategies.base import Services, StrategyOptions

DIRECTIONS = ("ingress", "egress")


class ScenarioError(ValueError):
    pass


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


Directions = list[Literal["ingress", "egress"]]


class TcpThroughput(Strict):
    kind: Literal["tcp_throughput"]
    directions: Directions = Field(default_factory=lambda: list(DIRECTIONS), min_length=1)
    duration_s: float = Field(3.0, gt=0, le=3600)
    omit_s: float = Field(1.0, ge=0, le=60)
    streams: int = Field(1, ge=1, le=128)
    port: int = Field(5201, ge=1, le=65535)

    @property
    def label(self) -> str:
        return "tcp_throughput"


class UdpThroughput(Strict):
    """iperf3 -u at a set offered rate: delivered rate, loss and jitter."""

    kind: Literal["udp_throughput"]
    directions: Directions = Field(default_factory=lambda: list(DIRECTIONS), min_length=1)
    rate_mbit: float = Field(500, gt=0, le=100_000)
    datagram_bytes: int = Field(1400, ge=64, le=65000)
    duration_s: float = Field(3.0, gt=0, le=3600)
    port: int = Field(5201, ge=1, le=65535)

    @property
    def label(self) -> str:
        return f"udp_throughput@{self.rate_mbit:g}M"


class RequestResponse(Strict):
    """sockperf ping-pong: one message in flight. `closed` sends the next request when the reply arrives;
    `open` schedules requests at `rate_per_s` and counts latency from the scheduled send time."""

    kind: Literal["rr"]
    protocol: Literal["tcp", "udp"] = "tcp"
    mode: Literal["closed", "open"] = "closed"
    rate_per_s: int | None = Field(None, ge=1, le=1_000_000)
    directions: Directions = Field(default_factory=lambda: list(DIRECTIONS), min_length=1)
    duration_s: float = Field(3.0, gt=0, le=3600)
    message_bytes: int = Field(64, ge=14, le=65000)
    port: int = Field(11111, ge=1, le=65535)

    @model_validator(mode="after")
    def _rate_for_open_loop(self) -> RequestResponse:
        if self.mode == "open" and self.rate_per_s is None:
            raise ValueError("field 'rate_per_s': required when mode is open (requests per second to schedule)")
        return self

    @property
    def label(self) -> str:
        return f"rr_{self.protocol}_{self.mode}" + (f"@{self.rate_per_s}" if self.mode == "open" else "")


class ConnectRequestResponse(Strict):
    """A new TCP connection per request (connect, request, response, close), closed loop."""

    kind: Literal["crr"]
    directions: Directions = Field(default_factory=lambda: list(DIRECTIONS), min_length=1)
    duration_s: float = Field(2.0, gt=0, le=600)
    message_bytes: int = Field(64, ge=1, le=65000)
    port: int = Field(11112, ge=1, le=65535)

    @property
    def label(self) -> str:
        return "crr"


TEST_KINDS: dict[str, type[Strict]] = {
    "tcp_throughput": TcpThroughput,
    "udp_throughput": UdpThroughput,
    "rr": RequestResponse,
    "crr": ConnectRequestResponse,
}
Test = Annotated[TcpThroughput | UdpThroughput | RequestResponse | ConnectRequestResponse, Field(discriminator="kind")]


class Variant(Strict):
    strategy: str
    options: dict[str, Any] = Field(default_factory=dict)


class Scenario(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    runtime: Literal["netns"] = "netns"
    guest: Literal["netns", "qemu"] = "netns"
    """The VM the strategies attach: the netns guest, or a QEMU guest (issue 5) set up by `qemu`."""
    qemu: QemuOptions = Field(default_factory=QemuOptions)
    strategies: list[str] = Field(min_length=1)
    """Strategy names, or names of `variants` (a strategy with other options, measured side by side)."""
    variants: dict[str, Variant] = Field(default_factory=dict)
    sidecars: list[Literal["none", "envoy-redirect", "envoy-tproxy", "linkerd-style"]] = Field(
        default_factory=lambda: ["none"], min_length=1
    )
    repetitions: int = Field(3, ge=1, le=1000)
    seed: int | None = None
    """Seed of the per-round shuffle of cells; None draws one (recorded in run.json)."""
    tests: list[Test] = Field(min_length=1)
    strategy_options: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_names_and_options(self) -> Scenario:
        known = ", ".join(STRATEGIES)
        for label, variant in self.variants.items():
            if label in STRATEGIES:
                raise ValueError(f"field 'variants.{label}': a variant may not reuse a strategy's name")
            if variant.strategy not in STRATEGIES:
                field = f"field 'variants.{label}.strategy'"
                raise ValueError(f"{field}: unknown strategy {variant.strategy!r}; known strategies: {known}")
        for name in self.strategies:
            if name not in STRATEGIES and name not in self.variants:
                extra = f"; variants: {', '.join(self.variants)}" if self.variants else ""
                raise ValueError(f"field 'strategies': unknown strategy {name!r}; known strategies: {known}{extra}")
        if len(set(self.strategies)) != len(self.strategies):
            raise ValueError("field 'strategies': lists a strategy twice")
        for name in self.strategy_options:
            if name not in STRATEGIES:
                raise ValueError(f"field 'strategy_options': unknown strategy {name!r}; known strategies: {known}")
        for label in self.strategies:
            try:
                self.options_for(label)
            except ValidationError as e:
                where = f"variants.{label}.options" if label in self.variants else f"strategy_options.{label}"
                raise ValueError(_first_error(e, prefix="", base=where)) from None
        return self

    def services(self) -> Services:
        """The VM's service ports the tests use: strategies forward exactly these (slirp, passt, proxies)."""
        tcp, udp = set(), set()
        for t in self.tests:
            if isinstance(t, UdpThroughput):
                tcp.add(t.port)  # iperf3's control connection
                udp.add(t.port)
            elif isinstance(t, RequestResponse) and t.protocol == "udp":
                udp.add(t.port)
            else:
                tcp.add(t.port)
        return Services(tcp_ports=tuple(sorted(tcp)), udp_ports=tuple(sorted(udp)))

    def strategy_of(self, label: str) -> str:
        return self.variants[label].strategy if label in self.variants else label

    def options_for(self, label: str) -> StrategyOptions:
        """Options of a strategy or variant: the strategy's `strategy_options`, overlaid by the variant's."""
        base = self.strategy_of(label)
        options = {**self.strategy_options.get(base, {})}
        if label in self.variants:
            options.update(self.variants[label].options)
        return STRATEGIES[base].Options(**options)


def _loc(loc: tuple) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in TEST_KINDS:  # discriminator tags pydantic inserts into the path
            continue
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts)


def _first_error(e: ValidationError, prefix: str, base: str = "") -> str:
    """One sentence for the first error; `base` is the dotted path of the model that failed inside the file."""
    err = e.errors()[0]
    where = ".".join(p for p in (base, _loc(err["loc"])) if p)
    field = f"field '{where}'" if where else "the top level"
    if err["type"] == "extra_forbidden":
        allowed = _fields_at(err["loc"][:-1])
        return f"{prefix}{field} is not a known field" + (f"; allowed fields: {', '.join(allowed)}" if allowed else "")
    if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
        kinds = ", ".join(TEST_KINDS)
        return f"{prefix}{field}: kind must be one of: {kinds} (got {err.get('input', {}).get('kind')!r})"
    msg = err["msg"]
    if msg.startswith("Value error, "):  # our own validators already name the field and the value
        msg = msg.removeprefix("Value error, ")
        return f"{prefix}{msg}" if not where else f"{prefix}{field}: {msg}"
    if err["type"] != "missing" and "input" in err:
        msg += f" (got {err['input']!r})"
    return f"{prefix}{field}: {msg}"


def _fields_at(loc: tuple) -> list[str]:
    """The allowed field names of the model at `loc` in a Scenario (for 'unknown field' errors)."""
    model: type[BaseModel] | None = Scenario
    for item in loc:
        if isinstance(item, int):
            continue
        if item in TEST_KINDS:
            model = TEST_KINDS[item]
            continue
        if item == "tests":
            model = None  # the test's kind (next in the path) decides
            continue
        if model is None:
            return []
        return []
    return list(model.model_fields) if model else []


def load_scenario(path: str | Path) -> tuple[Scenario, str]:
    """Parse and validate a scenario file; returns the model and the text as given (kept in run.json)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ScenarioError(f"{path}: cannot read the scenario file ({e.strerror}).") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ScenarioError(f"{path}: not valid YAML ({str(e).splitlines()[0]}).") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: the top level must be a mapping with name, strategies and tests.")
    try:
        return Scenario(**data), text
    except ValidationError as e:
        raise ScenarioError(_first_error(e, prefix=f"{path}: ") + ".") from None
