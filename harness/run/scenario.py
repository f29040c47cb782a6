"""Scenario files (scenarios/*.yaml), validated with pydantic; bad input gets one sentence naming the file,
the field and what is allowed."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, ValidationInfo, field_validator, model_validator

from harness.guests.spec import QemuBuild, QemuOptions
from harness.kinds import TEST_KINDS, Test
from harness.kinds.base import Strict
from harness.lab.vocabulary import GuestKind
from harness.pod.istio import LATEST as ISTIO_LATEST
from harness.pod.istio import IstioBackend, IstioRelease, IstioSetup, istio_release
from harness.pod.kubevirt import LATEST, KubevirtRelease
from harness.pod.mesh import SidecarKind, mesh_for
from harness.pod.mtls import PeerAuthentication, PeerKind
from strategies import STRATEGIES
from strategies.base import StrategyOptions


class ScenarioError(ValueError):
    pass


PodMtu = Annotated[int, Field(ge=576, le=65535)]
GuestMtu = Annotated[int, Field(ge=576, le=65520)] | Literal["pod"]


class Sweep(Strict):
    """Parameters measured at several values; every combination is a point, every point a column in the rows.
    pod_mtu and guest_mtu make cells (a bed per value, interleaved with the other cells in each round's
    shuffle); message_bytes and streams make tests inside each cell (their order shuffled per round too)."""

    pod_mtu: list[PodMtu] = Field(default_factory=list)
    """MTU of the bed's veths (the pod interface and the node/peer side): the CNI's MTU, e.g. an overlay's 1450."""
    guest_mtu: list[GuestMtu] = Field(default_factory=list)
    """MTU of the VM's NIC: `pod` follows the pod interface (what virt-launcher gives a tap binding's guest), a
    number sets it (passt/slirp --mtu, the tap and the guest's interface). Strategies without a VM ignore it."""
    guest_mtu_strategies: list[str] = Field(default_factory=list)
    """The strategies (or variants) the guest-MTU sweep applies to; empty: every strategy with a VM. The others
    keep their binding's default (a tap follows the pod's MTU, as virt-launcher sets it)."""
    message_bytes: list[Annotated[int, Field(ge=64, le=65000)]] = Field(default_factory=list)
    """RR message size and UDP datagram size."""
    streams: list[Annotated[int, Field(ge=1, le=128)]] = Field(default_factory=list)
    """Parallel TCP streams of throughput tests (iperf3 -P)."""

    @model_validator(mode="after")
    def _distinct(self) -> Sweep:
        for name in ("pod_mtu", "guest_mtu", "message_bytes", "streams"):
            values = getattr(self, name)
            if len(set(values)) != len(values):
                raise ValueError(f"field 'sweep.{name}': lists a value twice")
        return self


class Variant(Strict):
    strategy: str
    options: dict[str, Any] = Field(default_factory=dict)
    qemu_build: QemuBuild | None = None
    """The QEMU this variant's VM runs on (guest: qemu), overriding `qemu.build`: 7.2 and 10 side by side."""


class DockerOptions(Strict):
    """The docker runtime's compute container (harness.runtime.docker): capabilities added to or dropped from
    Docker's defaults (names as Docker takes them: NET_ADMIN, SYS_ADMIN, ...) and the devices passed in."""

    compute_cap_add: list[str] = Field(default_factory=list)
    compute_cap_drop: list[str] = Field(default_factory=list)
    devices: list[Literal["/dev/kvm", "/dev/net/tun", "/dev/vhost-net"]] = Field(
        default_factory=lambda: ["/dev/kvm", "/dev/net/tun", "/dev/vhost-net"]
    )
    seccomp: Literal["default", "unconfined"] = "default"
    """compute's seccomp: Docker's default profile (RuntimeDefault), or none (KubeVirt's default pod)."""
    setup: Literal["node-agent", "in-pod"] = "node-agent"
    """Who runs a binding's privileged setup: the node (virt-handler's design) or the pod itself (the 2018
    research's): then its rule and sysctl commands run in compute, with compute's capabilities."""

    @field_validator("compute_cap_add", "compute_cap_drop")
    @classmethod
    def _capability_names(cls, caps: list[str]) -> list[str]:
        for cap in caps:
            if not re.fullmatch(r"[A-Z_]+", cap.removeprefix("CAP_")):
                raise ValueError(f"{cap!r} is not a capability name (e.g. NET_ADMIN)")
        return [c.removeprefix("CAP_") for c in caps]


