"""A container image assembled from this machine's own files: the given programs and folders, every shared
library the dynamic loader maps for them (ldd, as the QEMU guest's initramfs is built), each at the path it
has here, so an argv the harness builds for the host runs unchanged inside the container. Imported with
`docker import` (no registry is reachable) and tagged by a hash of the content, so it is rebuilt only when an
input changes."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tarfile
import tempfile
from collections.abc import Iterable
from pathlib import Path

ELF_MAGIC = b"\x7fELF"
MERGED_USR = ("/bin", "/sbin", "/lib", "/lib64")  # Debian 12: symlinks into /usr


def is_elf(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == ELF_MAGIC
    except OSError:
        return False


def shared_libraries(binary: Path) -> set[Path]:
    """What the dynamic loader maps for `binary` (ldd), the loader included; nothing for a static one."""
    done = subprocess.run(["ldd", str(binary)], capture_output=True, text=True)
    libs: set[Path] = set()
    for line in done.stdout.splitlines():
        parts = line.split()
        for token in parts:
            if token.startswith("/"):
                libs.add(Path(token))
    return libs


def expand(files: Iterable[Path], trees: Iterable[Path]) -> set[Path]:
    """Every file of `files` and of the folders `trees`, plus the libraries each ELF file needs."""
    found: set[Path] = set()
    for tree in trees:
        if tree.is_dir():
            found |= {p for p in tree.rglob("*") if p.is_file() or p.is_symlink()}
    found |= {Path(f) for f in files}
    for path in list(found):
        if path.is_file() and is_elf(path):
            found |= shared_libraries(path)
    return found


def _entries(paths: set[Path]) -> dict[str, Path]:
    """Archive name -> host path for every file and every symlink on the way to one (a file named through a
    symlink keeps that name working). Names are taken under their folder's real path (lib64/x is stored as
    usr/lib64/x), and the merged-/usr links (bin -> usr/bin, ...) are stored as links, as on this machine."""
    entries: dict[str, Path] = {}
    for top in MERGED_USR:
        if os.path.islink(top):
            entries[top.lstrip("/")] = Path(top)
    for path in paths:
        current = str(path)
        for _ in range(10):  # follow a chain of symlinks one hop at a time, keeping each link
            name = os.path.join(os.path.realpath(os.path.dirname(current)), os.path.basename(current))
            entries[name.lstrip("/")] = Path(name)
            if not os.path.islink(name):
                break
            target = os.readlink(name)
            current = os.path.normpath(os.path.join(os.path.dirname(name), target))  # an absolute target wins
    return entries


def content_hash(entries: dict[str, Path], extra: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(entries):
        path = entries[name]
        digest.update(name.encode() + b"\0")
        if path.is_symlink():
            digest.update(b"link:" + os.readlink(path).encode())
        elif path.is_file():
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
    for name in sorted(extra):
        digest.update(name.encode() + b"\0" + extra[name])
    return digest.hexdigest()[:16]


def write_rootfs_tar(entries: dict[str, Path], extra: dict[str, bytes], out: Path) -> None:
    """The rootfs as a tar: parents first, symlinks as symlinks, `extra` as small generated files."""
    with tarfile.open(out, "w") as tar:
        done: set[str] = set()
        for name in sorted(entries, key=lambda n: (n.count("/"), n)):
            parent = os.path.dirname(name)
            _add_dirs(tar, parent, done, entries)
            if name in done:
                continue
            tar.add(str(entries[name]), arcname=name, recursive=False)
            done.add(name)
        for name, data in extra.items():
            _add_dirs(tar, os.path.dirname(name), done, entries)
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))


def _add_dirs(tar: tarfile.TarFile, folder: str, done: set[str], entries: dict[str, Path]) -> None:
    parts = [p for p in folder.split("/") if p]
    for i in range(1, len(parts) + 1):
        name = "/".join(parts[:i])
        if name in done or name in entries:  # a symlinked folder (bin -> usr/bin) is added as its link
            continue
        info = tarfile.TarInfo(name)
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(info)
        done.add(name)


def import_image(
    engine,
    *,
    repository: str,
    files: Iterable[Path],
    trees: Iterable[Path],
    extra: dict[str, bytes],
    labels: dict[str, str],
) -> str:
    """`repository:<content hash>`, imported unless an image with that tag exists already."""
    entries = _entries(expand(files, trees))
    tag = content_hash(entries, extra)
    reference = f"{repository}:{tag}"
    if engine.images.list(name=reference):
        return reference
    with tempfile.TemporaryDirectory() as scratch:
        archive = Path(scratch) / "rootfs.tar"
        write_rootfs_tar(entries, extra, archive)
        changes = [f'LABEL {k}="{v}"' for k, v in labels.items()]
        with open(archive, "rb") as f:
            engine.api.import_image_from_data(f.read(), repository=repository, tag=tag, changes=changes)
    return reference
