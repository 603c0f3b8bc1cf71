"""The direct inference path: bounded metric labels, the whole-response cache, the buffered access log."""

from __future__ import annotations

import io
import json
import signal

import httpx

from inference_service.accesslog import AccessLog
from inference_service.cache import ResponseCache
from inference_service.responses import CachedResponse
from inference_service.rest.inference import match

INFER = "/v2/models/breast-cancer/infer"


def _series(read_metrics, client) -> list[str]:
    return [line for line in read_metrics(client).splitlines() if not line.startswith("#")]


def test_unknown_model_names_do_not_grow_metrics(make_client, tabular, rows, read_metrics) -> None:
    body = tabular(rows(1, seed=901))
    with make_client() as client:
        assert client.post(INFER, json=body).status_code == 200
        # Every way an unknown name can arrive once, so the bounded series exist...
        for i in ("first", "second"):
            assert client.post(f"/v2/models/no-{i}/infer", json=body).status_code == 404
            assert client.post(f"/v2/models/no-{i}/versions/1/infer", json=body).status_code == 404
            v1 = client.post(f"/v1/models/no-{i}:predict", json={"instances": [[1.0] * 30]})
            assert v1.status_code == 404
            assert client.get(f"/v2/models/no-{i}").status_code == 404
            assert client.get(f"/v2/models/no-{i}/ready").status_code == 404
            assert client.get(f"/v1/models/no-{i}").status_code == 404
        _series(
            read_metrics, client
        )  # a scrape is recorded once it is answered: its own series exists from now on
        before = _series(read_metrics, client)
        # ...then 300 more names, each by every route: not one new line.
        for i in range(300):
            name = f"unknown-model-{i}"
            client.post(f"/v2/models/{name}/infer", json=body)
            client.post(f"/v2/models/{name}/versions/{i}/infer", json=body)
            client.post(f"/v1/models/{name}:predict", json={"instances": [[1.0] * 30]})
            client.get(f"/v2/models/{name}")
            client.get(f"/v1/models/{name}")
        after = _series(read_metrics, client)
    assert len(after) == len(before)
    text = "\n".join(after)
    assert "unknown-model" not in text and "no-first" not in text
    assert 'model="(unknown)"' in text and 'model="breast-cancer"' in text


def test_a_repeated_request_is_answered_from_the_response_cache(
    make_client, tabular, rows, read_metric
) -> None:
    first, other = tabular(rows(2, seed=911)), tabular(rows(3, seed=912))
    lookups = "inference_cache_lookups_total"
    with make_client() as client:
        cold = client.post(INFER, json=first)
        assert read_metric(client, "inference_rows_computed_total", model="breast-cancer") == 2
        warm = client.post(INFER, json=first)
        assert warm.content == cold.content and warm.headers["content-type"] == "application/json"
        assert warm.headers["x-request-id"] != cold.headers["x-request-id"]
        assert read_metric(client, lookups, model="breast-cancer", tier="local", result="hit") == 2
        # The same rows under another route kind or another request id are other responses.
        v1 = client.post("/v1/models/breast-cancer:predict", json={"instances": first["inputs"][0]["data"]})
        assert "predictions" in v1.json()
        with_id = client.post(INFER, json={**first, "id": "req-7"})
        assert with_id.json()["id"] == "req-7"
        assert client.post(INFER, json={**first, "id": "req-8"}).json()["id"] == "req-8"
        assert read_metric(client, "inference_rows_computed_total", model="breast-cancer") == 2
        assert client.post(INFER, json=other).content != cold.content
    with make_client(local_cache_entries=0) as client:  # the local tier off: no response cache either
        client.post(INFER, json=first)
        client.post(INFER, json=first)
        assert read_metric(client, "inference_rows_computed_total", model="breast-cancer") == 4


def test_response_cache_is_bounded_by_entries_and_bytes() -> None:
    def response(size: int) -> CachedResponse:
        return CachedResponse(body=b"x" * size, headers=((b"content-type", b"application/json"),), rows=1)

    by_entries = ResponseCache(max_entries=3, max_bytes=1 << 20)
    keys = [ResponseCache.key(b"v2", None, f"body {i}".encode()) for i in range(5)]
    for key in keys:
        by_entries.put(key, response(10))
    assert len(by_entries) == 3 and by_entries.get(keys[0]) is None and by_entries.get(keys[4]) is not None
    by_bytes = ResponseCache(max_entries=1000, max_bytes=64 * 1000)
    for i in range(100):
        by_bytes.put(ResponseCache.key(b"v2", None, b"%d" % i), response(700))
    assert by_bytes.bytes <= 64 * 1000 and 0 < len(by_bytes) < 100
    by_bytes.put(b"huge", response(10_000))  # over 1/64 of the budget: not kept
    assert by_bytes.get(b"huge") is None
    # The key covers the route kind and the binary header, not only the body.
    assert len({ResponseCache.key(k, h, b"{}") for k in (b"v1", b"v2") for h in (None, b"2", b"20")}) == 6


def test_inference_paths_match_like_the_router() -> None:
    assert (t := match("/v2/models/a/infer")) and (t.model, t.version, t.kind) == ("a", None, b"v2")
    assert (t := match("/v2/models/a/versions/3/infer")) and (t.model, t.version) == ("a", "3")
    assert (t := match("/v1/models/a:predict")) and (t.model, t.kind) == ("a", b"v1")
    not_inference = (
        "/v2/models//infer", "/v2/models/a/b/infer", "/v2/models/a/versions//infer", "/v1/models/:predict",
        "/v1/models/a/b:predict", "/v2/models/a/versions/1/2/infer", "/v2/models/a",
    )  # fmt: skip
    for path in not_inference:
        assert match(path) is None, path


def test_access_log_writes_in_batches_and_on_flush() -> None:
    class Counting(io.BytesIO):
        writes = 0

        def write(self, data) -> int:  # type: ignore[override]
            Counting.writes += 1
            return super().write(data)

    stream = Counting()
    log = AccessLog(stream, max_pending=1000, max_delay=10)
    log.write(b"outside a loop: written at once\n")
    assert Counting.writes == 1

    async def burst() -> None:
        for i in range(100):
            log.write(b'{"n": %d}\n' % i)

    import asyncio

    asyncio.run(burst())
    assert 0 < log.pending < 1000 and Counting.writes < 20  # 100 lines, a handful of writes
    log.flush()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 101 and lines[-1] == b'{"n": 99}'


def test_no_access_log_line_is_lost_on_sigterm(server_process) -> None:
    with server_process(models="breast-cancer:1") as (proc, base):
        body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 30], "data": [0.5] * 30}]}
        with httpx.Client(base_url=base) as client:
            ids = [f"line-{i}" for i in range(200)]
            for request_id in ids:
                assert client.post(INFER, json=body, headers={"X-Request-ID": request_id}).status_code == 200
        proc.send_signal(signal.SIGTERM)  # at once: the last lines are still in the buffer
        assert proc.wait(30) in (0, -signal.SIGTERM)
        assert proc.stdout is not None
        logged = [json.loads(line) for line in proc.stdout.read().splitlines() if line.strip()]
        route = "/v2/models/{model_name}/infer"
        served = [line["request_id"] for line in logged if line.get("route") == route]
        assert served == ids
