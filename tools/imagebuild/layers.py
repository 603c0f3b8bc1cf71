"""Deterministic layer archives: the same files give the same bytes on every machine and every run.

Entries are sorted by name, owned by 0:0 with no user or group names, stamped with SOURCE_DATE_EPOCH, and
their permissions normalized (0755 for folders and executables, 0644 for the rest: what the build's umask left
does not leak in). Hard links are stored as separate files, so inode numbering cannot change the bytes.
"""

from __future__ import annotations

import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath


def _entries(root: Path, folder: PurePosixPath) -> Iterator[tuple[PurePosixPath, Path]]:
    """(path in the image, local path) for `folder` inside `root` and everything under it, sorted."""
    yield folder, root / folder
    local = root / folder
    if local.is_dir() and not local.is_symlink():
        for name in sorted(p.name for p in local.iterdir()):
            yield from _entries(root, folder / name)


def _info(path_in_image: PurePosixPath, local: Path, epoch: int) -> tarfile.TarInfo:
    st = local.lstat()
    info = tarfile.TarInfo(str(path_in_image) + ("/" if stat.S_ISDIR(st.st_mode) else ""))
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = epoch
    if stat.S_ISLNK(st.st_mode):
        info.type, info.linkname, info.mode = tarfile.SYMTYPE, str(local.readlink()), 0o777
    elif stat.S_ISDIR(st.st_mode):
        info.type, info.mode = tarfile.DIRTYPE, 0o755
    elif stat.S_ISREG(st.st_mode):
        info.type, info.size = tarfile.REGTYPE, st.st_size
        info.mode = 0o755 if st.st_mode & 0o111 else 0o644
    else:
        raise ValueError(f"{local}: only files, folders and symbolic links go into a layer")
    return info


def write_layer(out: Path, root: Path, folders: list[str], epoch: int) -> int:
    """A layer of `folders` (absolute paths in the image) taken from `root`, with their parent folders; its
    uncompressed size in bytes."""
    parents: set[PurePosixPath] = set()
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for folder in sorted(folders):
            relative = PurePosixPath(folder.lstrip("/"))
            for parent in reversed(relative.parents[:-1]):
                if parent not in parents:
                    parents.add(parent)
                    tar.addfile(_info(parent, root / parent, epoch))
            for path_in_image, local in _entries(root, relative):
                info = _info(path_in_image, local, epoch)
                if info.isreg():
                    with local.open("rb") as handle:
                        tar.addfile(info, handle)
                else:
                    tar.addfile(info)
    return out.stat().st_size
