"""Writing dist/: one YAML file per object with a readable stable name, atomically, stale files removed."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml


class _Dumper(yaml.CSafeDumper):
    """Block style everywhere; multi-line strings (config files) as literal blocks."""


def _str(dumper: _Dumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def to_yaml(obj: dict[str, Any]) -> str:
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=1000)


def file_name(obj: dict[str, Any]) -> str:
    """`<kind>-<name>.yaml`, e.g. `networkpolicy-allow-inference-to-redis.yaml`."""
    return f"{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"


def manifest_files(objects: list[dict[str, Any]]) -> dict[str, str]:
    files: dict[str, str] = {}
    for obj in objects:
        name = file_name(obj)
        if name in files:
            raise ValueError(f"two objects would be written to {name}")
        files[name] = to_yaml(obj)
    return dict(sorted(files.items()))


def write_tree(out: Path, folders: dict[str, dict[str, str | bytes]], *, replace_all: bool) -> None:
    """Write `folders` (folder -> file -> content) under `out`.

    Everything is first written to a temporary folder beside `out`, then swapped in by renames, so a failure
    leaves `out` as it was. `replace_all` replaces `out` as a whole (stale folders disappear); otherwise only
    the given folders are replaced.
    """
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    try:
        for folder, files in folders.items():
            target = staging / folder
            target.mkdir(parents=True)
            for name, content in files.items():
                data = content.encode("utf-8") if isinstance(content, str) else content
                (target / name).write_bytes(data)
        if replace_all or not out.exists():
            _swap(staging, out)
            return
        for folder in folders:
            _swap(staging / folder, out / folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _swap(new: Path, old: Path) -> None:
    if old.exists():
        trash = Path(tempfile.mkdtemp(prefix=f".{old.name}.old-", dir=old.parent))
        old.rename(trash / old.name)
        new.rename(old)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        new.rename(old)
