"""The model repository's format: the metadata.json that sits next to every model.onnx.

The runtime owns it: the inference service reads it to learn which adapter serves the model ("kind"), the
V2 signature it exposes (names, datatypes, shapes; -1 is a dynamic dimension, the first is the batch) and,
for text models, the tokenizer. `details` carries free-form provenance (training data, metrics, weights hash).
The build (model_build) imports it from here to write it, so the runtime imports nothing of the build tool.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

FORMAT = "mlplatform.model/v1"
MODEL_FILE = "model.onnx"
METADATA_FILE = "metadata.json"

# The V2 tensor datatypes this project serves.
Datatype = Literal["BOOL", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64",
                   "FP16", "FP32", "FP64", "BYTES"]  # fmt: skip


class TensorSpec(BaseModel):
    """One input or output as the V2 protocol describes it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    datatype: Datatype
    shape: list[int] = Field(min_length=1, description="-1 marks a dynamic dimension; the first is the batch")


class TokenizerSpec(BaseModel):
    """How a text model turns strings into the ONNX inputs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str = "tokenizer.json"
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="of the tokenizer file; checked at load")
    max_length: int = Field(gt=0)
    input_ids: str = "input_ids"
    attention_mask: str = "attention_mask"


class ModelMetadata(BaseModel):
    """Contents of `<repository>/<name>/<version>/metadata.json`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["mlplatform.model/v1"] = "mlplatform.model/v1"
    name: str = Field(pattern=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
    version: str = Field(pattern=r"^[0-9]+$")
    kind: Literal["tensor", "text-embedding"]
    platform: Literal["onnxruntime_onnx"] = "onnxruntime_onnx"
    description: str = ""
    model_file: str = MODEL_FILE
    model_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    inputs: list[TensorSpec] = Field(min_length=1)
    outputs: list[TensorSpec] = Field(min_length=1)
    allow_non_finite: bool = Field(default=False, description="accept NaN and infinities in float inputs")
    tokenizer: TokenizerSpec | None = None
    details: dict[str, Any] = Field(default_factory=dict)

    def to_json_bytes(self) -> bytes:
        """Canonical bytes: sorted keys, two-space indent, trailing newline (same model, same bytes)."""
        return (
            orjson.dumps(self.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)
            + b"\n"
        )

    @classmethod
    def read(cls, path: Path) -> ModelMetadata:
        """Parses and validates a metadata.json; errors name the file."""
        try:
            return cls.model_validate_json(path.read_bytes())
        except ValueError as exc:
            raise ValueError(f"{path}: invalid model metadata: {exc}") from exc


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
