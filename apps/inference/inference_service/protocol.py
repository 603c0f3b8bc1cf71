"""Open Inference Protocol (V2) and KServe V1 bodies: parse, validate against the model's signature, encode.

JSON tensors and the binary tensor data extension (`Inference-Header-Content-Length`: the JSON header comes
first, then each binary input's bytes in order; BYTES elements are a 4-byte little-endian length plus the
bytes) are both accepted, whatever the Content-Type says.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from inference_service.datatypes import FLOAT_TYPES, INT_TYPES, V2_TO_NUMPY
from inference_service.decoding import invalid_json
from inference_service.errors import BadRequest, PayloadTooLarge
from inference_service.repository_format import TensorSpec
from inference_service.sessions import Array, Row, RowResult, ServedModel

BINARY_HEADER = "inference-header-content-length"
_NUMERIC_KINDS = {"FP": "fiu", "INT": "iu", "UINT": "iu", "BOOL": "b"}
_ALLOWED_KINDS = {  # numpy kinds a JSON `data` list may hold, per V2 datatype
    datatype: next(kinds for prefix, kinds in _NUMERIC_KINDS.items() if datatype.startswith(prefix))
    for datatype in V2_TO_NUMPY
}


@dataclass(frozen=True, kw_only=True, slots=True)
class OutputRequest:
    names: tuple[str, ...]
    binary: frozenset[str]
    # output -> k: the classification extension (Triton's, which tritonclient's `class_count` asks for):
    # the row's k largest values as BYTES "value:index:label" (":label" where the model names its classes)
    classification: tuple[tuple[str, int], ...] = ()


@dataclass(kw_only=True, slots=True)  # not frozen: a frozen dataclass's __init__ costs a setattr per field
class InferRequest:
    id: str | None
    rows: list[Row]
    outputs: OutputRequest


def _loads(data: bytes | memoryview) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(invalid_json(exc)) from exc


_NO_TAIL = memoryview(b"")


def split_binary(body: bytes, header_length: str | None, decoded: Any = None) -> tuple[Any, memoryview]:
    """The JSON document and the binary tail of a request body (`decoded`: the document of a body without
    a binary tail, decoded already by inference_service.decoding)."""
    if header_length is None:
        return (decoded if decoded is not None else _loads(body)), _NO_TAIL
    try:
        size = int(header_length)
    except ValueError:
        raise BadRequest(
            f"Inference-Header-Content-Length must be an integer, got {header_length!r}"
        ) from None
    if not 0 < size <= len(body):
        raise BadRequest(f"Inference-Header-Content-Length {size} is outside the body (length {len(body)})")
    view = memoryview(body)
    return _loads(view[:size]), view[size:]


def _all_finite(array: Array) -> bool:
    """No NaN or infinity in the array (the ufunc reduction itself: ndarray.all() adds a Python frame)."""
    return bool(np.logical_and.reduce(np.isfinite(array), axis=None))


def _shape_text(shape: Sequence[int]) -> str:
    return "[" + ", ".join("-1" if d < 0 else str(d) for d in shape) + "]"


def _check_shape(spec: TensorSpec, shape: Any) -> list[int]:
    # Plain loops, not generator expressions: this runs on every request.
    integers = isinstance(shape, list)
    if integers:
        for d in shape:
            if type(d) is not int:  # bool is not a dimension either
                integers = False
                break
    if not integers:
        raise BadRequest(
            f"input '{spec.name}': shape must be a list of integers, expected {_shape_text(spec.shape)}"
        )
    matches = len(shape) == len(spec.shape)
    if matches:
        for got, want in zip(shape, spec.shape, strict=True):
            if want >= 0 and got != want:
                matches = False
                break
    if not matches:
        raise BadRequest(
            f"input '{spec.name}': shape {shape} does not match the model's {_shape_text(spec.shape)} "
            "(-1: any size; the first dimension is the batch)"
        )
    for d in shape:
        if d < 0:
            raise BadRequest(f"input '{spec.name}': shape {shape} has a negative dimension")
    if shape[0] == 0:
        raise BadRequest(f"input '{spec.name}': the batch dimension is 0; send at least one row")
    dims: list[int] = shape
    return dims


def _numeric(spec: TensorSpec, item: dict[str, Any], shape: list[int], binary: memoryview | None) -> Array:
    dtype = V2_TO_NUMPY[spec.datatype]
    count = math.prod(shape)
    if binary is not None:
        if len(binary) != count * dtype.itemsize:
            raise BadRequest(
                f"input '{spec.name}': {len(binary)} binary bytes, expected {count * dtype.itemsize} "
                f"({count} x {spec.datatype})"
            )
        return np.frombuffer(binary, dtype=dtype.newbyteorder("<")).astype(dtype, copy=False).reshape(shape)
    data = item.get("data")
    if not isinstance(data, list | np.ndarray):  # an array: decoded by inference_service.decoding
        raise BadRequest(f"input '{spec.name}': `data` must be a list of {count} {spec.datatype} values")
    try:
        raw = np.asarray(data)
    except ValueError:
        raise BadRequest(
            f"input '{spec.name}': `data` is ragged; send {count} {spec.datatype} values"
        ) from None
    allowed = _ALLOWED_KINDS[spec.datatype]
    if raw.dtype.kind not in allowed or raw.size != count:
        what = (
            "values"
            if raw.dtype.kind in allowed
            else f"values of the right type, not {raw.dtype.kind!r}-kind"
        )
        raise BadRequest(
            f"input '{spec.name}': `data` holds {raw.size} {what}; "
            f"shape {shape} needs {count} {spec.datatype} values"
        )
    if spec.datatype in INT_TYPES and raw.size:
        info = np.iinfo(dtype)  # type: ignore[type-var]
        if raw.min() < info.min or raw.max() > info.max:
            raise BadRequest(f"input '{spec.name}': a value is outside the {spec.datatype} range")
    return raw.astype(dtype, copy=False).reshape(shape)


def _bytes_elements(
    spec: TensorSpec, item: dict[str, Any], shape: list[int], binary: memoryview | None
) -> list[bytes]:
    count = math.prod(shape)
    if binary is not None:
        out: list[bytes] = []
        offset = 0
        while offset < len(binary):
            if offset + 4 > len(binary):
                raise BadRequest(f"input '{spec.name}': truncated BYTES length prefix in the binary data")
            (size,) = struct.unpack_from("<I", binary, offset)
            offset += 4
            if offset + size > len(binary):
                raise BadRequest(f"input '{spec.name}': a BYTES element runs past the binary data")
            out.append(bytes(binary[offset : offset + size]))
            offset += size
    else:
        data = item.get("data")
        if not isinstance(data, list):
            raise BadRequest(f"input '{spec.name}': `data` must be a list of {count} strings")
        flat = _flatten(data, len(shape), f"input '{spec.name}'")
        if not all(isinstance(v, str) for v in flat):
            raise BadRequest(f"input '{spec.name}': every element of a BYTES tensor must be a string")
        out = [v.encode("utf-8") for v in flat]
    if len(out) != count:
        raise BadRequest(f"input '{spec.name}': {len(out)} elements, the shape needs {count}")
    return out


def _flatten(data: list[Any], max_depth: int, what: str) -> list[Any]:
    """The elements of nested lists in order, without recursion (client input decides the depth): lists
    nested deeper than `max_depth` (the tensor's rank) are refused with 400."""
    if not any(isinstance(v, list) for v in data):
        return data
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for v in stack[-1]:
            if isinstance(v, list):
                if len(stack) >= max_depth:
                    raise BadRequest(f"{what}: lists nested deeper than the tensor's {max_depth} dimensions")
                stack.append(iter(v))
                break
            flat.append(v)
        else:
            stack.pop()
    return flat


def _text_rows(model: ServedModel, elements: list[bytes]) -> list[Row]:
    for i, element in enumerate(elements):
        try:
            element.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest(f"input '{model.inputs[0].name}': element {i} is not valid UTF-8 text") from None
    return list(elements)


_DEFAULT_OUTPUTS: dict[tuple[str, ...], tuple[OutputRequest, OutputRequest]] = {}


def _all_outputs(model: ServedModel, binary: bool) -> OutputRequest:
    """Every output of the model, as JSON or all binary (one pair per set of output names, made once)."""
    names = tuple(model.output_names)
    pair = _DEFAULT_OUTPUTS.get(names)
    if pair is None:
        pair = _DEFAULT_OUTPUTS[names] = (
            OutputRequest(names=names, binary=frozenset()),
            OutputRequest(names=names, binary=frozenset(names)),
        )
    return pair[binary]


def _outputs(model: ServedModel, doc: dict[str, Any]) -> OutputRequest:
    params = doc.get("parameters")
    all_binary = bool(params and isinstance(params, dict) and params.get("binary_data_output"))
    requested = doc.get("outputs")
    if requested is None:
        return _all_outputs(model, all_binary)
    if not isinstance(requested, list) or not all(isinstance(o, dict) and "name" in o for o in requested):
        raise BadRequest("`outputs` must be a list of objects with a `name`")
    names: list[str] = []
    binary: set[str] = set()
    classes: list[tuple[str, int]] = []
    for out in requested:
        name = out["name"]
        if name not in model.output_names:
            raise BadRequest(f"unknown output '{name}'; the model has {model.output_names}")
        if name in names:  # each copy would be computed into the response again
            raise BadRequest(f"output '{name}' is requested twice; name each output once")
        names.append(name)
        out_params = out.get("parameters") or {}
        if not isinstance(out_params, dict):
            raise BadRequest(f"output '{name}': `parameters` must be an object")
        if all_binary or out_params.get("binary_data"):
            binary.add(name)
        k = out_params.get("classification")
        if k is not None:
            if isinstance(k, bool) or not isinstance(k, int) or k < 1:
                raise BadRequest(f"output '{name}': `classification` must be a whole number >= 1, got {k!r}")
            classes.append((name, k))
    return OutputRequest(names=tuple(names), binary=frozenset(binary), classification=tuple(classes))


def parse_v2(model: ServedModel, body: bytes, header_length: str | None, decoded: Any = None) -> InferRequest:
    """Validates a V2 inference request against the model's signature and splits it into rows."""
    doc, tail = split_binary(body, header_length, decoded)
    return parse_v2_document(model, doc, tail)


def parse_v2_document(model: ServedModel, doc: Any, tail: memoryview) -> InferRequest:
    """parse_v2 for a request already split into its JSON document and binary tail: what the gRPC endpoint
    turns a ModelInferRequest into (inference_service.grpc.messages), so both protocols share every check
    and every message."""
    if not isinstance(doc, dict):
        raise BadRequest("the request body must be a JSON object with an `inputs` list")
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise BadRequest(
            f"`inputs` must be a non-empty list; the model expects {[i.name for i in model.inputs]}"
        )
    by_name: dict[str, dict[str, Any]] = {}
    binary_parts: dict[str, memoryview] = {}
    offset = 0
    for item in inputs:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise BadRequest("every element of `inputs` must be an object with a string `name`")
        name = item["name"]
        if name in by_name:
            raise BadRequest(f"input '{name}' is given twice")
        by_name[name] = item
        params = item.get("parameters")
        size = params.get("binary_data_size") if params and isinstance(params, dict) else None
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(tail):
                raise BadRequest(f"input '{name}': binary_data_size {size!r} does not fit the binary data")
            binary_parts[name] = tail[offset : offset + size]
            offset += size
    if offset != len(tail):
        raise BadRequest(f"{len(tail) - offset} bytes of binary data belong to no input")
    for name in by_name:
        if name not in model.input_names:
            unknown = sorted(set(by_name) - set(model.input_names))
            raise BadRequest(f"unknown input(s) {unknown}; the model expects {model.input_names}")
    arrays: list[Array] = []
    elements: list[bytes] = []
    batch: int | None = None
    for spec in model.inputs:
        item = by_name.get(spec.name)
        if item is None:
            raise BadRequest(f"missing input '{spec.name}' ({spec.datatype} {_shape_text(spec.shape)})")
        if item.get("datatype") != spec.datatype:
            raise BadRequest(
                f"input '{spec.name}': datatype {item.get('datatype')!r} "
                f"does not match the model's {spec.datatype}"
            )
        shape = _check_shape(spec, item.get("shape"))
        if batch is not None and shape[0] != batch:
            raise BadRequest(
                f"input '{spec.name}': batch size {shape[0]} differs from the other inputs' {batch}"
            )
        batch = shape[0]
        part = binary_parts.get(spec.name)
        if spec.datatype == "BYTES":
            elements = _bytes_elements(spec, item, shape, part)
        else:
            array = _numeric(spec, item, shape, part)
            if spec.datatype in FLOAT_TYPES and not model.allow_non_finite and not _all_finite(array):
                raise BadRequest(f"input '{spec.name}': NaN or infinity is not allowed for this model")
            arrays.append(array)
    assert batch is not None
    if model.text:
        rows = _text_rows(model, elements)
    else:
        rows = (
            [(arrays[0][i],) for i in range(batch)] if len(arrays) == 1 else list(zip(*arrays, strict=True))
        )
    request_id = doc.get("id")
    return InferRequest(
        id=str(request_id) if request_id is not None else None, rows=rows, outputs=_outputs(model, doc)
    )


#: The fewest bytes one JSON element takes in a response (a digit and a comma): what the bound assumes.
_MIN_JSON_ELEMENT = 2


def check_response_size(model: ServedModel, rows: int, outputs: OutputRequest | None, limit: int) -> None:
    """Refuses (413), before any inference, a request whose response is bound to exceed `limit` bytes: the
    fewest bytes its outputs can take (per row, the elements of each requested output's fixed dimensions,
    binary at their item size and JSON at 2 bytes each). `outputs` None: every output as JSON (V1)."""
    if outputs is None:
        outputs = _all_outputs(model, False)
    least = 0
    for name in outputs.names:
        index = model.output_index[name]
        elements = 1
        for d in model.outputs[index].shape[1:]:
            elements *= max(d, 1)  # an open dimension: at least 1
        binary = name in outputs.binary
        least += rows * elements * (model.output_dtypes[index].itemsize if binary else _MIN_JSON_ELEMENT)
    if least > limit:
        raise PayloadTooLarge(
            f"the response would take at least {least} bytes ({rows} rows of {list(outputs.names)}), over "
            f"the limit of {limit}; send fewer rows or ask for fewer outputs"
        )


def encode_v2(
    model: ServedModel, request: InferRequest, results: Sequence[RowResult]
) -> tuple[bytes, dict[str, str]]:
    """The V2 response body and extra headers (binary outputs go after the JSON header)."""
    datatypes = model.output_datatypes
    outputs: list[dict[str, Any]] = []
    if len(results) == 1 and not request.outputs.binary and not request.outputs.classification:
        # The common one-row JSON response: each value as the row holds it, without stacking a batch of one.
        row = results[0]
        for name in request.outputs.names:
            index = model.output_index[name]
            value = row[index]
            dtype = model.output_dtypes[index]
            if value.dtype != dtype:
                value = np.asarray(value, dtype=dtype)
            outputs.append(
                {
                    "name": name,
                    "datatype": datatypes[name],
                    "shape": [1, *value.shape],
                    "data": value.reshape(-1),
                }
            )
        return _v2_document(model, request, outputs), {}
    tails: list[bytes] = []
    for name, datatype, array in output_tensors(model, request.outputs, results):
        entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if name in request.outputs.binary:
            blob = raw_bytes(datatype, array)
            entry["parameters"] = {"binary_data_size": len(blob)}
            tails.append(blob)
        elif datatype == "BYTES":
            entry["data"] = [b.decode("utf-8") for b in array.ravel().tolist()]
        else:
            entry["data"] = array.ravel()
        outputs.append(entry)
    head = _v2_document(model, request, outputs)
    if not tails:
        return head, {}
    return head + b"".join(tails), {"Inference-Header-Content-Length": str(len(head))}


def output_tensors(
    model: ServedModel, outputs: OutputRequest, results: Sequence[RowResult]
) -> list[tuple[str, str, Array]]:
    """(name, datatype, batch array) of each requested output, in the requested order; a `classification`
    output as its BYTES top-k."""
    by_name = dict(zip(model.output_names, model.stack(results), strict=True))
    top = dict(outputs.classification)
    tensors: list[tuple[str, str, Array]] = []
    for name in outputs.names:
        array, datatype = by_name[name], model.output_datatypes[name]
        if name in top:
            array, datatype = classify(model, array, top[name]), "BYTES"
        tensors.append((name, datatype, array))
    return tensors


def raw_bytes(datatype: str, array: Array) -> bytes:
    """A tensor in the binary form (the binary data extension's and gRPC's raw contents): little-endian
    elements in row-major order; BYTES elements each a 4-byte little-endian length and the bytes."""
    if datatype == "BYTES":
        return b"".join(len(b).to_bytes(4, "little") + b for b in array.ravel().tolist())
    return np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False).tobytes()


