"""What every layer may ask about a binding by its name, answered from the binding's own declaration.

Each binding is one Strategy class (strategies/<name>.py) that declares, beside its setup, how KubeVirt ships it
release by release (`kubevirt`: core, plugin, research design, plain pod; its user-facing name; the VMI
interface field; whether virt-controller annotates its pods for Istio) and its colour in figures. Defining the
class registers it here (strategies.base.Strategy.__init_subclass__), the way Mininet injects its node classes:
layers below strategies (analysis of stored rows, cluster objects, the KubeVirt pod model) look a binding up by
name and never spell one. A name no class declares (a variant label, an ingested row) resolves through the
variant's base or reads as "not in this release".
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.pod.kubevirt import (
    KUBEVIRT_INTERFACES_ANNOTATION,
    LATEST,
    MASQUERADE_BRIDGE,
    REROUTE_ANNOTATION,
    InRelease,
    KubevirtBinding,
    KubevirtRelease,
    Shipping,
    release,
)

PALETTE = [f"C{i}" for i in range(10)]
"""matplotlib's default cycle: a binding declares its place in it, so its colour is the same in every figure."""


@dataclass(frozen=True)
class BindingFacts:
    name: str
    kubevirt: KubevirtBinding
    colour: str
    order: int
    """Registration order: tables and figures list bindings in it."""


_REGISTRY: dict[str, BindingFacts] = {}


def register_binding(name: str, kubevirt: KubevirtBinding, colour: str) -> None:
    """Called once per Strategy class as it is defined (a redefinition replaces, as a test's dummy binding does)."""
    order = _REGISTRY[name].order if name in _REGISTRY else len(_REGISTRY)
    _REGISTRY[name] = BindingFacts(name, kubevirt, colour, order)


def unregister_binding(name: str) -> None:
    _REGISTRY.pop(name, None)


def registered() -> list[BindingFacts]:
    if not _REGISTRY:  # every lookup would say "not in this release": fail instead of answering wrongly
        raise RuntimeError("no binding is registered: import `strategies` before asking about bindings")
    return sorted(_REGISTRY.values(), key=lambda b: b.order)


def facts(name: str) -> BindingFacts | None:
    registered()
    return _REGISTRY.get(name)


def _form(kubevirt: KubevirtRelease | str, strategy: str) -> InRelease:
    found = facts(strategy)
    return (found.kubevirt if found else KubevirtBinding.unknown(strategy)).of(kubevirt)


def shipping(kubevirt: KubevirtRelease | str, strategy: str) -> Shipping:
    """Whether users of the release can choose the binding: what the recommendation's first condition reads."""
    return _form(kubevirt, strategy).shipping


def binding_status(kubevirt: KubevirtRelease | str, strategy: str) -> str:
    """What a strategy is in a release, as rows record it: `core`, a plugin note, `plain pod`, `research design:
    never shipped ...`, an absent form's note, or `not in this release`."""
    return _form(kubevirt, strategy).status


def migration_verdict(kubevirt: KubevirtRelease | str, strategy: str) -> str:
    """What the release does with a live migration of a VMI on this binding (`allowed`, a condition, or why not)."""
    found = facts(strategy)
    return (found.kubevirt if found else KubevirtBinding.unknown(strategy)).migration_verdict(kubevirt)


def user_name(kubevirt: KubevirtRelease | str | None, strategy: str) -> str:
    """The binding as a user of the release knows it (`passtBinding` for passt-vhost-user from 1.8 on)."""
    if kubevirt is None or str(kubevirt) not in {str(k) for k in KubevirtRelease}:
        kubevirt = LATEST
    found = facts(strategy)
    return found.kubevirt.of(kubevirt).user_name if found else strategy


def shipped_bindings(kubevirt: KubevirtRelease | str) -> list[str]:
    """The strategies standing for the bindings a release ships (core, then plugins), sorted within each."""
    forms = [(b.name, b.kubevirt.of(kubevirt).shipping) for b in registered()]
    return sorted(n for n, s in forms if s is Shipping.CORE) + sorted(n for n, s in forms if s is Shipping.PLUGIN)


def vmi_interface(kubevirt: KubevirtRelease | str, strategy: str) -> dict | None:
    """The VMI interface's binding field for the strategy in that release (None: no VMI can ask for it)."""
    interface = _form(kubevirt, strategy).interface
    return dict(interface) if interface is not None else None


def pod_annotations(kubevirt: KubevirtRelease | str, strategy: str) -> dict[str, str]:
    """The mesh-related annotations the release's virt-controller puts on the launcher pod of a VMI with this
    binding (kubevirt/kubevirt pkg/network/pod/annotations/generator.go); what istio-cni and the sidecar injector
    then read."""
    found = facts(strategy)
    r = release(kubevirt)
    if found is None or not found.kubevirt.annotated_for_istio or r.name is KubevirtRelease.RESEARCH_2018:
        return {}
    annotations = {KUBEVIRT_INTERFACES_ANNOTATION: MASQUERADE_BRIDGE}
    if r.annotates_reroute:
        annotations[REROUTE_ANNOTATION] = MASQUERADE_BRIDGE
    return annotations


def colour(name: str, others: list[str] = ()) -> str:
    """A binding's figure colour; a name no class declares (a variant) takes the next free one after them."""
    found = facts(name)
    if found:
        return found.colour
    return PALETTE[(len(_REGISTRY) + list(others).index(name) if name in others else len(_REGISTRY)) % 10]
