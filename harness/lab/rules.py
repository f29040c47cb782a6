"""Packet-filter rules inside a namespace, installed the way the real systems install them (KubeVirt shells
out to the `nft` binary: kubevirt/kubevirt pkg/network/driver/nft), and read back for `describe`."""

from __future__ import annotations

from harness.lab.netns import Namespace


def apply_nft(ns: Namespace, ruleset: str) -> None:
    """Load an nft script atomically (`nft -f -`: all of it or none of it)."""
    ns.run(["nft", "-f", "-"], input=ruleset)


def list_nft(ns: Namespace) -> str:
    return ns.run(["nft", "list", "ruleset"])


def iptables_save(ns: Namespace, *, ipv6: bool = False) -> str:
    return ns.run(["ip6tables-save" if ipv6 else "iptables-save"], check=False)


def apply_iptables(ns: Namespace, table: str, rules: list[str], *, ipv6: bool = False) -> None:
    """Add iptables rules, each a spec as given to `iptables -t TABLE` (`-N CHAIN`, `-A ...`, `-I CHAIN 1 ...`),
    in one `iptables-restore --noflush` transaction that keeps the rules already there (`ip6tables-restore` with
    `ipv6`)."""
    lines = [f"*{table}"]
    lines += [f":{r.split()[1]} - [0:0]" for r in rules if r.startswith("-N ")]
    lines += [r for r in rules if not r.startswith("-N ")]
    ns.run(["ip6tables-restore" if ipv6 else "iptables-restore", "--noflush"], input="\n".join([*lines, "COMMIT", ""]))
