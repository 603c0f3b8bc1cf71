"""Layer archives are the same bytes whatever the files' times, owners, umask or creation order."""

import hashlib
import os
import tarfile
from pathlib import Path

from imagebuild.layers import write_layer

EPOCH = 1700000000


def tree(root: Path, *, order: list[str], mode_bits: int, mtime: int) -> None:
    for name in order:
        path = root / "opt" / "venv" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"content of {name}\n")
        path.chmod(mode_bits | (0o111 if name.endswith(".sh") else 0))
        os.utime(path, (mtime, mtime))
    (root / "opt" / "venv" / "link").symlink_to("b/c.txt")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_files_give_the_same_bytes(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    tree(one, order=["a.txt", "b/c.txt", "run.sh"], mode_bits=0o600, mtime=1)
    tree(two, order=["run.sh", "b/c.txt", "a.txt"], mode_bits=0o664, mtime=2_000_000_000)
    os.chown(two / "opt" / "venv" / "a.txt", 1234, 1234)
    write_layer(tmp_path / "one.tar", one, ["/opt/venv"], EPOCH)
    write_layer(tmp_path / "two.tar", two, ["/opt/venv"], EPOCH)
    assert digest(tmp_path / "one.tar") == digest(tmp_path / "two.tar")


def test_entries_are_sorted_normalized_and_under_their_parents(tmp_path: Path) -> None:
    tree(tmp_path / "root", order=["run.sh", "a.txt", "b/c.txt"], mode_bits=0o600, mtime=1)
    write_layer(tmp_path / "l.tar", tmp_path / "root", ["/opt/venv"], EPOCH)
    with tarfile.open(tmp_path / "l.tar") as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == [
        "opt",
        "opt/venv",
        "opt/venv/a.txt",
        "opt/venv/b",
        "opt/venv/b/c.txt",
        "opt/venv/link",
        "opt/venv/run.sh",
    ]
    modes = {m.name: m.mode for m in members}
    assert modes["opt"] == 0o755 and modes["opt/venv/a.txt"] == 0o644 and modes["opt/venv/run.sh"] == 0o755
    assert {(m.uid, m.gid, m.uname, m.gname, m.mtime) for m in members} == {(0, 0, "", "", EPOCH)}
    assert next(m for m in members if m.name == "opt/venv/link").linkname == "b/c.txt"


def test_a_changed_file_changes_the_layer(tmp_path: Path) -> None:
    tree(tmp_path / "root", order=["a.txt"], mode_bits=0o644, mtime=1)
    write_layer(tmp_path / "one.tar", tmp_path / "root", ["/opt/venv"], EPOCH)
    (tmp_path / "root" / "opt" / "venv" / "a.txt").write_text("other\n")
    write_layer(tmp_path / "two.tar", tmp_path / "root", ["/opt/venv"], EPOCH)
    assert digest(tmp_path / "one.tar") != digest(tmp_path / "two.tar")