def classify(model: ServedModel, array: Array, k: int) -> Array:
    """Each row's k largest values, largest first, as b"value:index[:label]" (Triton's classification
    extension; the index is the position in the row, the label the model's class name for it)."""
    rows = array.reshape(array.shape[0], -1) if array.ndim > 1 else array.reshape(-1, 1)
    k = min(k, rows.shape[1])
    order = np.argsort(-rows, axis=1, kind="stable")[:, :k]
    labels = model.class_labels
    out = np.empty((rows.shape[0], k), dtype=object)
    for r, row in enumerate(order):
        for j, index in enumerate(row.tolist()):
            value = rows[r, index].item()
            name = f":{labels[index]}" if index < len(labels) else ""
            out[r, j] = f"{value}:{index}{name}".encode()
    return out


def _v2_document(model: ServedModel, request: InferRequest, outputs: list[dict[str, Any]]) -> bytes:
    doc: dict[str, Any] = {"model_name": model.name, "model_version": model.version, "outputs": outputs}
    if request.id is not None:
        doc["id"] = request.id
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)


def parse_v1(model: ServedModel, body: bytes, decoded: Any = None) -> list[Row]:
    """A KServe V1 body `{"instances": [...]}`: one instance per row (a string for text models).
    `decoded`: the document decoded already (numeric instances as an array: inference_service.decoding)."""
    doc = decoded if decoded is not None else _loads(body)
    instances = doc.get("instances") if isinstance(doc, dict) else None
    if isinstance(instances, np.ndarray) and instances.ndim >= 1 and instances.size and not model.text:
        pass
    elif not isinstance(instances, list) or not instances:
        raise BadRequest('the body must be {"instances": [...]} with at least one instance')
    spec = model.inputs[0]
    if model.text:
        if not all(isinstance(i, str) for i in instances):
            raise BadRequest(f"every instance must be a string for {model.name}")
        return [i.encode("utf-8") for i in instances]
    if len(model.inputs) != 1:
        raise BadRequest(f"{model.name} has {len(model.inputs)} inputs; use the V2 infer endpoint")
    try:
        per_instance = list(np.asarray(instances).shape[1:])
    except ValueError:
        raise BadRequest("instances differ in length; every instance must have the same shape") from None
    expected = spec.shape[1:]
    if len(per_instance) != len(expected) or any(
        w >= 0 and g != w for g, w in zip(per_instance, expected, strict=True)
    ):
        raise BadRequest(
            f"each instance has shape {per_instance}; the model expects {_shape_text(expected)} per instance "
            f"(input '{spec.name}', {spec.datatype} {_shape_text(spec.shape)})"
        )
    shape = [len(instances), *per_instance]
    flat = instances if isinstance(instances, np.ndarray) else _flatten(instances, len(shape), "instances")
    item = {"data": flat}
    array = _numeric(spec, item, _check_shape(spec, shape), None)
    if spec.datatype in FLOAT_TYPES and not model.allow_non_finite and not _all_finite(array):
        raise BadRequest(f"input '{spec.name}': NaN or infinity is not allowed for this model")
    return [(array[i],) for i in range(shape[0])]


def encode_v1(model: ServedModel, results: Sequence[RowResult]) -> bytes:
    """`{"predictions": [...]}`: the value per row for one output, else an object of outputs per row. A
    class-index output of a model that names its classes holds the class name, as KServe's V1 classifiers
    answer with the estimator's classes (`{"label": "setosa"}`, not 0)."""
    if len(model.output_names) == 1:
        predictions: list[Any] = [np.asarray(r[0]).tolist() for r in results]
    else:
        predictions = [
            {name: np.asarray(value).tolist() for name, value in zip(model.output_names, r, strict=True)}
            for r in results
        ]
    if model.class_output is not None:  # the class index -> its name (a model without labels skips this)
        labels, single = model.class_labels, len(model.output_names) == 1
        for i, row in enumerate(predictions):
            index = row if single else row[model.class_output]
            name = labels[index] if isinstance(index, int) and 0 <= index < len(labels) else index
            if single:
                predictions[i] = name
            else:
                row[model.class_output] = name
    return orjson.dumps({"predictions": predictions}, option=orjson.OPT_SERIALIZE_NUMPY)
