"""The pure logic of the node test's faults (testcluster.node_faults): what a redis.conf's persistence
loses to a SIGKILL, what a graceful pod deletion may cost its callers, and how a load client's replies are
judged. The faults themselves run on the real node in `make node-test`."""

from __future__ import annotations

from typing import Any

import pytest

from testcluster.node_faults import (
    Drain,
    Reply,
    between,
    drain_of,
    inconsistent,
    percentile,
    persistence,
    replies,
    unexcused,
)


def _reply(
    i: int, sent: float, ms: float = 10.0, status: int = 200, digest: str = "a", body: int = 0
) -> Reply:
    return Reply(i=i, body=body, sent=sent, ms=ms, status=status, error="", digest=digest)


def test_rdb_only_loses_what_came_after_the_last_snapshot() -> None:
    found = persistence("port 6379\nappendonly no\nsave 300 100\ninclude /etc/redis/auth/auth.conf\n")
    assert not found.aof
    assert found.save_points == ((300, 100),)
    assert "since the last RDB snapshot" in found.sigkill_loses()


def test_aof_with_fsync_always_loses_nothing_acknowledged() -> None:
    found = persistence('maxmemory-policy noeviction\nappendonly yes\nappendfsync always\nsave ""\n')
    assert found.aof and found.fsync == "always" and found.save_points == ()
    assert found.sigkill_loses().startswith("nothing acknowledged")


@pytest.mark.parametrize(
    ("conf", "loses"),
    [
        ("appendonly yes\n", "about a second"),  # appendfsync defaults to everysec
        ('appendonly no\nsave ""\n', "everything"),
        ("port 6379\n", "since the last RDB snapshot"),  # Redis's default save points
        ("appendonly yes  # on\nappendonly no\n", "since the last RDB snapshot"),  # the last one wins
    ],
)
def test_persistence_defaults_and_overrides(conf: str, loses: str) -> None:
    assert loses in persistence(conf).sigkill_loses()


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) == 0.0


def test_between_takes_requests_in_flight_during_the_window() -> None:
    found = [
        _reply(0, sent=9.0, ms=500),  # answered before the window
        _reply(1, sent=9.8, ms=400),  # in flight at its start
        _reply(2, sent=10.5),
        _reply(3, sent=12.0),  # sent at its end
        _reply(4, sent=12.1),
    ]
    assert [r.i for r in between(found, 10.0, 12.0)] == [1, 2, 3]


def test_inconsistent_compares_each_answer_with_the_first_to_the_same_body() -> None:
    found = [
        _reply(0, 0, digest="a", body=0),
        _reply(1, 0, digest="b", body=1),
        _reply(2, 0, digest="a", body=0),
        _reply(3, 0, digest="c", body=0),
        _reply(4, 0, status=503, digest="", body=0),  # a failure is counted as one, not as a difference
    ]
    assert [r.i for r in inconsistent(found)] == [3]


def test_replies_reads_the_request_lines_in_order() -> None:
    lines: list[dict[str, Any]] = [
        {"i": 1, "body": 0, "sent": 2.0, "ms": 5, "status": 200, "error": "", "digest": "x"},
        {"step": "resolve", "address": "10.96.0.1"},
        {"i": 0, "body": 0, "sent": 1.0, "ms": 5, "status": 0, "error": "URLError: refused", "digest": ""},
    ]
    found = replies(lines)
    assert [r.i for r in found] == [0, 1]
    assert not found[0].ok and found[1].ok


def _deployment(pre_stop: dict[str, Any] | None, grace: int | None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "inference"}
    if pre_stop is not None:
        container["lifecycle"] = {"preStop": pre_stop}
    spec: dict[str, Any] = {"containers": [container]}
    if grace is not None:
        spec["terminationGracePeriodSeconds"] = grace
    return {"spec": {"template": {"spec": spec}}}


def test_drain_reads_the_sleep_hook_the_grace_period_and_the_app_default() -> None:
    drain = drain_of(_deployment({"sleep": {"seconds": 10}}, 35), {}, 20.0)
    assert drain == Drain(pre_stop_s=10, grace_s=35, drain_s=20)
    assert drain.failure_window(5.0) == 0
    assert "no request may fail" in drain.allowance(5.0)


def test_drain_reads_an_exec_sleep_and_the_configured_drain() -> None:
    hook = {"exec": {"command": ["sh", "-c", "sleep 3"]}}
    drain = drain_of(_deployment(hook, None), {"INFERENCE_SHUTDOWN_DRAIN_SECONDS": "5"}, 20.0)
    assert drain == Drain(pre_stop_s=3, grace_s=30, drain_s=5)  # Kubernetes' default grace period
    assert drain.failure_window(5.0) == 2.0  # the propagation the sleep does not cover


def test_no_pre_stop_allows_failures_until_the_endpoint_is_gone() -> None:
    drain = drain_of(_deployment(None, 30), {}, 20.0)
    assert drain.failure_window(5.0) == 5.0
    assert "first 5 s" in drain.allowance(5.0)


def test_a_grace_period_shorter_than_pre_stop_and_drain_allows_the_whole_termination() -> None:
    drain = Drain(pre_stop_s=10, grace_s=15, drain_s=20)  # in-flight requests are cut by SIGKILL at 15 s
    assert drain.failure_window(5.0) == 15


def test_unexcused_counts_failures_outside_the_window_only() -> None:
    found = [
        _reply(0, sent=99.0, status=503, digest=""),  # before the deletion
        _reply(1, sent=100.0, status=0, digest=""),  # inside [100, 102)
        _reply(2, sent=101.9, status=503, digest=""),
        _reply(3, sent=102.0, status=503, digest=""),  # the window has closed
        _reply(4, sent=103.0),
    ]
    assert [r.i for r in unexcused(found, deleted_at=100.0, window_s=2.0)] == [0, 3]
    assert [r.i for r in unexcused(found, deleted_at=100.0, window_s=0.0)] == [0, 1, 2, 3]
