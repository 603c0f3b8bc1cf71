"""Large valid batches do not starve the event loop: health probes keep answering (real server process)."""

from __future__ import annotations

import statistics
import threading
import time

import httpx
import orjson

BODY_LIMIT = 6 * 1024 * 1024
REQUESTS_PER_CLIENT = 6


def _max_batches(rows: list[list[float]], count: int) -> list[bytes]:
    """`count` different V2 requests, each of as many rows as fit under the body limit (about 25,000 rows),
    different from each other so that none is answered from the response cache."""
    data = [[round(v, 3) for v in row] for row in rows]
    per_row = len(orjson.dumps(data)) / len(data)
    size = int(BODY_LIMIT * 0.97 / per_row)
    batch = (data * (size // len(data) + 1))[:size]
    bodies = []
    for i in range(count):
        first = [v + i for v in batch[0]]
        inputs = [{"name": "input", "datatype": "FP32", "shape": [size, 30], "data": [first, *batch[1:]]}]
        bodies.append(orjson.dumps({"inputs": inputs}))
        assert len(bodies[-1]) <= BODY_LIMIT
    return bodies


def test_health_p99_stays_under_50_ms_while_two_clients_send_maximum_batches(server_process, rows) -> None:
    """Two clients sending 25,000-row batches pushed the liveness probe's p99 to 400 ms (p50 187 ms)."""
    bodies = _max_batches(rows(569), 2 * REQUESTS_PER_CLIENT)
    settings = {"models": "breast-cancer:1", "max_body_bytes": str(BODY_LIMIT), "access_log": "false"}
    with server_process(**settings) as (_, base):
        statuses: list[int] = []
        done = threading.Event()

        def client(first: int) -> None:
            with httpx.Client(base_url=base, timeout=60) as http:
                for body in bodies[
                    first : first + REQUESTS_PER_CLIENT
                ]:  # bounded: a fixed number of requests
                    reply = http.post("/v2/models/breast-cancer/infer", content=body)
                    statuses.append(reply.status_code)

        clients = [threading.Thread(target=client, args=(i * REQUESTS_PER_CLIENT,)) for i in range(2)]
        for thread in clients:
            thread.start()
        latencies: list[float] = []
        with httpx.Client(base_url=base, timeout=10) as probe:
            probe.get("/v2/health/live")  # the probe's own connection is open before the batches start
            deadline = time.monotonic() + 60  # bounded in time as well as by the clients' requests
            while any(t.is_alive() for t in clients) and time.monotonic() < deadline:
                started = time.perf_counter()
                assert probe.get("/v2/health/live").status_code == 200
                latencies.append(time.perf_counter() - started)
                time.sleep(0.01)
        done.set()
        for thread in clients:
            thread.join(timeout=60)
    assert statuses == [200] * len(bodies), statuses
    assert len(latencies) >= 50, len(latencies)
    p99 = statistics.quantiles(latencies, n=100)[98]
    print(
        f"health over {len(latencies)} probes: p50 {statistics.median(latencies) * 1000:.1f} ms, "
        f"p99 {p99 * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms"
    )
    assert p99 < 0.050, f"health p99 {p99 * 1000:.0f} ms"
