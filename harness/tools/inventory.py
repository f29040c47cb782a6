"""Every outside tool the harness runs, declared once: the program, the Debian package it comes from (installed
by the Makefile's deps, checked by tests/test_architecture.py), how its version is read, and where it must be
present besides the host: in the docker runtime's image, in the QEMU guest's initramfs. Provenance (run.json's
`tools`), the runtime image, the guest image and the install lists read it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tool:
    name: str
    """As run.json and the rows' `tools` column name it."""
    program: str
    package: str | None
    """The Debian package that installs it (None: part of the base system or built by the harness)."""
    version_argv: tuple[str, ...] | None = None
    """How its version is read (the first line with a digit), None: not recorded per run."""
    in_runtime_image: bool = False
    in_guest_image: bool = False


TOOLS: tuple[Tool, ...] = (
    Tool("iperf3", "iperf3", "iperf3", ("iperf3", "--version"), in_runtime_image=True, in_guest_image=True),
    Tool("sockperf", "sockperf", "sockperf", ("sockperf", "--version"), in_runtime_image=True, in_guest_image=True),
    Tool("nft", "nft", "nftables", ("nft", "--version"), in_runtime_image=True),
    Tool("iptables", "iptables", "iptables", ("iptables", "--version"), in_runtime_image=True),
    Tool("iptables-restore", "iptables-restore", "iptables", in_runtime_image=True),
    Tool("iptables-save", "iptables-save", "iptables", in_runtime_image=True),
    Tool("ip", "ip", "iproute2", ("ip", "-V"), in_runtime_image=True),
    Tool("ss", "ss", "iproute2", in_runtime_image=True),
    Tool("setpriv", "setpriv", "util-linux", in_runtime_image=True),
    Tool("slirp4netns", "slirp4netns", "slirp4netns", ("slirp4netns", "--version"), in_runtime_image=True),
    # Debian's pasta prints "unknown version": the package says which it is.
    Tool("pasta", "pasta", "passt", ("dpkg-query", "-W", "-f=passt ${Version}", "passt"), in_runtime_image=True),
    Tool("passt", "passt", "passt", in_runtime_image=True),
    Tool("socat", "socat", "socat", ("socat", "-V")),
    Tool("haproxy", "haproxy", "haproxy", ("haproxy", "-v")),
    Tool("qemu", "qemu-system-x86_64", "qemu-system-x86", ("qemu-system-x86_64", "--version"), in_runtime_image=True),
    Tool("gcc", "gcc", "gcc", ("gcc", "--version")),  # builds vmnb-crr, vmnb-http, vmnb-h2 and the relay
    # linked statically into vmnb-h2 (HTTP/2 and gRPC): the package's version is the library's
    Tool("nghttp2", "dpkg-query", "libnghttp2-dev", ("dpkg-query", "-W", "-f=libnghttp2 ${Version}", "libnghttp2-dev")),
    Tool("conntrack", "conntrack", "conntrack"),
    # the dns test kind (harness/kinds/dns.py): the cluster's resolver and the VM's lookups, netns only
    Tool("dnsmasq", "dnsmasq", "dnsmasq-base", ("dnsmasq", "--version")),
    Tool("dig", "dig", "bind9-dnsutils", ("dig", "-v")),
    Tool("sh", "sh", None, in_runtime_image=True),
    Tool("sleep", "sleep", None, in_runtime_image=True),
    Tool("timeout", "timeout", None, in_runtime_image=True),
    Tool("cat", "cat", None, in_runtime_image=True),
    # reads report.html as people see it (harness/analysis/browser.py); the tests' deps install it (TEST_PACKAGES)
    Tool("chromium", "chromium", "chromium"),
    # an independent TLS client in the tests: the mesh's mTLS refuses a certificate from another CA (test_meshed.py)
    Tool("openssl", "openssl", "openssl", ("openssl", "version")),
)


def versioned() -> dict[str, list[str]]:
    """name -> the command that prints its version, for every tool whose version a run records."""
    return {t.name: list(t.version_argv) for t in TOOLS if t.version_argv}


def runtime_image_programs() -> tuple[str, ...]:
    return tuple(t.program for t in TOOLS if t.in_runtime_image)


def guest_image_programs() -> tuple[str, ...]:
    return tuple(t.program for t in TOOLS if t.in_guest_image)


def debian_packages() -> set[str]:
    return {t.package for t in TOOLS if t.package}
