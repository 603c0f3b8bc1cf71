"""The Argo CD scenarios run in order, each on the state the previous one left: once one fails, the later
ones are skipped (naming it) rather than failing on a state nobody meant."""

from __future__ import annotations

from typing import Any

import pytest

_failed: dict[str, str] = {}  # test module -> the first of its steps that failed


def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> None:
    if call.excinfo is None or call.excinfo.errisinstance(pytest.skip.Exception):
        return
    if call.when in ("setup", "call"):
        _failed.setdefault(str(item.path), item.name)


def pytest_runtest_setup(item: pytest.Item) -> None:
    failed = _failed.get(str(item.path))
    if failed is not None:
        pytest.skip(f"an earlier step failed: {failed}")
