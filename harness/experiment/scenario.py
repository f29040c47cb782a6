"""Scenario files (scenarios/*.yaml), validated with pydantic; bad input gets one sentence naming the file,
the field and what is allowed."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from harness.experiment.kinds import TEST_KINDS, Strict, Test
from harness.guests.spec import QemuOptions
from harness.lab.kinds import GuestKind, SidecarKind
from strategies import STRATEGIES
from strategies.base import Services, StrategyOptions


class ScenarioError(ValueError):
    pass


class Variant(Strict):
    strategy: str
    options: dict[str, Any] = Field(default_factory=dict)


class Scenario(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    runtime: Literal["netns"] = "netns"
    guest: GuestKind = GuestKind.NETNS
    """The VM the strategies attach: the netns guest, or a QEMU guest (issue 5) set up by `qemu`."""
    qemu: QemuOptions = Field(default_factory=QemuOptions)
    strategies: list[str] = Field(min_length=1)
    """Strategy names, or names of `variants` (a strategy with other options, measured side by side)."""
    variants: dict[str, Variant] = Field(default_factory=dict)
    sidecars: list[SidecarKind] = Field(default_factory=lambda: [SidecarKind.NONE], min_length=1)
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
        tcp: set[int] = set()
        udp: set[int] = set()
        for test in self.tests:
            test_tcp, test_udp = test.ports()
            tcp |= test_tcp
            udp |= test_udp
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
