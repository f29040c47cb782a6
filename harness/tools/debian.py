"""Today's passt and QEMU next to Debian 12's, from Debian's own archive and nothing else.

Users choose a binding on what KubeVirt ships now, so the harness measures the current passt and QEMU beside
Debian 12's (passt 0.0~git20230309, QEMU 7.2) without replacing them:

- passt 0.0~git20250503.587980c (Debian 13 "trixie"): its orig tarball fetched through apt from the machine's
  configured Debian mirror, verified against the SHA-256 pinned here, built with bookworm's gcc (plain `make`,
  libc only) into CACHE_DIR/passt/<version>/.
- QEMU 10.0.2 (bookworm-backports): qemu-system-x86, -common and -data and seabios downloaded with
  `apt-get download` and unpacked with `dpkg -x` into CACHE_DIR/qemu/<version>/, run from there with its own
  firmware directory (`-L`). Installed as a package it would replace 7.2; unpacked, both stay runnable and one
  run can measure them side by side. Libraries it links that bookworm lacks installed are plain bookworm
  packages (`make deps` installs them).

apt runs with a private state, cache and sources list under CACHE_DIR/apt: the machine's own apt
configuration and package database are never changed (Dir::State::status points at the real dpkg status read
only, so apt resolves against what is installed)."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from harness.lab.paths import CACHE_DIR

KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
DEFAULT_MIRROR = "http://deb.debian.org/debian"

PASST_2025 = "0.0~git20250503.587980c"
PASST_2025_DEBIAN = "0.0~git20250503.587980c-2+deb13u1"
PASST_2025_ORIG_SHA256 = "69d5eb843f7d648c2cc60bfbca6ea7b5014c6b6f07cdee362c2a8cf490515a49"


@dataclass(frozen=True)
class PasstSource:
    """A passt release in Debian's archive, built here from its orig tarball."""

    upstream: str
    debian: str
    orig_sha256: str


PASST_SOURCES = {
    "debian-13": PasstSource(PASST_2025, PASST_2025_DEBIAN, PASST_2025_ORIG_SHA256),
    # trixie-backports (2026-07-28): on a migration's source, passt keeps the TCP sockets (in repair mode, events
    # ignored) instead of exiting, "to avoid connection resets in case data is received after migration"
    # (its passt.1, --migrate-no-linger); 2025-05-03 exits and its pod's kernel resets late packets.
    "debian-13-backports": PasstSource(
        "0.0~git20260728.f8df3f1",
        "0.0~git20260728.f8df3f1-1~bpo13+1",
        "fcfeb5fbdf775bcc48edc1d5eac8a6d57bc333f8e67b714149376d36061416f0",
    ),
}

QEMU_10 = "1:10.0.2+ds-2+deb13u1~bpo12+1"
QEMU_10_PACKAGES = ("qemu-system-x86", "qemu-system-common", "qemu-system-data")
SEABIOS_BACKPORT = "1.16.3-2~bpo12+1"


class DebianFetchError(RuntimeError):
    pass


def configured_mirror(sources: Path = Path("/etc/apt/sources.list.d/debian.sources")) -> str:
    """The Debian mirror this machine's apt uses (deb822 `URIs:` of its main archive), so the private apt
    fetches from the same place; deb.debian.org when none is configured."""
    try:
        text = sources.read_text()
    except OSError:
        return DEFAULT_MIRROR
    for uri in re.findall(r"^URIs:\s*(\S+)", text, re.M):
        if uri.rstrip("/").endswith("/debian"):
            return uri.rstrip("/")
    return DEFAULT_MIRROR


