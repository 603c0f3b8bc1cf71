"""Served models: an onnxruntime session plus the code that turns validated request tensors into rows and
rows of results back into tensors.

Two adapters:
- `TensorModel` serves any ONNX model whose inputs are numeric tensors with a leading batch dimension (the
  tabular classifier is one). A row is one slice along the batch dimension of every input.
- `TextEmbeddingModel` serves a text model: a BYTES input `text`, tokenized with the model's tokenizer.json,
  run through the ONNX graph (input_ids, attention_mask -> embedding). A row is one string.

Every row has a canonical byte form (`row_key_bytes`) that the cache hashes, and every row of results a byte
form (`encode_result` / `decode_result`) that the cache stores.
"""

from __future__ import annotations

import itertools
import re
import statistics
import struct
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from inference_service.datatypes import ONNX_TO_V2, V2_TO_NUMPY
from inference_service.repository import ModelEntry, read_verified
from inference_service.repository_format import TensorSpec
from inference_service.settings import Settings

Array = npt.NDArray[Any]
Row = Any  # tuple[Array, ...] for tensor models, bytes for text models
RowResult = tuple[Array, ...]  # one array per output, without the batch dimension


@dataclass(frozen=True, kw_only=True)
class ModelLoadInfo:
    load_seconds: float
    per_call_seconds: float  # median batch-1 inference time measured during warm-up
    providers: list[str]


