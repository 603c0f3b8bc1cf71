"""A base whose packages differ from the committed lock stops the build with one line naming them."""

import io
import tarfile
from pathlib import Path

import pytest

from imagebuild.debian import check_lock, installed
from imagebuild.definitions import Base
from imagebuild.errors import BuildError

STATUS = """Package: libc6
Status: install ok installed
Architecture: amd64
Version: 2.36-9+deb12u10

Package: removed-one
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: python3
Status: install ok installed
Architecture: amd64
Version: 3.11.2-1+b1
Description: interactive high-level object-oriented language
 a continuation line: Version: 9
"""


def base_tar(path: Path, status: str) -> Path:
    data = status.encode()
    info = tarfile.TarInfo("./var/lib/dpkg/status")
    info.size = len(data)
    with tarfile.open(path, "w") as tar:
        tar.addfile(info, io.BytesIO(data))
    return path


class LockedBase(Base):
    @property
    def lock(self) -> Path:
        return Path(self.name)


def test_installed_packages_are_read_from_the_dpkg_status(tmp_path: Path) -> None:
    assert installed(base_tar(tmp_path / "b.tar", STATUS)) == [
        "libc6 2.36-9+deb12u10 amd64",
        "python3 3.11.2-1+b1 amd64",
    ]


def test_the_lock_passes_the_same_packages_and_names_a_moved_one(tmp_path: Path) -> None:
    lock = tmp_path / "debian-x.lock"
    lock.write_text("# header\nlibc6 2.36-9+deb12u10 amd64\npython3 3.11.2-1+b1 amd64\n")
    base = LockedBase(str(lock), ("python3",))
    check_lock(base, base_tar(tmp_path / "same.tar", STATUS))
    moved = base_tar(tmp_path / "moved.tar", STATUS.replace("2.36-9+deb12u10", "2.36-9+deb12u13"))
    with pytest.raises(BuildError) as caught:
        check_lock(base, moved)
    message = str(caught.value)
    assert "\n" not in message and "debian-x.lock" in message and "make image-lock" in message
    assert "libc6 2.36-9+deb12u13 amd64" in message and "libc6 2.36-9+deb12u10 amd64" in message
