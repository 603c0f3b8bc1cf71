"""Adds a model exported elsewhere to the repository: `python -m model_build import PATH.onnx --name NAME
--version V [--out build/models] [--description TEXT] [--labels a,b] [--tokenizer tokenizer.json]`.

The checked version folder is written to the committed store `apps/inference/models/<name>/<version>/`
(`--store`), recorded in the catalog with its sha256 and `"imported": true` (`--catalog`; '' for none), and
copied into the model repository (`--out`): commit the folder and the catalog, and every clone's
`make models` rebuilds the same repository, and a service may name the model in the spec.

Everything the service needs is read from the ONNX file itself: inputs and outputs (names, datatypes,
shapes; a dimension without a fixed size is dynamic, -1), opsets, producer. The model is then loaded in
onnxruntime and run on a generated batch of the right shape; its outputs must match the declared signature,
and a row must give the same result alone as in a batch (the service batches and caches rows independently).
Only then is `<out>/<name>/<version>/` written: the ONNX file's bytes unchanged as model.onnx, metadata.json
with its sha256 (and, for a text model, the tokenizer and its sha256). Every problem is reported as one line
naming the file and what is unsupported; nothing is written when there is one.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import pydantic

from inference_service.repository_format import METADATA_FILE, MODEL_FILE, ModelMetadata, TensorSpec
from model_build import catalog
from model_build.imported import ImportedModelError, copy_into
from model_build.staging import staged_folder

TOKENIZER_FILE = "tokenizer.json"
TEXT_INPUT = "text"
PROBE_BATCH = 3  # rows in the generated batch: more than one, so batching is exercised
PROBE_TEXTS = ("a short probe sentence", "another, somewhat longer probe sentence for the model", "x")

# ONNX tensor element types the service serves, as V2 datatypes.
ELEMENT_TO_V2: dict[int, str] = {
    onnx.TensorProto.FLOAT: "FP32",
    onnx.TensorProto.DOUBLE: "FP64",
    onnx.TensorProto.FLOAT16: "FP16",
    onnx.TensorProto.INT8: "INT8",
    onnx.TensorProto.INT16: "INT16",
    onnx.TensorProto.INT32: "INT32",
    onnx.TensorProto.INT64: "INT64",
    onnx.TensorProto.UINT8: "UINT8",
    onnx.TensorProto.UINT16: "UINT16",
    onnx.TensorProto.UINT32: "UINT32",
    onnx.TensorProto.UINT64: "UINT64",
    onnx.TensorProto.BOOL: "BOOL",
    onnx.TensorProto.STRING: "BYTES",
}
V2_TO_NUMPY = {
    "FP32": np.float32, "FP64": np.float64, "FP16": np.float16, "INT8": np.int8, "INT16": np.int16,
    "INT32": np.int32, "INT64": np.int64, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
    "UINT64": np.uint64, "BOOL": np.bool_,
}  # fmt: skip

Array = npt.NDArray[Any]


class ModelImportError(ValueError):
    """The model cannot be imported; `problems` holds one line each, every one naming the file."""

    def __init__(self, path: Path, problems: Sequence[str]) -> None:
        self.lines = [f"{path}: {p}" for p in problems]
        super().__init__("\n".join(self.lines))


@dataclass(kw_only=True)
class Signature:
    """What the ONNX graph declares, in V2 terms."""

    inputs: list[TensorSpec] = field(default_factory=list)
    outputs: list[TensorSpec] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _type_text(tp: onnx.TypeProto) -> str:
    kind = tp.WhichOneof("value")
    if kind == "tensor_type":
        return f"tensor({onnx.TensorProto.DataType.Name(tp.tensor_type.elem_type).lower()})"
    if kind == "sequence_type":
        return f"seq({_type_text(tp.sequence_type.elem_type)})"
    if kind == "map_type":
        key = onnx.TensorProto.DataType.Name(tp.map_type.key_type).lower()
        return f"map({key},{_type_text(tp.map_type.value_type)})"
    if kind == "optional_type":
        return f"optional({_type_text(tp.optional_type.elem_type)})"
    if kind == "sparse_tensor_type":
        return f"sparse_tensor({onnx.TensorProto.DataType.Name(tp.sparse_tensor_type.elem_type).lower()})"
    return str(kind)


def _tensor_spec(role: str, value: onnx.ValueInfoProto, problems: list[str]) -> TensorSpec | None:
    """The V2 spec of one graph input or output; appends a problem and returns None when it is unsupported."""
    tp = value.type
    kind = tp.WhichOneof("value")
    what = f"{role} '{value.name}'"
    if kind != "tensor_type":
        hint = ""
        if kind == "sequence_type" and tp.sequence_type.elem_type.WhichOneof("value") == "map_type":
            hint = " (skl2onnx writes this for classifiers' probabilities: convert with zipmap False)"
        problems.append(f"{what} is a {_type_text(tp)}; the service serves tensors only{hint}")
        return None
    datatype = ELEMENT_TO_V2.get(tp.tensor_type.elem_type)
    if datatype is None:
        allowed = ", ".join(
            sorted(f"tensor({onnx.TensorProto.DataType.Name(e).lower()})" for e in ELEMENT_TO_V2)
        )
        problems.append(f"{what} is {_type_text(tp)}, which the service does not serve (allowed: {allowed})")
        return None
    if not tp.tensor_type.HasField("shape"):
        problems.append(
            f"{what} has no declared rank; export it with a shape whose first dimension is the batch"
        )
        return None
    dims = [
        d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in tp.tensor_type.shape.dim
    ]
    if not dims:
        problems.append(f"{what} is a scalar; the service needs a first (batch) dimension")
        return None
    if dims[0] != -1:
        problems.append(
            f"{what} has a fixed first dimension {dims[0]}; the first dimension is the batch and must be "
            "dynamic (export it with a named or unknown batch axis)"
        )
        return None
    return TensorSpec(name=value.name, datatype=datatype, shape=dims)


def read_signature(model: onnx.ModelProto) -> Signature:
    """Inputs (initializers excluded: older exporters list them as inputs) and outputs of the graph."""
    sig = Signature()
    initializers = {i.name for i in model.graph.initializer}
    for value in model.graph.input:
        if value.name not in initializers and (spec := _tensor_spec("input", value, sig.problems)):
            sig.inputs.append(spec)
    for value in model.graph.output:
        if spec := _tensor_spec("output", value, sig.problems):
            sig.outputs.append(spec)
    if not sig.outputs and not sig.problems:
        sig.problems.append("the graph has no outputs")
    return sig


def _runtime_opsets() -> dict[str, int]:
    """The newest opset of each domain onnxruntime has operator schemas for."""
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_c

    newest: dict[str, int] = {}
    for schema in ort_c.get_all_operator_schema():
        domain = schema.domain or "ai.onnx"
        newest[domain] = max(newest.get(domain, 0), int(schema.since_version))
    return newest


def _opset_problems(model: onnx.ModelProto) -> list[str]:
    import onnxruntime as ort

    newest = _runtime_opsets()
    problems = []
    for opset in model.opset_import:
        domain = opset.domain or "ai.onnx"
        if domain not in newest:
            problems.append(
                f"opset domain '{domain}' (version {opset.version}) is unknown to onnxruntime "
                f"{ort.__version__} (it has {', '.join(sorted(newest))})"
            )
        elif opset.version > newest[domain]:
            problems.append(
                f"opset {opset.version} of domain '{domain}' is newer than onnxruntime {ort.__version__} "
                f"supports (up to {newest[domain]}); export with an older target opset"
            )
    return problems


def _ort_message(exc: Exception) -> str:
    """onnxruntime's error as one line, without its C++ source location."""
    text = " ".join(str(exc).split())
    for marker in (" : FAIL : ", " : INVALID_GRAPH : ", " : INVALID_ARGUMENT : ", " : NOT_IMPLEMENTED : "):
        if marker in text:
            text = text.split(marker, 1)[1]
    if ") " in text and text.startswith("/"):  # "/onnxruntime_src/...h:46 void f(...) message"
        text = text.split(") ", 1)[1]
    return text[:400]


