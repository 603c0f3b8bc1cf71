"""Measures the embedding conversion and the built model: build time, file size, onnxruntime latency.

    python bench/embedding_bench.py [--repeats N]

Latency is raw `session.run` (tokenization excluded, reported separately) on one intra-op thread, for a
typical sentence at batch 1 and batch 32; medians over the repeats after a warm-up.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from model_build.embedding import ATTENTION_MASK, INPUT_IDS, OUTPUT, build

SENTENCE = "How do I configure autoscaling for the inference service in the staging environment?"


def median_us(fn: object, repeats: int) -> float:
    assert callable(fn)
    for _ in range(max(3, repeats // 10)):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        start = time.perf_counter()
        build(out)
        build_s = time.perf_counter() - start
        size_mb = (out / "model.onnx").stat().st_size / 1e6
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        start = time.perf_counter()
        session = ort.InferenceSession(str(out / "model.onnx"), options, providers=["CPUExecutionProvider"])
        load_s = time.perf_counter() - start
        tokenizer = Tokenizer.from_file(str(out / "tokenizer.json"))
    print(f"build (incl. self-check): {build_s:.2f} s; model.onnx {size_mb:.1f} MB; load {load_s:.2f} s")
    tokens = len(tokenizer.encode(SENTENCE).ids)
    print(f"sentence: {tokens} tokens")
    for batch in (1, 32):
        encodings = tokenizer.encode_batch([SENTENCE] * batch)
        feeds = {
            INPUT_IDS: np.array([e.ids for e in encodings], dtype=np.int64),
            ATTENTION_MASK: np.array([e.attention_mask for e in encodings], dtype=np.int64),
        }
        run_us = median_us(lambda f=feeds: session.run([OUTPUT], f), args.repeats)
        tok_us = median_us(lambda b=batch: tokenizer.encode_batch([SENTENCE] * b), args.repeats)
        print(
            f"batch {batch:2d}: session.run median {run_us / 1000:.2f} ms "
            f"({run_us / batch / 1000:.3f} ms/sentence); tokenization {tok_us / 1000:.3f} ms"
        )


if __name__ == "__main__":
    main()