@dataclass
class PrivateApt:
    """apt with its own sources (trixie sources, bookworm-backports binaries), state and cache."""

    root: Path = CACHE_DIR / "apt"

    def options(self) -> list[str]:
        return [
            f"-oDir::Etc::SourceList={self.root / 'sources.list'}",
            "-oDir::Etc::SourceParts=/dev/null",
            f"-oDir::State={self.root / 'state'}",
            f"-oDir::Cache={self.root / 'cache'}",
            "-oDir::State::status=/var/lib/dpkg/status",
            "-oAPT::Sandbox::User=root",
        ]

    def update(self) -> None:
        for sub in ("state/lists/partial", "cache/archives/partial"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        mirror = configured_mirror()
        (self.root / "sources.list").write_text(
            f"deb-src [signed-by={KEYRING}] {mirror} trixie main\n"
            f"deb-src [signed-by={KEYRING}] {mirror} trixie-backports main\n"
            f"deb [signed-by={KEYRING}] {mirror} bookworm-backports main\n"
        )
        self._apt("apt-get", "update", "-qq")

    def _apt(self, tool: str, *args: str, cwd: Path | None = None) -> str:
        done = subprocess.run([tool, *self.options(), *args], capture_output=True, text=True, cwd=cwd)
        if done.returncode != 0:
            raise DebianFetchError(f"{tool} {' '.join(args)} failed: {done.stderr.strip()[-400:]}")
        return done.stdout

    def fetch_orig(self, package: str, version: str, sha256: str, dest: Path) -> Path:
        """The orig tarball of source package `package`=`version`, through apt's own downloader, checked
        against `sha256` (the pin), into `dest`."""
        uris = self._apt("apt-get", "source", "--print-uris", f"{package}={version}")
        for uri, name in re.findall(r"^'(\S+)' (\S+\.orig\.tar\.\w+) \d+", uris, re.M):
            dest.mkdir(parents=True, exist_ok=True)
            target = dest / name
            if not target.exists():
                subprocess.run(
                    ["/usr/lib/apt/apt-helper", *self.options(), "download-file", uri, str(target), f"SHA256:{sha256}"],
                    check=True,
                    capture_output=True,
                )
            if hashlib.sha256(target.read_bytes()).hexdigest() != sha256:
                target.unlink()
                raise DebianFetchError(f"{name}: SHA-256 differs from the pinned {sha256}")
            return target
        raise DebianFetchError(f"apt has no orig tarball for {package} {version}")

    def download(self, packages: list[str], dest: Path) -> list[Path]:
        """Binary .debs (`name=version`) into `dest`, verified by apt against the signed archive's hashes."""
        dest.mkdir(parents=True, exist_ok=True)
        self._apt("apt-get", "download", "-qq", *packages, cwd=dest)
        return sorted(dest.glob("*.deb"))


def passt_dir(version: str = PASST_2025) -> Path:
    return CACHE_DIR / "passt" / version


def build_passt(apt: PrivateApt | None = None, release: str = "debian-13") -> Path:
    """passt, pasta and passt-repair (the TCP_REPAIR helper a live migration needs, passt-repair.1) of a Debian
    release of passt (PASST_SOURCES), built once into the cache; returns the folder holding them."""
    source = PASST_SOURCES[release]
    out = passt_dir(source.upstream)
    if all((out / name).exists() for name in ("passt-repair", "passt", "pasta")):
        return out
    apt = apt or PrivateApt()
    apt.update()
    work = CACHE_DIR / "passt" / "src"
    tarball = apt.fetch_orig("passt", source.debian, source.orig_sha256, work)
    tree_root = work / f"tree-{source.upstream}"
    shutil.rmtree(tree_root, ignore_errors=True)
    with tarfile.open(tarball) as tar:
        tar.extractall(tree_root, filter="data")
    (tree,) = tree_root.iterdir()
    # The .avx2 builds too, as Debian ships them: on an AVX2 CPU passt re-executes itself as `<path>.avx2`.
    targets = ["passt", "passt.avx2", "passt-repair"]
    done = subprocess.run(
        ["make", "-j2", f"VERSION={source.upstream}", *targets], cwd=tree, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise DebianFetchError(f"building passt {source.upstream} failed: {done.stderr.strip()[-400:]}")
    out.mkdir(parents=True, exist_ok=True)
    # pasta is passt under another name (the binary picks its mode from argv[0]); the last file written is the
    # one build_passt() checks, so a half-built folder is never taken for a complete one.
    # VERSION: what the rows record (passt exits with _exit(), so its --version into a pipe prints nothing).
    (out / "VERSION").write_text(f"passt {source.debian} (built from Debian's source)\n")
    for built, name in (
        ("passt-repair", "passt-repair"),
        ("passt.avx2", "pasta.avx2"),
        ("passt.avx2", "passt.avx2"),
        ("passt", "passt"),
        ("passt", "pasta"),
    ):
        shutil.copy2(tree / built, out / f"{name}.tmp")
        (out / f"{name}.tmp").rename(out / name)
    shutil.rmtree(tree_root, ignore_errors=True)
    return out


@dataclass(frozen=True)
class QemuInstall:
    binary: Path
    firmware: Path  # for -L: SeaBIOS, the iPXE/efi ROMs, the vhost-user and keymaps data
    version: str


def qemu_dir(version: str = QEMU_10) -> Path:
    return CACHE_DIR / "qemu" / re.sub(r"[^A-Za-z0-9.+~-]", "_", version)


def unpack_qemu(apt: PrivateApt | None = None) -> QemuInstall:
    """QEMU 10 from bookworm-backports, unpacked (not installed) into the cache once."""
    root = qemu_dir()
    install = QemuInstall(root / "usr" / "bin" / "qemu-system-x86_64", root / "usr" / "share" / "qemu", QEMU_10)
    if install.binary.exists():
        return install
    apt = apt or PrivateApt()
    apt.update()
    debs = apt.download(
        [f"{p}={QEMU_10}" for p in QEMU_10_PACKAGES] + [f"seabios={SEABIOS_BACKPORT}"], CACHE_DIR / "qemu" / "debs"
    )
    staging = root.with_name(root.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    for deb in debs:
        subprocess.run(["dpkg-deb", "-x", str(deb), str(staging)], check=True, capture_output=True)
    # The ROMs qemu-system-data links to other packages' files (ipxe-qemu's, seabios'): the backported seabios
    # was unpacked beside it; Debian 12's ipxe-qemu is installed (make deps) and linked by absolute path.
    shutil.rmtree(root, ignore_errors=True)
    staging.rename(root)
    _relink_firmware(root)
    return install


def _relink_firmware(root: Path) -> None:
    """Absolute symlinks in the unpacked tree (/usr/share/seabios/bios.bin) point into the unpacked copy when it
    holds the target, so QEMU 10 runs with the SeaBIOS it was released with."""
    for link in root.rglob("*"):
        if link.is_symlink():
            target = Path(link.readlink())
            if target.is_absolute() and (root / target.relative_to("/")).exists():
                link.unlink()
                link.symlink_to(root / target.relative_to("/"))


def missing_libraries(binary: Path) -> list[str]:
    """Shared libraries `binary` needs that this machine lacks (ldd's `not found`)."""
    done = subprocess.run(["ldd", str(binary)], capture_output=True, text=True)
    return [line.split()[0] for line in done.stdout.splitlines() if "not found" in line]


@dataclass(frozen=True)
class PasstBuild:
    """One passt release a scenario can name: `debian-12` (the system's /usr/bin) or `debian-13` (built here)."""

    name: str
    version: str
    binary_dir: Path | None  # None: the system's, on PATH
    no_splice: bool  # pasta knows --no-splice
    vhost_user: bool  # passt knows --vhost-user


PASST_BUILDS = ("debian-12", *PASST_SOURCES)


def passt_build(name: str) -> PasstBuild:
    """The named build, built first if it is the 2025 one and not in the cache yet."""
    if name == "debian-12":
        return PasstBuild(name, _dpkg_version("passt") or "unknown", None, no_splice=False, vhost_user=False)
    if name in PASST_SOURCES:
        return PasstBuild(name, PASST_SOURCES[name].debian, build_passt(release=name), no_splice=True, vhost_user=True)
    raise ValueError(f"unknown passt build {name!r}; known: {', '.join(PASST_BUILDS)}")


def _dpkg_version(package: str) -> str | None:
    done = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True)
    return done.stdout.strip() or None if done.returncode == 0 else None