class Scenario(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    runtime: str = "netns"
    """Where pods live: network namespaces, or containers on the project's Docker engine (harness.runtime.docker)."""
    docker: DockerOptions = Field(default_factory=DockerOptions)
    """The docker runtime's compute container; ignored on netns."""
    guest: GuestKind = GuestKind.NETNS
    """The VM the strategies attach: the netns guest, or a QEMU guest (issue 5) set up by `qemu`."""
    qemu: QemuOptions = Field(default_factory=QemuOptions)
    strategies: list[str] = Field(min_length=1)
    """Strategy names, or names of `variants` (a strategy with other options, measured side by side)."""
    variants: dict[str, Variant] = Field(default_factory=dict)
    sidecars: list[SidecarKind] = Field(default_factory=lambda: [SidecarKind.NONE], min_length=1)
    peers: list[PeerKind] = Field(default_factory=lambda: [PeerKind.OUTSIDE], min_length=1)
    """Who is on the other side of the pod: `outside` (a plaintext client/server outside the mesh) and/or
    `meshed` (a pod with its own proxy: Istio mTLS between sidecars, HBONE between ztunnels). Modes without meshed
    clients (none, linkerd-style) get the outside peer only."""
    peer_authentication: list[PeerAuthentication] = Field(
        default_factory=lambda: [PeerAuthentication.PERMISSIVE], min_length=1
    )
    """Istio's PeerAuthentication mode(s): `permissive` (mTLS and plaintext accepted) and/or `strict` (plaintext
    refused); Istio's modes only."""
    dns_capture: bool | None = None
    """Under ambient: istio-cni's DNS capture (the chart's `ambient.dnsCapture`; unset: the Istio release's default,
    off in 1.24, on from 1.25): the pod's DNS queries go to ztunnel's DNS proxy (harness/pod/dns_proxy.py).
    `false` leaves them to the cluster's resolver; the rows' `sidecar` column then says `+no-dns-capture`."""
    istio: IstioRelease = ISTIO_LATEST
    """The Istio release whose mesh modes are modelled (harness/pod/istio.py): its redirection backends, ambient's
    DNS capture default and whether its node agent reads istio.io/reroute-virtual-interfaces; Istio rows record it."""
    ip_families: list[Literal["ipv4", "ipv6"]] = Field(default_factory=lambda: ["ipv4"], min_length=1)
    """`[ipv4]` (default), `[ipv4, ipv6]` (a dual-stack bed: every test once per family, the IPv6 one labelled
    `/ipv6` and judged against direct's IPv6) or `[ipv6]`; a binding whose IPv6 path is not built here runs its
    IPv4 tests only, and the run says so (docs/running.md)."""
    istio_dual_stack: bool = True
    """On a dual-stack run, Istio installed dual stack (istio-init with ISTIO_DUAL_STACK, istio-cni's `ambient.ipv6`):
    its IPv6 capture too. False: the IPv4-only capture on the dual-stack pod, what a cluster without the setting
    gets (rows' `istio_dual_stack`, headings `IPv4 capture only`)."""
    istio_backends: list[IstioBackend] = Field(default_factory=lambda: [IstioBackend.IPTABLES], min_length=1)
    """Istio's redirection backend(s) (`global.nativeNftables`): each Istio mode is measured once per backend
    listed, side by side in the same blocks; the rows' `sidecar` column says `+nftables` for the native one."""
    kubevirt: KubevirtRelease = LATEST
    """The KubeVirt release whose launcher pod is modelled (harness/pod/kubevirt.py): the annotations it writes
    (under ambient, 1.7+ masquerade pods are rerouted), and which bindings it ships in core; every row records it."""
    repetitions: int = Field(3, ge=1, le=1000)
    """Blocks to run (each binding once, next to direct); with `precision`, the pilot's blocks (at least
    `pilot_blocks`)."""
    design: Literal["blocks", "rounds"] = "blocks"
    """`blocks`: per sidecar, direct before, between and after the other bindings, each judged against the directs
    beside it (harness/run/plan.py); `rounds`: every cell once per round, shuffled (no pairing)."""
    precision: float | None = Field(None, gt=0, lt=1)
    """Stop when every judged ratio's 95% interval is within +-precision (0.1 = 10%), by Stein's two-stage rule:
    a shared pilot of `pilot_blocks` blocks (every cell) gives the ratios' spread, from which each ratio's Stein
    pilot length follows (harness/run/precision.py); later blocks hold only the cells whose ratios still need
    blocks, until each ratio's need is met or the time budget ends."""
    pilot_blocks: int = Field(5, ge=2, le=100)
    time_budget_minutes: float | None = Field(None, gt=0, le=1440)
    """The run's time budget unless `--time-budget` gives one: a run estimated above it is refused, and a
    precision run adds blocks only while the next block fits in it."""
    cpu_placement: Literal["none", "split"] = "none"
    """`split`: every process of the peer (the rest of the cluster) on CPU 0, everything of the node, pod and
    guest on CPU 1 (taskset), so the client and server never share a core; `none`: the scheduler decides."""
    seed: int | None = None
    """Seed of the per-round shuffle of cells; None draws one (recorded in run.json)."""
    keep_outputs: bool = False
    """Save every test client's output (stdout, stderr, exit status) in raw/output-<cell>-<test>.json: what a
    cluster's Job prints for `vmnetbench ingest` (tests/test_cluster.py reads the two back the same way)."""
    claims: bool = False
    """After the blocks, judge the seed post's claims for the seed's bindings in the run (claims.json in the run's
    folder, the seed's table on its page), reusing the blocks' rows and probing only what they lack
    (harness/claims/verdicts.py `claims_phase`)."""
    tests: list[Test] = Field(min_length=1)
    strategy_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    sweep: Sweep = Field(default_factory=Sweep)

    @field_validator("kubevirt", "istio", mode="before")
    @classmethod
    def _release_as_text(cls, value: object, info: ValidationInfo) -> object:
        """YAML reads `kubevirt: 1.9` or `istio: 1.30` as a number; the release is its text. A number whose
        two-decimal text names a release (1.30, read as 1.3) is taken as that release."""
        if not isinstance(value, int | float) or isinstance(value, bool):
            return value
        known = {str(k) for k in (IstioRelease if info.field_name == "istio" else KubevirtRelease)}
        return next((text for text in (str(value), f"{value:.2f}") if text in known), str(value))

    @field_validator("runtime")
    @classmethod
    def _known_runtime(cls, name: str) -> str:
        from harness.runtime.registry import RUNTIMES

        if name not in RUNTIMES:
            raise ValueError(f"unknown runtime {name!r}; allowed: {', '.join(RUNTIMES)}")
        return name

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
        for name in self.sweep.guest_mtu_strategies:
            if name not in self.strategies:
                raise ValueError(
                    f"field 'sweep.guest_mtu_strategies': {name!r} is not in 'strategies' "
                    f"({', '.join(self.strategies)})"
                )
        if self.precision and (self.design != "blocks" or "direct" not in self.strategies):
            raise ValueError(
                "field 'precision': judges each binding's ratio to the direct beside it, so it needs "
                "design: blocks and direct in 'strategies'"
            )
        for t in self.tests:
            if t.netns_only and (self.runtime != "netns" or self.guest != GuestKind.NETNS):
                raise ValueError(
                    f"field 'tests': a {t.kind} test runs on the netns runtime with the netns guest only "
                    f"({t.netns_only})"
                )
            if t.qemu_only and (self.runtime != "netns" or self.guest != GuestKind.QEMU):
                raise ValueError(
                    f"field 'tests': a {t.kind} test runs on the netns runtime with guest: qemu only ({t.qemu_only})"
                )
        release = istio_release(self.istio)
        for sidecar in self.sidecars:
            mesh = mesh_for(sidecar)
            if not mesh.outside_clients and PeerKind.MESHED not in self.peers:
                raise ValueError(
                    f"field 'peers': {sidecar} serves meshed clients only; add meshed (peers: [outside, meshed])"
                )
            offered = mesh.backends(IstioSetup(self.istio))
            missing = [b for b in self.istio_backends if mesh.istio_component and b not in offered]
            if missing:
                raise ValueError(
                    f"field 'istio_backends': Istio {release.name} has no {missing[0]} backend for {sidecar} "
                    f"({mesh.istio_component} mode: {', '.join(offered)}; nftables for the sidecar since 1.27, "
                    "for ambient since 1.28)"
                )
        if self.ip_families == ["ipv6"]:  # IPv6 only: a kind without an IPv6 run would run nowhere
            lacking = {t.kind: t.ipv6_missing for t in self.tests if t.ipv6_missing}
            if lacking:
                kind, why = next(iter(lacking.items()))
                raise ValueError(f"field 'ip_families': {kind} has no IPv6 run here ({why}); add ipv4 or drop it")
        if len(set(self.strategies)) != len(self.strategies):
            raise ValueError("field 'strategies': lists a strategy twice")
        for name in self.strategy_options:
            if name not in STRATEGIES:
                raise ValueError(f"field 'strategy_options': unknown strategy {name!r}; known strategies: {known}")
        checked = [(f"strategy_options.{name}", name, options) for name, options in self.strategy_options.items()]
        checked += [(f"variants.{label}.options", v.strategy, v.options) for label, v in self.variants.items()]
        for where, name, options in checked:
            try:
                _strategy_options(name, options)
            except ValidationError as e:
                raise ValueError(_first_error(e, prefix="", base=where, model=STRATEGIES[name].Options)) from None
        for label in self.strategies:
            try:
                self.options_for(label)
            except ValidationError as e:
                where = f"variants.{label}.options" if label in self.variants else f"strategy_options.{label}"
                raise ValueError(
                    _first_error(e, prefix="", base=where, model=STRATEGIES[self.strategy_of(label)].Options)
                ) from None
        return self

    def qemu_build_of(self, label: str) -> str:
        variant = self.variants.get(label)
        return variant.qemu_build if variant and variant.qemu_build else self.qemu.build

    def strategy_of(self, label: str) -> str:
        return self.variants[label].strategy if label in self.variants else label

    def for_guest(self) -> tuple[Scenario, list[str]]:
        """The scenario as its guest can run it, and the strategies left out: on the netns guest a binding that
        serves a virtio device (passt-vhost-user) has nothing to attach, so it is left out (as `claims` does)
        rather than recorded as failing, which would read as the binding's verdict. ValueError when nothing but
        direct would be left."""
        if self.guest != GuestKind.NETNS:
            return self, []
        left_out = [s for s in self.strategies if STRATEGIES[self.strategy_of(s)].needs_qemu]
        if not left_out:
            return self, []
        kept = [s for s in self.strategies if s not in left_out]
        if not [s for s in kept if self.strategy_of(s) != "direct"]:
            raise ValueError(
                f"field 'strategies': {', '.join(left_out)} needs a VM; run with --guest qemu (or "
                "guest: qemu), or add bindings the netns guest can attach"
            )
        return self.model_copy(update={"strategies": kept}), left_out

    def options_for(self, label: str) -> StrategyOptions:
        """Options of a strategy or variant: the strategy's `strategy_options`, overlaid by the variant's."""
        base = self.strategy_of(label)
        options = {**self.strategy_options.get(base, {})}
        if label in self.variants:
            options.update(self.variants[label].options)
        return _strategy_options(base, options)


def _strategy_options(strategy: str, options: dict[str, Any]) -> StrategyOptions:
    """Strict in JSON mode, as the scenario itself: YAML's strings and numbers, enums by their value."""
    return STRATEGIES[strategy].Options.model_validate_json(json.dumps(options, default=str), strict=True)


def parse_strategy_options(strategy: str, options: dict[str, Any], where: str) -> StrategyOptions:
    """`options` for `strategy` as a scenario would take them; bad input raises ScenarioError, one sentence
    naming `where` and the field (and the strategy's fields when the name is unknown)."""
    try:
        return _strategy_options(strategy, options)
    except ValidationError as e:
        raise ScenarioError(_first_error(e, prefix="", base=where, model=STRATEGIES[strategy].Options) + ".") from None


def _loc(loc: tuple) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:  # a key with a control character (a fuzzer's "\r") is shown escaped: the error stays one line
            text = str(item)
            parts.append(("." if parts else "") + (text if text.isprintable() else repr(text)))
    return "".join(parts)


def _first_error(
    e: ValidationError, prefix: str, base: str = "", model: type[BaseModel] | None = None, data: object = None
) -> str:
    """One sentence for the first error; `base` is the dotted path, and `model` the class, of the model that
    failed inside the file (the Scenario itself when not given)."""
    err = e.errors()[0]
    where = ".".join(p for p in (base, _loc(err["loc"])) if p)
    field = f"field '{where}'" if where else "the top level"
    if err["type"] == "extra_forbidden":
        allowed = list(model.model_fields) if model and len(err["loc"]) == 1 else _fields_at(err["loc"][:-1], data)
        return f"{prefix}{field} is not a known field" + (f"; allowed fields: {', '.join(allowed)}" if allowed else "")
    msg = err["msg"]
    if msg.startswith("Value error, "):  # our own validators already name the field and the value
        msg = msg.removeprefix("Value error, ")
        return f"{prefix}{msg}" if not where else f"{prefix}{field}: {msg}"
    if err["type"] != "missing" and "input" in err:
        msg += f" (got {err['input']!r})"
    return f"{prefix}{field}: {msg}"


def _fields_at(loc: tuple, data: object = None) -> list[str]:
    """The allowed field names of the model at `loc` in a Scenario (for 'unknown field' errors); `data`, the
    document, says which kind a test entry is."""
    model: type[BaseModel] = Scenario
    node = data
    for item in loc:
        node = node[item] if isinstance(node, dict | list) and _has(node, item) else None
        if isinstance(item, int):
            kind = node.get("kind") if isinstance(node, dict) else None
            if model is Scenario and kind in TEST_KINDS:  # a test entry: its kind names its model
                model = TEST_KINDS[kind]
            continue
        annotation = model.model_fields[item].annotation if item in model.model_fields else None
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        elif item != "tests":
            return []
    return list(model.model_fields)


def _has(node: dict | list, item: object) -> bool:
    return item in node if isinstance(node, dict) else isinstance(item, int) and 0 <= item < len(node)


MAX_SCENARIO_BYTES = 1 << 20  # a scenario is a page of YAML; a larger file is a mistake, refused before parsing


MAX_SCENARIO_NODES = 100_000  # YAML nodes after expanding every alias: a scenario has a few hundred


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a mapping that names a key twice (YAML would keep the last silently), a key
    that is not a plain scalar, and a document whose aliases expand to more than MAX_SCENARIO_NODES nodes (an
    alias bomb: a kilobyte of anchors that expands exponentially once anything walks it)."""

    def get_single_node(self):
        root = super().get_single_node()
        if root is not None:
            _expanded_size(root, {})
        return root

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                kind = "list" if isinstance(key_node, yaml.SequenceNode) else "mapping"
                raise ScenarioError(
                    f"a key is a {kind} (line {key_node.start_mark.line + 1}); keys are plain names "
                    "such as `strategies`"
                )
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ScenarioError(
                    f"the key {key!r} appears twice in one mapping (lines {seen[key]} and "
                    f"{key_node.start_mark.line + 1}); YAML would keep only the last"
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """The node count of the document with every alias expanded, computed once per shared node (iteratively: a
    deep document must not exhaust Python's stack); ScenarioError past MAX_SCENARIO_NODES."""
    stack = [(node, False)]
    while stack:
        current, children_done = stack.pop()
        if id(current) in sizes and not children_done:
            continue
        children = (
            [n for pair in current.value for n in pair]
            if isinstance(current, yaml.MappingNode)
            else list(current.value)
            if isinstance(current, yaml.SequenceNode)
            else []
        )
        pending = [c for c in children if id(c) not in sizes]
        if pending and not children_done:
            sizes[id(current)] = -1  # on the stack: a recursive alias points back here
            stack.append((current, True))
            stack.extend((c, False) for c in pending)
            continue
        if any(sizes.get(id(c)) == -1 for c in children):
            raise ScenarioError(
                f"the YAML refers to itself (an alias inside its own anchor, line "
                f"{current.start_mark.line + 1}); a scenario is a tree"
            )
        sizes[id(current)] = 1 + sum(sizes[id(c)] for c in children)
        if sizes[id(current)] > MAX_SCENARIO_NODES:
            raise ScenarioError(
                f"the YAML expands to more than {MAX_SCENARIO_NODES} nodes once its aliases are "
                "expanded (an alias bomb?); a scenario has a few hundred"
            )
    return sizes[id(node)]


def _read_regular_file(path: Path) -> bytes:
    """At most MAX_SCENARIO_BYTES + 1 bytes of a regular file; a FIFO, device or folder is refused before it is
    opened for reading (opening a FIFO would wait for a writer, /dev/zero never ends)."""
    try:
        info = path.stat()
    except OSError as e:
        raise ScenarioError(f"{path}: cannot read the scenario file ({e.strerror}).") from None
    if not stat.S_ISREG(info.st_mode):
        kinds = {
            stat.S_IFDIR: "a folder",
            stat.S_IFIFO: "a FIFO",
            stat.S_IFCHR: "a device",
            stat.S_IFBLK: "a device",
            stat.S_IFSOCK: "a socket",
        }
        raise ScenarioError(
            f"{path}: is {kinds.get(stat.S_IFMT(info.st_mode), 'not a regular file')}; a scenario "
            "is a regular YAML file."
        )
    if info.st_size > MAX_SCENARIO_BYTES:
        raise ScenarioError(
            f"{path}: the scenario file is {info.st_size} bytes; at most "
            f"{MAX_SCENARIO_BYTES} bytes (1 MiB) are accepted."
        )
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)  # swapped for a FIFO since the stat: no wait
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise ScenarioError(f"{path}: is not a regular file; a scenario is a regular YAML file.")
            return f.read(MAX_SCENARIO_BYTES + 1)
    except OSError as e:
        raise ScenarioError(f"{path}: cannot read the scenario file ({e.strerror}).") from None


def load_scenario(path: str | Path) -> tuple[Scenario, str]:
    """Parse and validate a scenario file; returns the model and the text as given (kept in run.json). Types are
    strict (`port: true` is not a port), keys unique, the file UTF-8 text of at most 1 MiB."""
    path = Path(path)
    raw = _read_regular_file(path)
    if len(raw) > MAX_SCENARIO_BYTES:
        raise ScenarioError(f"{path}: the scenario file is larger than {MAX_SCENARIO_BYTES} bytes (1 MiB).")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ScenarioError(f"{path}: not UTF-8 text (byte {raw[e.start]:#04x} at offset {e.start}).") from None
    return parse_scenario_text(text, path), text


def parse_scenario_text(text: str, path: str | Path = "scenario") -> Scenario:
    """A scenario's text (as a file holds it, or as run.json and a manifests index keep it) parsed and
    validated; errors name `path`."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except ScenarioError as e:
        raise ScenarioError(f"{path}: {e}.") from None
    except yaml.YAMLError as e:
        raise ScenarioError(f"{path}: not valid YAML ({str(e).splitlines()[0]}).") from None
    except RecursionError:
        raise ScenarioError(f"{path}: the YAML nests too deeply to be a scenario.") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: the top level must be a mapping with name, strategies and tests.")
    try:
        # Through JSON, so strict mode still takes enum names as text while refusing `true` for a number.
        document = json.dumps(data, default=str)
    except (TypeError, ValueError) as e:
        raise ScenarioError(f"{path}: holds a value that is not plain YAML data ({e}).") from None
    try:
        return Scenario.model_validate_json(document, strict=True)
    except ValidationError as e:
        raise ScenarioError(_first_error(e, prefix=f"{path}: ", data=data) + ".") from None