def _probe_inputs(sig: Signature, rng: np.random.Generator) -> dict[str, Array]:
    feeds: dict[str, Array] = {}
    for spec in sig.inputs:
        shape = [PROBE_BATCH, *(d if d > 0 else 1 for d in spec.shape[1:])]
        dtype = V2_TO_NUMPY[spec.datatype]
        if spec.datatype.startswith("FP"):
            feeds[spec.name] = rng.normal(size=shape).astype(dtype)
        elif spec.datatype == "BOOL":
            feeds[spec.name] = rng.integers(0, 2, size=shape).astype(np.bool_)
        else:  # small non-negative integers: valid indices and categories for most models
            feeds[spec.name] = rng.integers(0, 2, size=shape).astype(dtype)
    return feeds


def _check_outputs(sig: Signature, outputs: list[Array], batch: int) -> list[str]:
    problems = []
    for spec, array in zip(sig.outputs, outputs, strict=True):
        got = np.asarray(array)
        want_dtype = np.dtype(V2_TO_NUMPY[spec.datatype])
        if got.dtype != want_dtype:
            problems.append(
                f"output '{spec.name}' is declared {spec.datatype} but onnxruntime returned {got.dtype}"
            )
        elif (
            got.ndim != len(spec.shape)
            or got.shape[0] != batch
            or any(
                want > 0 and have != want for have, want in zip(got.shape[1:], spec.shape[1:], strict=True)
            )
        ):
            problems.append(
                f"output '{spec.name}' came back with shape {list(got.shape)} for a batch of {batch}; "
                f"the graph declares {spec.shape} (first dimension the batch)"
            )
    return problems


