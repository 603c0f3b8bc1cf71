"""The cache against a real redis-server: hits, partial-batch hits, single-flight, Redis failures."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

INFER = "/v2/models/breast-cancer/infer"
ROWS = "inference_rows_computed_total"
LOOKUPS = "inference_cache_lookups_total"


def _outputs(response):
    assert response.status_code == 200, response.text
    return {o["name"]: o["data"] for o in response.json()["outputs"]}


def test_local_tier_hits_and_partial_batches(make_client, tabular, rows, read_metric) -> None:
    first, second = rows(4, seed=101), rows(2, seed=102)
    with make_client() as client:
        cold = _outputs(client.post(INFER, json=tabular(first)))
        assert read_metric(client, ROWS, model="breast-cancer") == 4
        warm = _outputs(client.post(INFER, json=tabular(first)))
        assert warm == cold
        assert read_metric(client, ROWS, model="breast-cancer") == 4
        assert read_metric(client, LOOKUPS, model="breast-cancer", tier="local", result="hit") == 4
        # Two known rows, two new ones, interleaved: only the new ones run, order is kept.
        mixed = [second[0], first[1], second[1], first[3]]
        result = _outputs(client.post(INFER, json=tabular(mixed)))
        assert read_metric(client, ROWS, model="breast-cancer") == 6
        assert result["label"][1] == cold["label"][1] and result["label"][3] == cold["label"][3]
        assert result["probabilities"][2:4] == cold["probabilities"][2:4]
        assert result["probabilities"][6:8] == cold["probabilities"][6:8]
        # A row repeated inside one request runs once.
        repeated = rows(1, seed=103) * 3
        out = _outputs(client.post(INFER, json=tabular(repeated)))
        assert len(set(out["label"])) == 1
        assert read_metric(client, ROWS, model="breast-cancer") == 7


def test_redis_tier_hits_across_app_instances(make_client, redis_server, tabular, rows, read_metric) -> None:
    batch = rows(3, seed=201)
    settings = {"redis_url": redis_server.url, "redis_min_inference_us": 0, "local_cache_entries": 0}
    with make_client(**settings) as first:
        assert read_metric(first, "inference_model_uses_redis", model="breast-cancer") == 1
        cold = _outputs(first.post(INFER, json=tabular(batch)))
        deadline = time.monotonic() + 5
        store = redis.Redis(port=redis_server.port)
        while time.monotonic() < deadline and len(store.keys("inference:breast-cancer:1:*")) < 3:
            time.sleep(0.01)
        assert store.ttl(store.keys("inference:breast-cancer:1:*")[0]) > 0
    with make_client(**settings) as second:  # a new process-like instance: only Redis remembers
        extra = rows(1, seed=202)
        result = _outputs(second.post(INFER, json=tabular([*batch, *extra])))
        assert result["label"][:3] == cold["label"]
        assert read_metric(second, LOOKUPS, model="breast-cancer", tier="redis", result="hit") == 3
        assert read_metric(second, ROWS, model="breast-cancer") == 1


def test_cheap_model_skips_redis_expensive_model_uses_it(
    make_client, redis_server, read_metric, text
) -> None:
    with make_client(models="", redis_url=redis_server.url) as client:
        # breast-cancer runs in ~15 us, below the default 150 us Redis round trip; the embedding costs ms.
        assert read_metric(client, "inference_model_uses_redis", model="breast-cancer") == 0
        assert read_metric(client, "inference_model_uses_redis", model="minilm-embedding") == 1
        assert read_metric(client, "inference_model_call_seconds", model="breast-cancer") < read_metric(
            client, "inference_model_call_seconds", model="minilm-embedding"
        )
        sentence = [f"cache me {time.time_ns()}"]
        a = client.post("/v2/models/minilm-embedding/infer", json=text(sentence)).json()
        b = client.post("/v2/models/minilm-embedding/infer", json=text(sentence)).json()
        assert a == b
        assert read_metric(client, ROWS, model="minilm-embedding") == 1


@pytest.mark.parametrize("inline_max_us", [0, 1_000_000], ids=["model-thread", "event-loop"])
def test_single_flight_computes_concurrent_identical_misses_once(
    make_client, tabular, rows, read_metric, inline_max_us
) -> None:
    row = rows(1, seed=301)
    with make_client(max_batch_wait_ms=300, inline_inference_max_us=inline_max_us) as client:
        inline = read_metric(client, "inference_model_inline", model="breast-cancer")
        assert inline == (1 if inline_max_us else 0)
        before = read_metric(client, ROWS, model="breast-cancer")
        with ThreadPoolExecutor(8) as pool:
            responses = list(pool.map(lambda _: client.post(INFER, json=tabular(row)), range(8)))
        outputs = [_outputs(r) for r in responses]
        assert all(o == outputs[0] for o in outputs)
        assert read_metric(client, ROWS, model="breast-cancer") - before == 1
        joins = read_metric(client, "inference_singleflight_joins_total", model="breast-cancer")
        local_hits = read_metric(client, LOOKUPS, model="breast-cancer", tier="local", result="hit")
        assert joins >= 1 and joins + local_hits == 7


def test_redis_killed_and_restarted_mid_traffic(
    make_client, redis_server, tabular, rows, read_metric
) -> None:
    settings = {
        "redis_url": redis_server.url,
        "redis_min_inference_us": 0,
        "local_cache_entries": 0,
        "redis_timeout_ms": 50,
        "redis_breaker_cooldown_seconds": 0.2,
    }
    pool = rows(40, seed=401)
    statuses: list[int] = []
    stop = threading.Event()
    with make_client(**settings) as client:

        def traffic() -> None:
            i = 0
            while not stop.is_set():
                statuses.append(client.post(INFER, json=tabular([pool[i % len(pool)]])).status_code)
                i += 1

        worker = threading.Thread(target=traffic)
        worker.start()
        try:
            time.sleep(0.3)
            redis_server.kill()
            time.sleep(0.6)
            errors_while_down = read_metric(client, "inference_cache_errors_total", operation="get")
            redis_server.start()
            time.sleep(0.8)  # longer than the breaker's cool-down: Redis is used again
        finally:
            stop.set()
            worker.join()
        assert statuses and all(s == 200 for s in statuses), set(statuses)
        assert errors_while_down >= 1
        store = redis.Redis(port=redis_server.port)
        assert len(store.keys("inference:breast-cancer:1:*")) > 0  # repopulated after the restart
        hits_before = read_metric(client, LOOKUPS, model="breast-cancer", tier="redis", result="hit")
        client.post(INFER, json=tabular([pool[0]]))
        client.post(INFER, json=tabular([pool[0]]))
        time.sleep(0.05)
        client.post(INFER, json=tabular([pool[0]]))
        assert read_metric(client, LOOKUPS, model="breast-cancer", tier="redis", result="hit") > hits_before


def test_stalled_redis_never_stalls_a_request(make_client, redis_server, tabular, rows, read_metric) -> None:
    settings = {"redis_url": redis_server.url, "redis_min_inference_us": 0, "redis_timeout_ms": 30}
    with make_client(**settings) as client:
        assert client.post(INFER, json=tabular(rows(1, seed=501))).status_code == 200
        redis_server.pause()
        try:
            for seed in range(502, 507):
                started = time.monotonic()
                response = client.post(INFER, json=tabular(rows(1, seed=seed)))
                assert response.status_code == 200
                assert time.monotonic() - started < 1.0  # bounded by the 30 ms timeout, not by Redis
        finally:
            redis_server.resume()
        assert read_metric(client, "inference_cache_errors_total", operation="get") >= 1


def test_redis_password_from_a_mounted_file(make_client, tmp_path, tabular, rows, read_metric) -> None:
    from inference_service.local import RedisProcess

    server = RedisProcess(password="s3cret-pass")
    server.start()
    try:
        secret = tmp_path / "password"
        secret.write_text("s3cret-pass\n")
        common = {"redis_url": server.url, "redis_min_inference_us": 0, "local_cache_entries": 0}
        with make_client(**common, redis_password_file=secret) as client:
            assert client.post(INFER, json=tabular(rows(1, seed=801))).status_code == 200
            time.sleep(0.1)
            assert read_metric(client, "inference_cache_errors_total", operation="get") == 0
            assert len(redis.Redis(port=server.port, password="s3cret-pass").keys("inference:*")) == 1
        wrong = tmp_path / "wrong"
        wrong.write_text("nope")
        with make_client(**common, redis_password_file=wrong) as client:
            assert client.post(INFER, json=tabular(rows(1, seed=802))).status_code == 200  # served uncached
            assert read_metric(client, "inference_cache_errors_total", operation="get") == 1
    finally:
        server.close()
