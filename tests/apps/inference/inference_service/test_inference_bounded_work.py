"""Bounded work per request: what one request may make the service compute, hold and send (issue 26)."""

from __future__ import annotations

import random
import time

INFER = "/v2/models/breast-cancer/infer"
EMBED = "/v2/models/minilm-embedding/infer"


def test_an_output_named_twice_is_a_400(make_client, tabular, rows) -> None:
    """Listing `probabilities` 10,000 times used to answer 474x the request's size."""
    with make_client() as client:
        body = tabular(rows(2), outputs=[{"name": "probabilities"}] * 3)
        response = client.post(INFER, json=body)
        assert response.status_code == 400 and "requested twice" in response.json()["error"]
        once = client.post(INFER, json=tabular(rows(2), outputs=[{"name": "probabilities"}]))
        assert once.status_code == 200 and [o["name"] for o in once.json()["outputs"]] == ["probabilities"]


def test_a_response_over_the_limit_is_refused_before_inference(
    make_client, tabular, rows, read_metric
) -> None:
    """The bound counts at least 2 bytes per JSON element (8 per binary FP64...): 100 rows of `label` (1
    element) and `probabilities` (2) are at least 600 bytes of JSON."""
    with make_client(max_response_bytes=599) as client:
        computed = read_metric(client, "inference_rows_computed_total", model="breast-cancer")
        for path, body in (
            (INFER, tabular(rows(100, seed=41))),
            ("/v1/models/breast-cancer:predict", {"instances": rows(100, seed=42)}),
        ):
            response = client.post(path, json=body)
            assert response.status_code == 413, response.text
            assert "at least 600 bytes" in response.json()["error"]
        assert read_metric(client, "inference_rows_computed_total", model="breast-cancer") == computed
        small = client.post(INFER, json=tabular(rows(1, seed=43)))
        assert small.status_code == 200
    with make_client(max_response_bytes=700) as client:  # past the bound, but the real response is larger
        response = client.post(INFER, json=tabular(rows(100, seed=44)))
        assert response.status_code == 413 and "exceeds the limit of 700" in response.json()["error"]


def test_a_huge_text_is_truncated_before_tokenising(make_client, text) -> None:
    """A 7 MB text used to take 29 s (tokenised whole, then truncated to max_length tokens) and hold up
    every request behind it. Now only its first words are tokenised: the embedding is the same as that of
    its first 2,000 words, and it is answered in a fraction of that time."""
    rng = random.Random(7)
    words = ("the", "quick", "brown", "fox", "jumps", "over", "lazy", "dogs", "while", "rules", "42", "times")
    words += ("antidisestablishmentarianism",)  # one word of several WordPiece tokens
    huge = " ".join(rng.choice(words) for _ in range(1_000_000))
    assert len(huge) > 6_000_000
    head = " ".join(huge.split(" ", 2000)[:2000])
    with make_client(models="", max_body_bytes=16 * 1024 * 1024) as client:
        started = time.monotonic()
        response = client.post(EMBED, json=text([huge]))
        elapsed = time.monotonic() - started
        assert response.status_code == 200, response.text
        reference = client.post(EMBED, json=text([head]))
        assert response.json()["outputs"][0]["data"] == reference.json()["outputs"][0]["data"]
        # Leading whitespace and control-only words do not widen the work without bound either.
        spaces = client.post(EMBED, json=text([" " * 6_000_000 + "hello"]))
        assert spaces.status_code == 200
        assert (
            spaces.json()["outputs"][0]["data"]
            == client.post(EMBED, json=text(["hello"])).json()["outputs"][0]["data"]
        )
    assert elapsed < 5.0, f"{elapsed:.1f} s for the 7 MB text"


def test_large_bodies_decoded_in_the_helper_process_are_validated_as_small_ones(make_client, rows) -> None:
    """Bodies over 256 KiB are decoded in a helper process: the same answers, the same 400s."""
    import orjson

    many = rows(3000, seed=51)  # about 1.5 MB of JSON
    assert len(orjson.dumps(many)) > 256 * 1024
    with make_client() as client:
        large = client.post(
            INFER, json={"inputs": [{"name": "input", "datatype": "FP32", "shape": [3000, 30], "data": many}]}
        )
        small = client.post(
            INFER,
            json={"inputs": [{"name": "input", "datatype": "FP32", "shape": [3, 30], "data": many[-3:]}]},
        )
        assert large.status_code == 200 and small.status_code == 200
        assert [o["data"][-3:] for o in large.json()["outputs"] if o["name"] == "label"] == [
            o["data"] for o in small.json()["outputs"] if o["name"] == "label"
        ]
        v1 = client.post("/v1/models/breast-cancer:predict", json={"instances": many})
        assert v1.status_code == 200 and len(v1.json()["predictions"]) == 3000
        broken = orjson.dumps({"instances": many})[:-10]
        response = client.post("/v1/models/breast-cancer:predict", content=broken)
        assert response.status_code == 400 and "not valid JSON" in response.json()["error"]
        ragged = [*many[:-1], many[-1][:29]]
        body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [3000, 30], "data": ragged}]}
        response = client.post(INFER, json=body)
        assert response.status_code == 400 and "ragged" in response.json()["error"]
        strings = [["x"] * 30] * 3000
        body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [3000, 30], "data": strings}]}
        response = client.post(INFER, json=body)
        assert response.status_code == 400 and "kind" in response.json()["error"]
