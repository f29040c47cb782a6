"""The QEMU guest's boot files: Debian's kernel and an initramfs assembled from host binaries (busybox-static,
iperf3 and sockperf with the shared libraries they load, vmnb-crr compiled from guest_files/crr.c) plus the
virtio modules in dependency order. Cached by content hash, so a changed kernel, tool or script rebuilds it.

The guest's /init (guest_files/init) takes its addressing from the kernel command line and signals readiness
on the serial console; guest_files/agent is the command channel the harness runs servers and clients through.
"""

from __future__ import annotations

import hashlib
import lzma
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness.guests.tools import GUEST_FILES, ToolBuildError, compile_guest_tools
from harness.lab.atomic import write_via_temp
from harness.lab.paths import CACHE_DIR
from harness.tools.inventory import guest_image_programs

MODULES = ("virtio_pci", "virtio_net")  # their dependencies (virtio_ring, virtio, failover, ...) come along
GUEST_TOOLS = guest_image_programs()  # harness/tools/inventory.py
BUSYBOX = Path("/bin/busybox")


class GuestImageError(ToolBuildError):
    pass


@dataclass(frozen=True)
class GuestImage:
    kernel: Path
    initrd: Path
    kernel_version: str
    digest: str


def newest_kernel() -> tuple[Path, str]:
    """The newest /boot/vmlinuz-* with its modules folder (Debian's linux-image-amd64)."""
    found = []
    for path in Path("/boot").glob("vmlinuz-*"):
        version = path.name.removeprefix("vmlinuz-")
        if (Path("/lib/modules") / version / "modules.dep").exists():
            found.append((tuple(int(x) for x in re.findall(r"\d+", version)), path, version))
    if not found:
        raise GuestImageError("no kernel for the QEMU guest: install linux-image-amd64 (make deps does)")
    _, path, version = max(found)
    return path, version


def module_order(version: str, wanted: tuple[str, ...] = MODULES) -> list[str]:
    """Module files (relative to /lib/modules/VERSION) in load order: every module after its dependencies,
    from modules.dep; modules built into the kernel are skipped."""
    root = Path("/lib/modules") / version
    deps: dict[str, list[str]] = {}
    by_name: dict[str, str] = {}
    for line in (root / "modules.dep").read_text().splitlines():
        path, _, rest = line.partition(":")
        deps[path] = rest.split()
        by_name[_module_name(path)] = path
    builtin = {_module_name(p) for p in (root / "modules.builtin").read_text().split()}
    order: list[str] = []

    def visit(path: str) -> None:
        if path in order:
            return
        for dep in deps.get(path, []):
            visit(dep)
        order.append(path)

    for name in wanted:
        if name in builtin:
            continue
        if name not in by_name:
            raise GuestImageError(f"kernel {version} has no module {name} (modules.dep)")
        visit(by_name[name])
    return order


def _module_name(path: str) -> str:
    return Path(path).name.split(".ko")[0].replace("-", "_")


def shared_libraries(binary: Path) -> list[Path]:
    """What the dynamic loader maps for `binary` (ldd), including the loader itself."""
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True).stdout
    if "not a dynamic executable" in out or "statically linked" in out:
        return []
    return [Path(p) for p in re.findall(r"(/\S+) \(0x", out)]


def _inputs(version: str) -> dict[str, Path]:
    """Guest path -> host file, for every file the initramfs holds besides /init and the agent."""
    files: dict[str, Path] = {"bin/busybox": BUSYBOX}
    if shared_libraries(BUSYBOX):
        raise GuestImageError(f"{BUSYBOX} is not static: install busybox-static")
    for tool in GUEST_TOOLS:
        path = shutil.which(tool)
        if path is None:
            raise GuestImageError(f"{tool} is needed inside the guest: install it (make deps does)")
        files[f"bin/{tool}"] = Path(path)
        for lib in shared_libraries(Path(path)):
            files[str(lib).lstrip("/")] = lib
    files.update({f"bin/{name}": path for name, path in compile_guest_tools().items()})
    root = Path("/lib/modules") / version
    for module in module_order(version):
        files[f"lib/modules/{module}"] = root / module
    return files


def build_image(cache: Path = CACHE_DIR) -> GuestImage:
    """The kernel and initramfs for the guest, built once per content hash."""
    kernel, version = newest_kernel()
    files = _inputs(version)
    h = hashlib.sha256()
    for name in ("init", "agent"):
        h.update((GUEST_FILES / name).read_bytes())
    for guest_path, host_path in sorted(files.items()):
        h.update(guest_path.encode())
        h.update(host_path.read_bytes())
    h.update(kernel.read_bytes())
    digest = h.hexdigest()[:16]
    folder = cache / "guest" / digest
    initrd = folder / "initrd.cpio"
    if not initrd.exists():
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(kernel, folder / "vmlinuz")
        _assemble(files, version, initrd)  # written last, by rename: its presence marks a complete image
    return GuestImage(kernel=folder / "vmlinuz", initrd=initrd, kernel_version=version, digest=digest)


def _assemble(files: dict[str, Path], version: str, target: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="vmnb-initrd-") as tmp:
        root = Path(tmp)
        for d in ("bin", "sbin", "usr/bin", "usr/sbin", "proc", "sys", "dev", "tmp", "run", "etc/vmnb"):
            (root / d).mkdir(parents=True, exist_ok=True)
        for guest_path, host_path in files.items():
            dest = root / guest_path
            dest.parent.mkdir(parents=True, exist_ok=True)
            if host_path.suffix == ".xz":  # compressed modules: busybox insmod wants them plain
                dest = dest.with_suffix("")
                dest.write_bytes(lzma.decompress(host_path.read_bytes()))
            else:
                shutil.copyfile(host_path, dest)
            dest.chmod(0o755)
        modules = [m.removesuffix(".xz") for m in module_order(version)]
        (root / "etc/vmnb/modules").write_text("\n".join(modules) + "\n")
        shutil.copyfile(GUEST_FILES / "agent", root / "etc/vmnb/agent")
        shutil.copyfile(GUEST_FILES / "init", root / "init")
        (root / "init").chmod(0o755)
        # Uncompressed newc: under TCG, decompressing a gzip initramfs costs seconds of boot time.
        listing = subprocess.run(["find", "."], cwd=root, capture_output=True, text=True, check=True).stdout
        archive = subprocess.run(
            ["cpio", "--quiet", "-o", "-H", "newc", "--reproducible"],
            cwd=root,
            input=listing.encode(),
            capture_output=True,
            check=True,
        ).stdout
        write_via_temp(target, lambda tmp: tmp.write_bytes(archive))
