"""The READMEs' quick start, walked through exactly as printed, so that they cannot drift from the product.

From README.md: the two commands are make targets, `make serve` runs what this test runs, and it prints the
lines the README promises (an API key, the documentation's address). Then every `curl` command in README.md's
and apps/inference/README.md's `make serve` examples runs, as printed (only the port differs: a free one, not
8080), with the key the server printed; where the README shows the answer (`# {...}` lines below the
command; `...` stands for any text), the answer must match it.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import free_port, http_ok, wait_until

REPO_ROOT = Path(__file__).resolve().parents[1]
READMES = (REPO_ROOT / "README.md", REPO_ROOT / "apps" / "inference" / "README.md")
SERVE = ".venv/bin/python -m inference_service.local --model-repository build/models"

pytestmark = pytest.mark.slow


def sh_blocks(readme: Path) -> list[list[str]]:
    """The README's ```sh blocks, as lists of lines."""
    return [b.splitlines() for b in re.findall(r"^```sh\n(.*?)^```", readme.read_text(), re.S | re.M)]


def examples(lines: list[str]) -> Iterator[tuple[str, str | None]]:
    """(curl command, expected answer or None) in one block; a command may span lines (an open quote)."""
    i = 0
    while i < len(lines):
        if not lines[i].startswith("curl "):
            i += 1
            continue
        command = lines[i]
        while not _complete(command):
            i += 1
            command += "\n" + lines[i]
        if command.rstrip().endswith("\\"):
            i += 1
            command = command.rstrip()[:-1] + lines[i].strip()
        i += 1
        expected = []
        while i < len(lines) and lines[i].startswith("# ") and (expected or lines[i][2:].startswith("{")):
            expected.append(lines[i][2:].strip())
            i += 1
        yield command, "".join(expected) or None


def _complete(command: str) -> bool:
    try:
        shlex.split(command)
    except ValueError:
        return False
    return True


def matches(expected: str, answer: str) -> bool:
    """`...` (alone or as `[...]`, `{...}`) stands for any text; everything else must be as printed."""
    pattern = ".*".join(re.escape(part) for part in re.split(r"\.\.\.", expected))
    return re.fullmatch(pattern, answer.strip(), re.S) is not None


def test_the_two_commands_are_make_targets() -> None:
    first = next(b for b in sh_blocks(READMES[0]) if b and b[0].startswith("make "))
    assert [line.split("#")[0].strip() for line in first] == ["make", "make test"]
    targets = subprocess.run(["make", "help"], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert "make test" in targets.stdout and "make serve" in targets.stdout


def test_make_serve_runs_what_this_test_runs() -> None:
    planned = subprocess.run(
        ["make", "-n", "serve"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert planned[-1].endswith(SERVE.split(" ", 1)[1]) and ".venv/bin/python" in planned[-1]


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[int, str, str]]:
    """`make serve`'s command on a free port: (port, the key it printed, everything it printed)."""
    assert (REPO_ROOT / "build" / "models").is_dir(), "run `make models` first"
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, *SERVE.split()[1:], "--port", str(port)],
        cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "INFERENCE_ACCESS_LOG": "false"},
    )  # fmt: skip
    printed = []
    assert proc.stderr is not None
    key = ""
    deadline = time.monotonic() + 90
    while not key:
        line = proc.stderr.readline()
        assert line and time.monotonic() < deadline, "".join(printed)
        printed.append(line)
        if line.startswith("API key: "):
            key = line.split(": ", 1)[1].strip()
    printed.append(proc.stderr.readline())
    printed.append(proc.stderr.readline())  # the curl hint, then the documentation's address
    wait_until(
        http_ok(f"http://127.0.0.1:{port}/v2/health/ready"),
        what="make serve",
        timeout_s=deadline - time.monotonic(),
        process=proc,
        interval_s=0.1,
    )
    try:
        yield port, key, "".join(printed)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def test_make_serve_prints_the_key_and_the_documentation(served: tuple[int, str, str]) -> None:
    port, key, printed = served
    assert len(key) >= 24
    assert f"API documentation: http://127.0.0.1:{port}/docs" in printed
    assert httpx.get(f"http://127.0.0.1:{port}/docs").status_code == 200  # opens in a browser, no key


@pytest.mark.parametrize("readme", READMES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_curl_example_answers_as_printed(readme: Path, served: tuple[int, str, str]) -> None:
    port, key, _ = served
    ran = 0
    for block in sh_blocks(readme):
        if not any(line.startswith("KEY=") for line in block):
            continue  # not a `make serve` example
        for command, expected in examples(block):
            local = command.replace("localhost:8080", f"localhost:{port}")
            done = subprocess.run(
                ["bash", "-c", local], env={**os.environ, "KEY": key}, capture_output=True, text=True,
                timeout=60, check=False,
            )  # fmt: skip
            assert done.returncode == 0, f"{command}\n{done.stderr}"
            assert done.stdout.startswith("{"), f"{command}\n{done.stdout[:300]}"
            assert '"error"' not in done.stdout, f"{command}\n{done.stdout[:300]}"
            if expected is not None:
                assert matches(expected, done.stdout), f"{command}\nREADME: {expected}\ngot:    {done.stdout}"
            ran += 1
    assert ran >= 1, f"{readme}: no curl example found"