def _rows_independent(sig: Signature, batched: list[Array], single: list[Array]) -> list[str]:
    problems = []
    for spec, many, one in zip(sig.outputs, batched, single, strict=True):
        a, b = np.asarray(many)[:1], np.asarray(one)
        if a.shape != b.shape or not np.allclose(a, b, rtol=1e-4, atol=1e-5, equal_nan=True):
            problems.append(
                f"output '{spec.name}' for a row differs between that row alone and the row in a batch; the "
                "service batches and caches rows independently"
            )
    return problems


@dataclass(frozen=True, kw_only=True)
class TextSetup:
    tokenizer: Path
    data: bytes  # the tokenizer.json bytes that are checked, hashed and written
    max_length: int


def _text_signature(sig: Signature, text: TextSetup, problems: list[str]) -> list[TensorSpec]:
    """A text model takes the tokenizer's input_ids and attention_mask; it is served as one BYTES input."""
    names = sorted(s.name for s in sig.inputs)
    if names != ["attention_mask", "input_ids"]:
        problems.append(
            f"a text model (--tokenizer) must take exactly the inputs input_ids and attention_mask; "
            f"this graph takes {names}"
        )
    for spec in sig.inputs:
        if spec.datatype != "INT64" or len(spec.shape) != 2:
            problems.append(
                f"input '{spec.name}' is {spec.datatype} {spec.shape}; a text model needs INT64 [batch, seq]"
            )
    return [TensorSpec(name=TEXT_INPUT, datatype="BYTES", shape=[-1])]


def _probe_text(session: Any, text: TextSetup, sig: Signature) -> tuple[list[Array], list[Array]]:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(text.data.decode("utf-8"))
    tokenizer.enable_truncation(max_length=text.max_length)
    pad_id = tokenizer.token_to_id("[PAD]")
    tokenizer.enable_padding(pad_id=pad_id if pad_id is not None else 0)
    names = [o.name for o in sig.outputs]

    def run(texts: Sequence[str]) -> list[Array]:
        encodings = tokenizer.encode_batch(list(texts))
        feeds = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        }
        result: list[Array] = session.run(names, feeds)
        return result

    return run(PROBE_TEXTS), run(PROBE_TEXTS[:1])