def make_session(model: str | bytes, settings: Settings) -> ort.InferenceSession:
    """An onnxruntime session (from a path or the model's bytes) with the thread counts and execution
    providers from settings."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.ort_intra_op_threads
    options.inter_op_num_threads = settings.ort_inter_op_threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    available = set(ort.get_available_providers())
    providers = [p for p in settings.provider_list if p in available] or ["CPUExecutionProvider"]
    return ort.InferenceSession(model, sess_options=options, providers=providers)


class ServedModel(ABC):
    """What the engine needs from a model, whatever its kind."""

    text = False  # rows are UTF-8 strings (TextEmbeddingModel), not tensor slices; a flag, not isinstance

    def __init__(self, entry: ModelEntry, settings: Settings) -> None:
        self.entry = entry
        self.name = entry.name
        self.version = entry.version
        self.label = f"{entry.name}:{entry.version}"
        self.inputs: list[TensorSpec] = list(entry.metadata.inputs)
        self.outputs: list[TensorSpec] = list(entry.metadata.outputs)
        self.input_names = [i.name for i in self.inputs]
        self.output_names = [o.name for o in self.outputs]
        self.output_datatypes = {o.name: o.datatype for o in self.outputs}
        self.output_index = {o.name: i for i, o in enumerate(self.outputs)}
        self.output_dtypes = [V2_TO_NUMPY[o.datatype] for o in self.outputs]
        self.allow_non_finite = entry.metadata.allow_non_finite
        # Class names in class-index order (metadata details.class_labels: `--labels` at import, the recipes'
        # own), and the output holding one class index per row: V1 answers with the name there, as KServe's
        # V1 classifiers answer with the estimator's classes; V2 names them through classification.
        labels = entry.metadata.details.get("class_labels")
        self.class_labels: list[str] = [str(x) for x in labels] if isinstance(labels, list) else []
        self.class_output: str | None = next(
            (
                o.name
                for o in self.outputs
                if self.class_labels and len(o.shape) == 1 and o.datatype.startswith(("INT", "UINT"))
            ),
            None,
        )
        self.max_batch_size = settings.max_batch_size
        started = time.perf_counter()
        # Only bytes whose sha256 matches the metadata reach onnxruntime.
        self.session = make_session(read_verified(entry), settings)
        self._check_signature()
        self._load_seconds = time.perf_counter() - started

    def _check_signature(self) -> None:
        onnx_outputs = {o.name for o in self.session.get_outputs()}
        missing = [o.name for o in self.outputs if o.name not in onnx_outputs]
        if missing:
            raise ValueError(
                f"{self.name}:{self.version}: metadata outputs {missing} are not in the ONNX graph"
            )

    @abstractmethod
    def row_key_bytes(self, row: Row) -> bytes:
        """Canonical bytes of one row (what the cache key hashes)."""

    @abstractmethod
    def _run(self, rows: Sequence[Row]) -> list[Array]:
        """Runs at most max_batch_size rows; returns one array per output with the batch first."""

    @abstractmethod
    def warmup_row(self) -> Row:
        """A valid row for warm-up."""

    def run_rows(self, rows: Sequence[Row]) -> list[RowResult]:
        """Runs any number of rows (in chunks of max_batch_size); called off the event loop."""
        if len(rows) <= self.max_batch_size:
            return list(zip(*self._run(rows), strict=True))
        results: list[RowResult] = []
        for start in range(0, len(rows), self.max_batch_size):
            outputs = self._run(rows[start : start + self.max_batch_size])
            results.extend(zip(*outputs, strict=True))
        return results

    def warm_up(self, calls: int = 15) -> ModelLoadInfo:
        """Runs the model a few times (first calls allocate) and measures a batch-1 call."""
        row = self.warmup_row()
        timings = []
        for _ in range(calls):
            started = time.perf_counter()
            self.run_rows([row])
            timings.append(time.perf_counter() - started)
        return ModelLoadInfo(
            load_seconds=self._load_seconds,
            per_call_seconds=statistics.median(timings[3:]),
            providers=list(self.session.get_providers()),
        )

    def encode_result(self, result: RowResult) -> bytes:
        """Cache value: per output, rank (u8), dims (u32 each), then the raw little-endian bytes."""
        parts = []
        for array in result:
            parts.append(struct.pack(f"<B{array.ndim}I", array.ndim, *array.shape))
            parts.append(np.ascontiguousarray(array).tobytes())
        return b"".join(parts)

    def decode_result(self, blob: bytes) -> RowResult:
        """Inverse of encode_result; raises ValueError on a malformed value."""
        arrays = []
        offset = 0
        for dtype in self.output_dtypes:
            (ndim,) = struct.unpack_from("<B", blob, offset)
            shape = struct.unpack_from(f"<{ndim}I", blob, offset + 1)
            offset += 1 + 4 * ndim
            count = int(np.prod(shape)) if ndim else 1
            size = count * dtype.itemsize
            if offset + size > len(blob):
                raise ValueError("truncated cache value")
            arrays.append(np.frombuffer(blob, dtype=dtype, count=count, offset=offset).reshape(shape))
            offset += size
        if offset != len(blob):
            raise ValueError("cache value has trailing bytes")
        return tuple(arrays)

    def stack(self, results: Sequence[RowResult]) -> list[Array]:
        """Row results back into one array per output, batch first."""
        if len(results) == 1:  # the common batch-1 request: a view with a batch axis, no np.stack
            row = zip(results[0], self.output_dtypes, strict=True)
            return [np.asarray(a, dtype=d)[np.newaxis] for a, d in row]
        return [
            np.stack([r[i] for r in results]).astype(dtype, copy=False)
            for i, dtype in enumerate(self.output_dtypes)
        ]


class TensorModel(ServedModel):
    """Any ONNX model with numeric inputs batched along the first dimension."""

    def __init__(self, entry: ModelEntry, settings: Settings) -> None:
        super().__init__(entry, settings)
        self.input_dtypes = [V2_TO_NUMPY[i.datatype] for i in self.inputs]

    def _check_signature(self) -> None:
        super()._check_signature()
        onnx_inputs = {i.name: i for i in self.session.get_inputs()}
        for spec in self.inputs:
            node = onnx_inputs.get(spec.name)
            if node is None:
                raise ValueError(
                    f"{self.name}:{self.version}: metadata input {spec.name} is not in the graph"
                )
            if ONNX_TO_V2.get(node.type) != spec.datatype:
                raise ValueError(
                    f"{self.label}: input {spec.name} is {node.type} in the graph, "
                    f"{spec.datatype} in metadata"
                )

    def row_key_bytes(self, row: Row) -> bytes:
        parts: tuple[Array, ...] = row
        if len(parts) == 1:
            return parts[0].tobytes()  # tobytes is C order whatever the array's layout
        return b"".join([p.tobytes() for p in parts])

    def _run(self, rows: Sequence[Row]) -> list[Array]:
        if len(self.input_names) == 1:  # the common one-input model, without a comprehension's frame
            feeds = {
                self.input_names[0]: rows[0][0][np.newaxis]
                if len(rows) == 1
                else np.stack([r[0] for r in rows])
            }
        elif len(rows) == 1:
            feeds = {name: part[np.newaxis] for name, part in zip(self.input_names, rows[0], strict=True)}
        else:
            feeds = {name: np.stack([r[i] for r in rows]) for i, name in enumerate(self.input_names)}
        outputs: list[Array] = self.session.run(self.output_names, feeds)
        return outputs

    def warmup_row(self) -> Row:
        return tuple(
            np.zeros([d if d > 0 else 1 for d in spec.shape[1:]], dtype=dtype)
            for spec, dtype in zip(self.inputs, self.input_dtypes, strict=True)
        )


#: How far a text's window widens while its words give no tokens: then it is cut anyway (bounded work).
_MAX_WORDS_PER_TOKEN = 16
_WORD = re.compile(r"\S+")


class TextEmbeddingModel(ServedModel):
    """Text in (BYTES `text`), tokenized from tokenizer.json, embedding out."""

    text = True

    def __init__(self, entry: ModelEntry, settings: Settings) -> None:
        from tokenizers import Tokenizer

        super().__init__(entry, settings)
        spec = entry.metadata.tokenizer
        if spec is None:
            raise ValueError(
                f"{self.name}:{self.version}: a text-embedding model needs a `tokenizer` section"
            )
        self._tokenizer_spec = spec
        self.tokenizer = Tokenizer.from_str(read_verified(entry, spec.file, spec.sha256).decode("utf-8"))
        self.tokenizer.enable_truncation(max_length=spec.max_length)
        self._max_length = spec.max_length
        pad_id = self.tokenizer.token_to_id("[PAD]")
        self.tokenizer.enable_padding(pad_id=pad_id if pad_id is not None else 0)

    def row_key_bytes(self, row: Row) -> bytes:
        text: bytes = row
        return text

    def head(self, text: str) -> str:
        """What of `text` decides its first max_length tokens, found without tokenising the rest (a 7 MB text
        tokenised whole took 29 s on the model thread, in front of every other request): its first words
        joined by single spaces (the WordPiece tokenizers of text models split on whitespace and drop it).

        Every word gives at least one token, so max_length words are enough; words that give none (control
        characters only) double the count, up to `_MAX_WORDS_PER_TOKEN` words per token: bounded work."""
        count = self._max_length
        if len(text) <= count * _MAX_WORDS_PER_TOKEN:
            return text  # short enough to tokenise as it is
        while True:
            words = [m.group() for m in itertools.islice(_WORD.finditer(text), count)]
            head = " ".join(words)
            if len(words) < count or count >= self._max_length * _MAX_WORDS_PER_TOKEN:
                return head
            if self.tokenizer.encode(head).overflowing:
                return head
            count *= 2

    def _run(self, rows: Sequence[Row]) -> list[Array]:
        texts = [self.head(r.decode("utf-8")) for r in rows]
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {self._tokenizer_spec.input_ids: ids, self._tokenizer_spec.attention_mask: mask}
        outputs: list[Array] = self.session.run(self.output_names, feeds)
        return outputs

    def warmup_row(self) -> Row:
        return b"warm-up sentence for the embedding model"


def load_model(entry: ModelEntry, settings: Settings) -> ServedModel:
    """The adapter for the entry's kind."""
    if entry.metadata.kind == "text-embedding":
        return TextEmbeddingModel(entry, settings)
    return TensorModel(entry, settings)
