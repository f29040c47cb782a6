"""Network namespaces and the links between them, over pyroute2 netlink (one concept per class, as Mininet's
Node and Link)."""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket
import subprocess
import threading
from collections.abc import Callable
from typing import TypeVar

from pyroute2 import NetNS, netns
from pyroute2.netlink.exceptions import NetlinkError

from harness.lab.processes import end_netns_processes, netns_argv

IFA_F_NODAD = 0x02  # linux/if_addr.h: no duplicate address detection

T = TypeVar("T")


class CommandFailed(RuntimeError):
    pass


class Namespace:
    """A named network namespace with a netlink handle; loopback is brought up on creation."""

    def __init__(self, name: str, *, existing: bool = False) -> None:
        self.name = name
        ours = not existing and name not in netns.listnetns()  # never remove a namespace someone else made
        try:
            if not existing:
                netns.create(name)
            self.ipr = NetNS(name)
            if not existing:
                self.up("lo")
        except BaseException:
            # Without NET_ADMIN `up("lo")` fails, and a signal can land while pyroute2's helper has already made
            # the namespace: one we were making must not outlive a failed construction.
            if ours:
                remove_namespace(name)
            raise
        self.sysctls_set: dict[str, str] = {}  # what this harness changed, for `describe` and the claims probes
        self.runs_in: Callable | None = None  # (argv, input) -> CompletedProcess-like; None: nsenter from the host

    @classmethod
    def open(cls, name: str) -> Namespace:
        """A handle on a namespace someone else created (and will remove)."""
        if name not in netns.listnetns():
            raise LookupError(f"no network namespace {name!r}")
        return cls(name, existing=True)

    def close(self) -> None:
        self.ipr.close()

    # -- links and addresses ---------------------------------------------------------------------------
    def index(self, ifname: str) -> int:
        found = self.ipr.link_lookup(ifname=ifname)
        if not found:
            raise LookupError(f"no interface {ifname!r} in namespace {self.name}")
        return found[0]

    def has_link(self, ifname: str) -> bool:
        return bool(self.ipr.link_lookup(ifname=ifname))

    def up(self, ifname: str) -> None:
        self.ipr.link("set", index=self.index(ifname), state="up")

    def set_mtu(self, ifname: str, mtu: int) -> None:
        self.ipr.link("set", index=self.index(ifname), mtu=mtu)

    def add_address(self, ifname: str, cidr: str) -> None:
        """An IPv4 or IPv6 address; an IPv6 one without duplicate address detection (`nodad`, as a CNI adds a pod's
        address it owns): usable at once instead of after a second of tentative state."""
        iface = ipaddress.ip_interface(cidr)
        spec: dict = {"address": str(iface.ip), "prefixlen": iface.network.prefixlen}
        if iface.version == 6:
            spec |= {"family": socket.AF_INET6, "flags": IFA_F_NODAD}
        self.ipr.addr("add", index=self.index(ifname), **spec)

    def flush_addresses(self, ifname: str) -> None:
        self.ipr.flush_addr(index=self.index(ifname))

    def addresses(self, ifname: str, family: int = socket.AF_INET) -> list[str]:
        """The link's addresses of `family` (IPv4 by default; IPv6 ones without the link-local fe80::/10)."""
        found = [
            f"{a.get('IFA_ADDRESS')}/{a['prefixlen']}"
            for a in self.ipr.get_addr(index=self.index(ifname))
            if a["family"] == family
        ]
        return [a for a in found if not a.lower().startswith("fe80:")]

    def add_route(self, dst: str, *, gateway: str | None = None, dev: str | None = None) -> None:
        """`dst` a network or `default`; an IPv6 gateway (or network) makes it an IPv6 route."""
        spec: dict = {"dst": dst}
        if ":" in (gateway or "") or ":" in dst:
            spec["family"] = socket.AF_INET6
            spec["dst"] = "::/0" if dst == "default" else dst
        if gateway:
            spec["gateway"] = gateway
        if dev:
            spec["oif"] = self.index(dev)
        self.ipr.route("add", **spec)

    def rename(self, ifname: str, new_name: str) -> None:
        index = self.index(ifname)
        self.ipr.link("set", index=index, state="down")
        self.ipr.link("set", index=index, ifname=new_name)
        self.ipr.link("set", index=index, state="up")

    def mac(self, ifname: str) -> str:
        return self.ipr.get_links(self.index(ifname))[0].get("IFLA_ADDRESS")

    def set_mac(self, ifname: str, mac: str) -> None:
        self.ipr.link("set", index=self.index(ifname), address=mac)

    def add_policy_rule(
        self, *, fwmark: int, table: int, mask: int | None = None, priority: int = 100, ipv6: bool = False
    ) -> None:
        """`ip [-6] rule add fwmark MARK[/MASK] pref PRIORITY lookup TABLE`."""
        extra = {"fwmask": mask} if mask is not None else {}
        family = socket.AF_INET6 if ipv6 else socket.AF_INET
        self.ipr.rule("add", fwmark=fwmark, table=table, priority=priority, family=family, **extra)

    def add_local_default_route(self, table: int, ipv6: bool = False) -> None:
        """`ip route add local 0.0.0.0/0 dev lo table TABLE` (`::/0` with `ipv6`): deliver every marked packet
        locally (TPROXY)."""
        family = {"family": socket.AF_INET6, "dst": "::"} if ipv6 else {"dst": "0.0.0.0"}
        try:
            self.ipr.route("add", dst_len=0, type="local", oif=self.index("lo"), table=table, scope="host", **family)
        except NetlinkError as e:
            if e.code != errno.EEXIST:
                raise
            raise CommandFailed(
                f"route table {table} in {self.name} already has a local default route (`ip route add local "
                f"{family['dst']}/0 dev lo table {table}`: File exists): another component owns that table"
            ) from None

    def policy_rules(self) -> list[str]:
        return self.run(["ip", "rule", "show"]).splitlines()

    def add_tap(self, ifname: str, *, mtu: int | None = None, owner: int = 0) -> None:
        """A persistent tap device for a QEMU started in this namespace to open by name. Owned by QEMU's uid, as
        virt-handler makes it (kubevirt pkg/network/driver/nmstate/spec.go, Tuntap Owner): a QEMU in a container
        without CAP_NET_ADMIN can then attach to it (TUNSETIFF checks the owner)."""
        self.ipr.link("add", ifname=ifname, kind="tuntap", mode="tap", uid=owner)
        if mtu:
            self.set_mtu(ifname, mtu)
        self.up(ifname)

    def add_bridge(self, ifname: str) -> None:
        self.ipr.link("add", ifname=ifname, kind="bridge")
        self.up(ifname)

    def enslave(self, ifname: str, bridge: str) -> None:
        self.ipr.link("set", index=self.index(ifname), master=self.index(bridge))

    def link_names(self) -> list[str]:
        return [link.get("IFLA_IFNAME") for link in self.ipr.get_links()]

    def mtu(self, ifname: str) -> int:
        return int(self.ipr.get_links(self.index(ifname))[0].get("IFLA_MTU"))

    # -- sysctls and commands --------------------------------------------------------------------------
    def call(self, fn: Callable[[], T]) -> T:
        """Run `fn` on a short-lived thread that has entered this namespace (setns affects only the calling
        thread, so the harness's own threads never change namespace). Sockets `fn` opens live in here."""
        result: list = []
        errors: list[BaseException] = []

        def inside() -> None:
            try:
                netns.setns(self.name)
                result.append(fn())
            except BaseException as e:  # noqa: BLE001 - re-raised on the caller's thread
                errors.append(e)

        worker = threading.Thread(target=inside, name=f"in-{self.name}")
        worker.start()
        worker.join()
        if errors:
            raise errors[0]
        return result[0]

    def sysctl(self, key: str, value: str | int) -> None:
        """Write /proc/sys/<key> as seen from inside this namespace."""

        def write() -> None:
            try:
                with open(f"/proc/sys/{key.replace('.', '/')}", "w") as f:
                    f.write(str(value))
            except OSError as e:
                raise type(e)(e.errno, f"{e.strerror}: setting sysctl {key}={value} in {self.name}") from None

        if self.runs_in is not None:  # in-pod setup: the pod writes its own sysctl (/proc/sys read-only there)
            self.run(["sh", "-c", f"echo {value} > /proc/sys/{key.replace('.', '/')}"])
        else:
            self.call(write)
        self.sysctls_set[key] = str(value)

    def run(self, argv: list[str], *, input: str | None = None, check: bool = True) -> str:
        """Run a short configuration command (nft, iptables-restore) in this namespace and return stdout; through
        `self.runs_in` when set (the docker runtime's in-pod setup: the command runs in the pod's container)."""
        if self.runs_in is not None:
            done = self.runs_in(argv, input)
        else:
            done = subprocess.run(netns_argv(self.name, argv), input=input, capture_output=True, text=True, timeout=30)
        if check and done.returncode != 0:
            raise CommandFailed(f"{' '.join(argv)} in {self.name} failed: {done.stderr.strip() or done.stdout.strip()}")
        return done.stdout

    @property
    def path(self) -> str:
        """The namespace's bind mount, which setns(2) callers (Envoy's network_namespace_filepath) open."""
        return f"/run/netns/{self.name}"

    @property
    def inode(self) -> int:
        return os.stat(self.path).st_ino

    def listening_tcp_ports(self) -> set[int]:
        """TCP ports some socket in this namespace listens on (`ss -Htln`)."""
        lines = self.run(["ss", "-Htln"]).splitlines()
        return {int(line.split()[3].rsplit(":", 1)[1]) for line in lines if line.strip()}

    def remove(self) -> None:
        """Close the handle, end any process still inside (found by the namespace's inode: a straggler that left
        its process group would keep the namespace alive after its name is gone), and remove it."""
        try:
            inode = self.inode
        except FileNotFoundError:  # removed under us (a forced `clean`); nothing of it is ours to end
            inode = None
        try:
            self.ipr.close()
        finally:
            if inode is not None:
                end_netns_processes({inode})
            remove_namespace(self.name)

    def __repr__(self) -> str:
        return f"Namespace({self.name!r})"


def veth(a: Namespace, a_ifname: str, b: Namespace, b_ifname: str, *, mtu: int | None = None) -> None:
    """A veth pair with one end in each namespace, created directly there (it never touches the root ns)."""
    a.ipr.link("add", ifname=a_ifname, kind="veth", peer={"ifname": b_ifname, "net_ns_fd": b.name})
    if mtu:
        a.set_mtu(a_ifname, mtu)
        b.set_mtu(b_ifname, mtu)
    a.up(a_ifname)
    b.up(b_ifname)


def list_namespaces() -> list[str]:
    return sorted(netns.listnetns())


def remove_namespace(name: str) -> None:
    """Remove a named namespace if it is there; one removed meanwhile by someone else (a forced `clean` racing
    the run's own teardown) is fine."""
    if name in netns.listnetns():
        with contextlib.suppress(FileNotFoundError):
            netns.remove(name)