def _apply_shapes(sig: Signature, shapes: dict[str, list[int]], problems: list[str]) -> None:
    """Fixes dynamic input dimensions to the sizes given with --shape (the ONNX file itself is unchanged)."""
    by_name = {s.name: i for i, s in enumerate(sig.inputs)}
    for name, dims in shapes.items():
        index = by_name.get(name)
        if index is None:
            problems.append(
                f"--shape names the input '{name}', which the graph does not have ({sorted(by_name)})"
            )
            continue
        declared = sig.inputs[index].shape
        if (
            len(dims) != len(declared)
            or dims[0] != -1
            or any(d <= 0 for d in dims[1:])
            or any(want > 0 and got != want for got, want in zip(dims, declared, strict=True))
        ):
            problems.append(
                f"--shape {name}={','.join(map(str, dims))} does not fit the declared {declared}: give every "
                "dimension, -1 for the batch, and the declared size wherever the graph fixes one"
            )
            continue
        sig.inputs[index] = sig.inputs[index].model_copy(update={"shape": dims})


def inspect(
    path: Path,
    data: bytes,
    *,
    text: TextSetup | None = None,
    shapes: dict[str, list[int]] | None = None,
) -> tuple[onnx.ModelProto, Signature, dict[str, Any]]:
    """Checks the model's bytes; returns the model, its served signature and what the check found.

    Raises ModelImportError listing every problem found."""
    import onnxruntime as ort

    try:
        model = onnx.load_from_string(data)
    except Exception as exc:  # onnx raises DecodeError and others for files that are not ModelProtos
        raise ModelImportError(path, [f"not an ONNX model ({type(exc).__name__}: {exc})"]) from exc
    problems: list[str] = []
    external = [t.name for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    if external:
        problems.append(
            f"initializer '{external[0]}' keeps its data in an external file; the repository serves "
            "single-file models (save with onnx.save(model, path, save_as_external_data=False))"
        )
    problems += _opset_problems(model)
    sig = read_signature(model)
    problems += sig.problems
    _apply_shapes(sig, shapes or {}, problems)
    if text is None:
        for spec in sig.inputs:
            if spec.datatype == "BYTES":
                problems.append(
                    f"input '{spec.name}' is tensor(string); string inputs are served only for text models "
                    "(pass --tokenizer tokenizer.json)"
                )
            elif any(d < 0 for d in spec.shape[1:]):
                problems.append(
                    f"input '{spec.name}' has the dynamic shape {spec.shape} beyond its batch dimension; the "
                    "service batches rows of one fixed shape (export fixed sizes, or fix them here with "
                    f"--shape {spec.name}=-1,...)"
                )
        served_inputs = sig.inputs
    else:
        served_inputs = _text_signature(sig, text, problems)
    for spec in sig.outputs:
        if spec.datatype == "BYTES":
            problems.append(
                f"output '{spec.name}' is tensor(string); the service returns numeric tensors only (export "
                "class labels as integers and name them with --labels)"
            )
    if problems:
        raise ModelImportError(path, problems)

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    try:
        session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types, one per status code
        raise ModelImportError(
            path, [f"onnxruntime {ort.__version__} cannot load it: {_ort_message(exc)}"]
        ) from exc
    names = [o.name for o in sig.outputs]
    try:
        if text is None:
            feeds = _probe_inputs(sig, np.random.default_rng(0))
            batched = session.run(names, feeds)
            single = session.run(names, {k: v[:1] for k, v in feeds.items()})
            batch = PROBE_BATCH
        else:
            batched, single = _probe_text(session, text, sig)
            batch = len(PROBE_TEXTS)
    except Exception as exc:  # a model that loads but cannot run its own signature
        raise ModelImportError(
            path, [f"onnxruntime cannot run it on a generated input: {_ort_message(exc)}"]
        ) from exc
    problems = _check_outputs(sig, batched, batch) or _rows_independent(sig, batched, single)
    if problems:
        raise ModelImportError(path, problems)
    served = Signature(inputs=served_inputs, outputs=sig.outputs)
    checked = {
        "probe_batch": batch,
        "output_shapes": {n: list(np.shape(a)) for n, a in zip(names, batched, strict=True)},
    }
    return model, served, checked


def _labels_problem(labels: list[str], outputs: list[TensorSpec]) -> str | None:
    if not labels or any(s.shape[-1] == len(labels) for s in outputs if len(s.shape) > 1):
        return None
    if any(len(s.shape) == 1 for s in outputs):  # a label output [batch] with class indices
        return None
    return f"--labels names {len(labels)} classes but no output has {len(labels)} columns"


def import_model(
    path: Path,
    *,
    out: Path,
    name: str,
    version: str,
    description: str = "",
    labels: list[str] | None = None,
    tokenizer: Path | None = None,
    max_length: int | None = None,
    shapes: dict[str, list[int]] | None = None,
    force: bool = False,
) -> Path:
    """Checks the model and writes `<out>/<name>/<version>/`; returns that folder. The bytes written are the
    ones checked: each file is read once."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelImportError(path, [(exc.strerror or "cannot read it").lower()]) from exc
    text = None
    if tokenizer is not None:
        text = _text_setup(path, tokenizer, max_length)
    model, sig, checked = inspect(path, data, text=text, shapes=shapes)
    sha256 = hashlib.sha256(data).hexdigest()
    labels = labels or []
    if problem := _labels_problem(labels, sig.outputs):
        raise ModelImportError(path, [problem])
    details: dict[str, Any] = {
        "imported_from": path.name,
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "ir_version": model.ir_version,
        "opsets": {o.domain or "ai.onnx": o.version for o in model.opset_import},
        "import_check": checked,
    }
    if shapes:
        details["shapes_fixed_at_import"] = shapes
    if labels:
        details["class_labels"] = labels
    token_spec = None
    if text is not None:
        token_spec = {
            "file": TOKENIZER_FILE,
            "sha256": hashlib.sha256(text.data).hexdigest(),
            "max_length": text.max_length,
        }
    try:
        metadata = ModelMetadata(
            name=name,
            version=version,
            kind="tensor" if text is None else "text-embedding",
            description=description or (model.doc_string.strip().splitlines() or [""])[0][:200],
            model_sha256=sha256,
            inputs=sig.inputs,
            outputs=sig.outputs,
            tokenizer=token_spec,
            details=details,
        )
    except pydantic.ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise ModelImportError(
            path, [f"--{p}" if p.startswith(("name", "version")) else p for p in problems]
        ) from exc
    target = out / name / version
    meta_bytes = metadata.to_json_bytes()
    if target.exists() and not force:
        same = (target / MODEL_FILE).is_file() and (target / METADATA_FILE).is_file()
        if same and (target / METADATA_FILE).read_bytes() == meta_bytes:
            return target  # already imported, byte for byte
        raise ModelImportError(
            path,
            [
                f"{target} already exists with other contents; a version is immutable "
                "(pick a new --version, or --force)"
            ],
        )
    with staged_folder(target) as staging:
        (staging / MODEL_FILE).write_bytes(data)
        if text is not None:
            (staging / TOKENIZER_FILE).write_bytes(text.data)
        (staging / METADATA_FILE).write_bytes(meta_bytes)
    return target


def _text_setup(path: Path, tokenizer: Path, given: int | None) -> TextSetup:
    from tokenizers import Tokenizer

    try:
        data = tokenizer.read_bytes()
        loaded = Tokenizer.from_str(data.decode("utf-8"))
    except Exception as exc:  # tokenizers raises a bare Exception on malformed files
        raise ModelImportError(
            path, [f"--tokenizer {tokenizer}: not a readable tokenizers tokenizer.json ({exc})"]
        ) from exc
    if given is not None:
        return TextSetup(tokenizer=tokenizer, data=data, max_length=given)
    truncation = loaded.truncation
    if truncation and truncation.get("max_length"):
        return TextSetup(tokenizer=tokenizer, data=data, max_length=int(truncation["max_length"]))
    raise ModelImportError(path, [f"--tokenizer {tokenizer} sets no truncation length: pass --max-length N"])


def _parse_shape(text: str) -> tuple[str, list[int]]:
    name, sep, dims = text.partition("=")
    try:
        parsed = [int(d) for d in dims.split(",")]
    except ValueError:
        parsed = []
    if not sep or not name or not parsed:
        raise argparse.ArgumentTypeError(
            f"expected NAME=-1,D1,D2,... (e.g. image=-1,3,224,224), got {text!r}"
        )
    return name, parsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m model_build import",
        description=__doc__.splitlines()[0] + " " + __doc__.splitlines()[1],
    )
    parser.add_argument("onnx", type=Path, metavar="PATH.onnx")
    parser.add_argument("--name", required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument(
        "--out", type=Path, default=Path("build/models"), help="model repository (default build/models)"
    )
    parser.add_argument(
        "--store", type=Path, default=catalog.IMPORTED_DIR, help="committed folder of imported models"
    )
    parser.add_argument(
        "--catalog", default=str(catalog.CATALOG_FILE), help="catalog to record the model in ('' for none)"
    )
    parser.add_argument("--description", default="")
    parser.add_argument("--labels", default="", help="comma-separated class labels, in class-index order")
    parser.add_argument(
        "--tokenizer", type=Path, help="tokenizer.json of a text model (inputs input_ids, attention_mask)"
    )
    parser.add_argument(
        "--max-length", type=int, help="token limit for --tokenizer (default: the tokenizer's own)"
    )
    parser.add_argument(
        "--shape",
        type=_parse_shape,
        action="append",
        default=[],
        metavar="NAME=-1,D1,...",
        help="fix an input's dynamic dimensions after the batch (repeatable)",
    )
    parser.add_argument(
        "--force", action="store_true", help="replace an existing version with other contents"
    )
    args = parser.parse_args(argv)
    labels = [label.strip() for label in args.labels.split(",") if label.strip()]
    try:
        if args.catalog:  # before anything is written: a version the catalog has otherwise is refused
            catalog.check_import(Path(args.catalog), args.name, args.version)
        stored = import_model(
            args.onnx, out=args.store, name=args.name, version=args.version, description=args.description,
            labels=labels, tokenizer=args.tokenizer, max_length=args.max_length, shapes=dict(args.shape),
            force=args.force,
        )  # fmt: skip
        meta = ModelMetadata.read(stored / METADATA_FILE)
        recorded = args.catalog and catalog.record_import(
            Path(args.catalog), meta.name, meta.version, meta.model_sha256, force=args.force
        )
        copy_into(args.store, args.out, meta.name, meta.version, meta.model_sha256)
    except ModelImportError as exc:
        for line in exc.lines:
            print(f"model_build: error: {line}", file=sys.stderr)
        return 1
    except (ValueError, ImportedModelError) as exc:
        print(f"model_build: error: {exc}", file=sys.stderr)
        return 1
    target = args.out / meta.name / meta.version

    def sig(specs: list[TensorSpec]) -> str:
        return ", ".join(f"{s.name} {s.datatype} {s.shape}" for s in specs)

    print(f"model_build: imported {meta.name}:{meta.version} into {target} (sha256 {meta.model_sha256})")
    print(f"model_build:   inputs  {sig(meta.inputs)}")
    print(f"model_build:   outputs {sig(meta.outputs)}")
    print(f"model_build: files in {stored}")
    if args.catalog:
        state = "recorded in" if recorded else "already in"
        print(f"model_build: {meta.name}:{meta.version} {state} the catalog {args.catalog}")
        print(f"model_build: commit {stored} and the catalog; then a service may name it in overlays/")
    return 0
