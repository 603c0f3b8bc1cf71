"""The drift check's synth cache: keyed on everything a synth reads, and a cached synth finds what a fresh
one finds."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

from policy_check import drift, synth_cache
from policy_check.synth_cache import INPUTS, SynthCache

REPO = Path(__file__).resolve().parents[2]

# Runs main.py as `python -O main.py --out OUT` does, and prints every path it opened or listed.
AUDITED_SYNTH = """
import json, os, runpy, sys
seen = set()
def hook(event, args):
    named = args and isinstance(args[0], (str, bytes, os.PathLike))
    if event in ("open", "os.listdir", "os.scandir") and named:
        seen.add(os.path.realpath(os.fsdecode(args[0])))
sys.addaudithook(hook)
sys.argv = ["main.py", "--out", sys.argv[1]]
try:
    runpy.run_path("main.py", run_name="__main__")
except SystemExit as exit:
    assert not exit.code, exit.code
print(json.dumps(sorted(seen)))
"""


def covered(rel: Path) -> bool:
    return any(rel == Path(part) or Path(part) in rel.parents for part in INPUTS)


def test_inputs_cover_every_file_of_the_repository_a_real_synth_reads(tmp_path: Path) -> None:
    out = tmp_path / "dist"
    proc = subprocess.run(
        [sys.executable, "-O", "-c", AUDITED_SYNTH, str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    opened = json.loads(proc.stdout.strip().splitlines()[-1])
    root = REPO.resolve()
    read = set()
    for name in opened:
        path = Path(name)
        if root not in path.parents or (out.resolve() in path.parents) or ".venv" in path.parts:
            continue
        if path.parent.name.endswith(".egg-info"):  # the editable install's metadata (entry points): no input
            continue
        if path.suffix == ".pyc":  # a module read from its bytecode: what decides it is the source
            path = Path(importlib.util.source_from_cache(str(path)))
        read.add(path.relative_to(root))
    assert Path("overlays/platform.yaml") in read and Path("main.py") in read  # the hook saw the synth
    assert sorted(str(p) for p in read if not covered(p)) == []


def stub_repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    for part in INPUTS:
        path = root / part if part.endswith((".py", ".yaml")) else root / part / "a.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("v1\n")
    return root


def test_any_input_change_is_a_new_key(tmp_path: Path) -> None:
    root = stub_repo(tmp_path)
    day = dt.date(2026, 12, 6)
    keys = [synth_cache.key(root, only_env=None, today=day)]
    assert synth_cache.key(root, only_env=None, today=day) == keys[0]  # same inputs, same key
    for part in INPUTS:
        target = root / part
        changed = target if target.is_file() else target / "a.txt"
        changed.write_text("v2\n")  # a changed file
        keys.append(synth_cache.key(root, only_env=None, today=day))
        if target.is_dir():
            (target / "new.txt").write_text("v1\n")  # a new file
            keys.append(synth_cache.key(root, only_env=None, today=day))
    keys.append(synth_cache.key(root, only_env=None, today=day + dt.timedelta(days=1)))  # waivers expire
    keys.append(synth_cache.key(root, only_env="dev", today=day))
    assert len(set(keys)) == len(keys)


def test_entries_round_trip_and_a_partial_entry_is_a_miss(tmp_path: Path) -> None:
    cache = SynthCache(tmp_path / "cache")
    tree = tmp_path / "out"
    (tree / "dev").mkdir(parents=True)
    (tree / "dev" / "a.yaml").write_text("kind: ConfigMap\n")
    assert cache.get("k1") is None
    cache.put("k1", tree)
    got = cache.get("k1")
    assert got is not None and (got / "dev" / "a.yaml").read_text() == "kind: ConfigMap\n"
    (tmp_path / "cache" / "k1" / synth_cache.DONE).unlink()  # as if the writer died before the end
    assert cache.get("k1") is None
    for i in range(synth_cache.KEEP + 3):
        cache.put(f"more{i}", tree)
    assert len([p for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")]) == synth_cache.KEEP


def test_a_cached_synth_finds_the_same_drift_as_a_fresh_one(tmp_path: Path) -> None:
    cache = SynthCache(tmp_path / "cache")
    ours = tmp_path / "dist"
    shutil.copytree(REPO / "dist", ours)
    first = drift.start(REPO, cache=cache)
    assert first.proc is not None  # nothing cached yet: a real synth
    assert drift.check(first, ours) == []
    second = drift.start(REPO, cache=cache)
    assert second.proc is None and second.cached is not None  # the same inputs: the stored output
    edited = ours / "dev" / "configmap-inference-config.yaml"
    edited.write_text(edited.read_text().replace("INFERENCE_", "INFERENCE_X_", 1))
    found = drift.check(second, ours)
    assert [(f.rule, f.environment, f.file) for f in found] == [
        ("dist-drift", "dev", "configmap-inference-config.yaml")
    ]
    assert cache.get(second.key or synth_cache.key(REPO, only_env=None)) is not None  # check kept it
