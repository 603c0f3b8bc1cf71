"""ModelInferRequest -> the V2 request document and binary tail that protocol.parse_v2_document validates
(so gRPC and REST share every check and message), and the rows' results -> ModelInferResponse.

Typed `contents` become the document's `data` (as arrays of the contents field's own type: the range and
kind checks are parse_v2's); `raw_input_contents` and BYTES contents become the binary tail, as the binary
data extension carries them. The response is raw (`raw_output_contents`, one entry per output) when the
request was (raw inputs, or `binary_data_output` / an output's `binary_data`), as KServe and Triton answer;
else typed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from inference_service.errors import BadRequest
from inference_service.grpc import inference_pb2 as pb
from inference_service.protocol import InferRequest, output_tensors, raw_bytes
from inference_service.sessions import RowResult, ServedModel

#: datatype -> the InferTensorContents field holding its elements, and that field's element type
CONTENTS: dict[str, tuple[str, type[np.generic]]] = {
    "BOOL": ("bool_contents", np.bool_),
    "INT8": ("int_contents", np.int32),
    "INT16": ("int_contents", np.int32),
    "INT32": ("int_contents", np.int32),
    "INT64": ("int64_contents", np.int64),
    "UINT8": ("uint_contents", np.uint32),
    "UINT16": ("uint_contents", np.uint32),
    "UINT32": ("uint_contents", np.uint32),
    "UINT64": ("uint64_contents", np.uint64),
    "FP32": ("fp32_contents", np.float32),
    "FP64": ("fp64_contents", np.float64),
    "BYTES": ("bytes_contents", np.object_),
}
_FIELDS = sorted({field for field, _ in CONTENTS.values()})


def parameters(params: Mapping[str, pb.InferParameter]) -> dict[str, Any]:
    """A protobuf parameter map as the JSON document's `parameters` object."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        which = value.WhichOneof("parameter_choice")
        out[key] = getattr(value, which) if which is not None else None
    return out


def _filled(contents: pb.InferTensorContents) -> list[str]:
    return [field for field in _FIELDS if len(getattr(contents, field))]


def document(request: pb.ModelInferRequest) -> tuple[dict[str, Any], bytes]:
    """The request as a V2 JSON document and its binary tail (raw inputs and BYTES contents, in order)."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise BadRequest(
            f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs; send one per input"
        )
    tail: list[bytes] = []
    inputs: list[dict[str, Any]] = []
    for i, tensor in enumerate(request.inputs):
        item: dict[str, Any] = {"name": tensor.name, "datatype": tensor.datatype, "shape": list(tensor.shape)}
        params = parameters(tensor.parameters)
        filled = _filled(tensor.contents)
        if raw:
            if filled:
                raise BadRequest(
                    f"input '{tensor.name}': values both in `contents` and in raw_input_contents; send one"
                )
            params["binary_data_size"] = len(raw[i])
            tail.append(raw[i])
        elif tensor.datatype in CONTENTS:
            field, element = CONTENTS[tensor.datatype]
            values = getattr(tensor.contents, field)
            if not len(values) and filled:
                raise BadRequest(
                    f"input '{tensor.name}': datatype {tensor.datatype} takes its values in `{field}`; "
                    f"the request filled {filled}"
                )
            if tensor.datatype == "BYTES":
                blob = b"".join(len(b).to_bytes(4, "little") + b for b in values)
                params["binary_data_size"] = len(blob)
                tail.append(blob)
            else:
                item["data"] = np.array(values, dtype=element)
        elif tensor.datatype in ("FP16", "BF16"):
            raise BadRequest(
                f"input '{tensor.name}': {tensor.datatype} has no typed contents field; "
                "send it in raw_input_contents"
            )
        if params:
            item["parameters"] = params
        inputs.append(item)
    doc: dict[str, Any] = {"inputs": inputs}
    if request.id:
        doc["id"] = request.id
    params = parameters(request.parameters)
    if raw and "binary_data_output" not in params:
        params["binary_data_output"] = True  # answered in the form it was asked
    doc["parameters"] = params
    if request.outputs:
        doc["outputs"] = [
            {"name": out.name, "parameters": parameters(out.parameters)} for out in request.outputs
        ]
    return doc, b"".join(tail)


def rows_asked(request: pb.ModelInferRequest) -> int:
    """The batch dimension of the first input (what the quota counts; 0 when absent or invalid)."""
    if request.inputs and request.inputs[0].shape and request.inputs[0].shape[0] > 0:
        return int(request.inputs[0].shape[0])
    return 0


def response(model: ServedModel, parsed: InferRequest, results: Sequence[RowResult]) -> pb.ModelInferResponse:
    """The ModelInferResponse: raw when any output was asked in binary or has no typed field, else typed."""
    reply = pb.ModelInferResponse(model_name=model.name, model_version=model.version, id=parsed.id or "")
    tensors = output_tensors(model, parsed.outputs, results)
    raw = bool(parsed.outputs.binary) or any(datatype not in CONTENTS for _, datatype, _ in tensors)
    for name, datatype, array in tensors:
        out = reply.outputs.add(name=name, datatype=datatype, shape=array.shape)
        if raw:
            reply.raw_output_contents.append(raw_bytes(datatype, array))
        else:
            getattr(out.contents, CONTENTS[datatype][0]).extend(array.ravel().tolist())
    return reply
