"""One exception type whose message is the one line a user needs: what went wrong and how to fix it."""

from __future__ import annotations


class ClusterTestError(Exception):
    """The test environment itself is broken (missing binary, port in use, crashed process)."""
