"""A fused ONNX graph of a package's Llama model, built from ONNX Runtime's contrib ops (issue 11).

`model.onnx` (export.py) is a TorchScript trace: about 455 nodes after ONNX Runtime's own
optimisation, most of them shape glue around 38 MatMuls, a Concat of past + new into `present`
every step, and logits for every position. This module writes the same model as about 75 nodes:

    Gather (embedding)
    positions: each new token's position, from seqlens_k and total_sequence_length (a few nodes)
    per layer: [Skip]SimplifiedLayerNormalization -> MatMul (packed Q|K|V) -> Split
               -> RotaryEmbedding (Q), RotaryEmbedding (K) -> GroupQueryAttention (KV cache inside)
               -> MatMul (o_proj)
               -> SkipSimplifiedLayerNormalization -> MatMul (packed gate|up) -> Split
               -> Sigmoid, Mul, Mul (SiLU gate) -> MatMul (down_proj)
    the last layer's o_proj and MLP, the final norm and the lm_head run on each row's last
    position only (GatherND after the last attention), so logits are [batch, vocab].

The weights are read from the package's `model.onnx` initializers (`weights_from_onnx`): a package
is all the service and `evaluate` ever have (no PyTorch checkpoint travels with it), so the fused
graph can be derived from any exported package, the embedded one included, without retraining or
the run folder. `weights_from_torch` takes a trained `LlamaForCausalLM` instead (for `export`).

I/O contract (B rows, S new tokens per row, L layers, KV heads 2, head dim 64, V vocab):

  inputs
    input_ids                  int64   [B, S]   new tokens, RIGHT-padded (any pad id) to S
    seqlens_k                  int32   [B]      per row: total length after this pass - 1
                                                (= past_b + new_b - 1)
    total_sequence_length      int32   []       scalar: max over rows of past_b + new_b
    past_key_values.{i}.key    float32 [B, 2, P, 64]   row b's cache in slots 0 .. past_b - 1;
    past_key_values.{i}.value  float32 [B, 2, P, 64]   P is the buffer's capacity (may be 0)
  outputs
    logits                     float32 [B, V]   at each row's last real position
    present.{i}.key|value      float32 [B, 2, max(P, total_sequence_length), 64]
    new.{i}.key|value          float32 [B, S, 2 * 64]  this pass's keys (rotated) and values, the
                                                        row's real tokens first (padding after them)

  No attention_mask and no position_ids: GroupQueryAttention takes each row's length from
  seqlens_k and masks causally and beyond the row's length; rotary is applied at positions
  past_b .. past_b + new_b - 1 (so a row's first token always has position 0), by RotaryEmbedding
  before the op rather than inside it (do_rotary=1 computes the same numbers) so that the rotated
  keys can be outputs.

  Prefill (several prompts of different lengths, no past): S = the longest prompt, shorter ones
  right-padded; seqlens_k[b] = len_b - 1; total_sequence_length = S (it must equal S: that is how
  the op recognises a first prompt). The past may be a zero-length tensor [B, 2, 0, 64] or the
  capacity buffer (its content is ignored; slots 0 .. S - 1 are written, padded slots with
  garbage that later steps overwrite before they read them).

  Decode step (one token per row, rows of different past lengths): S = 1; seqlens_k[b] = past_b;
  total_sequence_length = max(past_b) + 1. The op writes row b's new key and value at slot past_b.
  A prefill with S > 1 after a past (chunked prompts) is refused by the op for B > 1.

  Shared buffer (no cache copies at all): give the same memory as past_key_values.{i}.* and as
  present.{i}.* (Python: IOBinding with one OrtValue bound as input and output; onnxruntime-node:
  the same Tensor in feeds and in run()'s fetches), with capacity P >= total_sequence_length. The
  op sees past == present and only writes the new positions. Without sharing it copies each row's
  past into a fresh present of length max(P, total) (zero-filled beyond the row's length): the
  present can then be fed back as the next past (it grows by one slot per step when full).
  Own cache instead (what the service does, since onnxruntime-node copies every fetched output and
  `present` is the whole cache): feed the cache as the past, fetch only logits and `new.*`, and
  copy each row's new_b new keys and values into slots past_b .. past_b + new_b - 1 of the cache.
  Positions are limited by the rotary caches (`max_position_embeddings`, 512 for the packages).
"""

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MS = "com.microsoft"
OPSET = 17
KEY_VALUE = ("key", "value")


@dataclass(frozen=True)
class LlamaShape:
    num_layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    rms_eps: float
    rope_theta: float
    max_positions: int

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> "LlamaShape":
        """From a Hugging Face Llama config.json (a package's own)."""
        rope = cfg.get("rope_parameters") or {}
        if rope.get("rope_type", "default") != "default" or cfg.get("rope_scaling"):
            raise ValueError("fused graph: only unscaled rotary embeddings are supported")
        heads = int(cfg["num_attention_heads"])
        return cls(
            num_layers=int(cfg["num_hidden_layers"]),
            hidden=int(cfg["hidden_size"]),
            heads=heads,
            kv_heads=int(cfg.get("num_key_value_heads", heads)),
            head_dim=int(cfg.get("head_dim") or cfg["hidden_size"] // heads),
            intermediate=int(cfg["intermediate_size"]),
            vocab=int(cfg["vocab_size"]),
            rms_eps=float(cfg["rms_norm_eps"]),
            rope_theta=float(rope.get("rope_theta", cfg.get("rope_theta", 10000.0))),
            max_positions=int(cfg["max_position_embeddings"]),
        )


@dataclass
class LayerWeights:
    """One decoder layer; projection matrices in MatMul orientation, [in, out]."""

    input_norm: np.ndarray
    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    o: np.ndarray
    post_norm: np.ndarray
    gate: np.ndarray
    up: np.ndarray
    down: np.ndarray


@dataclass
class LlamaWeights:
    embed: np.ndarray  # [vocab, hidden]
    layers: list[LayerWeights]
    final_norm: np.ndarray
    lm_head: np.ndarray  # [hidden, vocab]


# Node names of the TorchScript export (export.py): module scopes of LlamaForCausalLM.
_PROJ = re.compile(r"^/model/model/layers\.(\d+)/(?:self_attn|mlp)/(\w)\w*_proj/MatMul$")
_PROJ_FIELD = {"q": "q", "k": "k", "v": "v", "o": "o", "g": "gate", "u": "up", "d": "down"}


def weights_from_onnx(path: Path, num_layers: int) -> LlamaWeights:
    """The weights of a package's `model.onnx` (export.py's trace), found by the MatMul nodes'
    module-scope names and the norms' parameter names."""
    model = onnx.load(str(path))
    init = {t.name: t for t in model.graph.initializer}

    def array(name: str) -> np.ndarray:
        if name not in init:
            raise ValueError(f"{path}: no initializer {name!r}; not a model.onnx written by export")
        return numpy_helper.to_array(init[name]).astype(np.float32)

    proj: dict[tuple[int, str], np.ndarray] = {}
    lm_head = None
    for node in model.graph.node:
        if node.op_type != "MatMul":
            continue
        if node.name == "/model/lm_head/MatMul":
            lm_head = array(node.input[1])
        elif m := _PROJ.match(node.name):
            proj[int(m.group(1)), _PROJ_FIELD[m.group(2)]] = array(node.input[1])
    embed = array("model.model.embed_tokens.weight")
    layers = []
    for i in range(num_layers):
        missing = [f for f in _PROJ_FIELD.values() if (i, f) not in proj]
        if missing:
            raise ValueError(f"{path}: layer {i} has no MatMul for {', '.join(missing)}")
        layers.append(
            LayerWeights(
                input_norm=array(f"model.model.layers.{i}.input_layernorm.weight"),
                post_norm=array(f"model.model.layers.{i}.post_attention_layernorm.weight"),
                **{f: proj[i, f] for f in _PROJ_FIELD.values()},
            )
        )
    return LlamaWeights(
        embed=embed,
        layers=layers,
        final_norm=array("model.model.norm.weight"),
        lm_head=lm_head if lm_head is not None else np.ascontiguousarray(embed.T),
    )


def weights_from_torch(model: Any) -> LlamaWeights:
    """The weights of a transformers `LlamaForCausalLM` (torch.nn.Linear stores [out, in])."""

    def t(p: Any) -> np.ndarray:
        return np.ascontiguousarray(p.detach().float().cpu().numpy().T)

    def v(p: Any) -> np.ndarray:
        return p.detach().float().cpu().numpy().copy()

    layers = []
    for layer in model.model.layers:
        a, m = layer.self_attn, layer.mlp
        layers.append(
            LayerWeights(
                input_norm=v(layer.input_layernorm.weight),
                q=t(a.q_proj.weight),
                k=t(a.k_proj.weight),
                v=t(a.v_proj.weight),
                o=t(a.o_proj.weight),
                post_norm=v(layer.post_attention_layernorm.weight),
                gate=t(m.gate_proj.weight),
                up=t(m.up_proj.weight),
                down=t(m.down_proj.weight),
            )
        )
    return LlamaWeights(
        embed=v(model.model.embed_tokens.weight),
        layers=layers,
        final_norm=v(model.model.norm.weight),
        lm_head=t(model.lm_head.weight),
    )


def rotary_caches(shape: LlamaShape) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin, [max_positions, head_dim / 2], as transformers' default Llama rotary computes
    its angles (float32 inverse frequencies times float32 positions); the halves are not
    interleaved (rotate_half), GroupQueryAttention's rotary_interleaved = 0."""
    d = shape.head_dim
    inv_freq = (
        1.0 / (shape.rope_theta ** (np.arange(0, d, 2, dtype=np.int64).astype(np.float32) / d))
    ).astype(np.float32)
    angles = np.arange(shape.max_positions, dtype=np.float32)[:, None] * inv_freq[None, :]
    return np.cos(angles.astype(np.float64)).astype(np.float32), np.sin(angles.astype(np.float64)).astype(
        np.float32
    )


class _Builder:
    """Nodes and initializers of the graph being written, with unique names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(
        self, op: str, inputs: list[str], outputs: list[str], domain: str = "", **attrs: Any
    ) -> list[str]:
        self.nodes.append(
            helper.make_node(op, inputs, outputs, name=f"{op}_{len(self.nodes)}", domain=domain, **attrs)
        )
        return outputs


def _last_index(b: _Builder) -> str:
    """[B, 1] int64: each row's last real position among the S new tokens, min(seqlens_k, S - 1):
    the row's length - 1 in a prefill (seqlens_k = len - 1 <= S - 1), 0 in a decode step."""
    one = b.const("one_i64", np.array([1], dtype=np.int64))
    (s,) = b.node("Shape", ["input_ids"], ["seq_len"], start=1, end=2)
    (s1,) = b.node("Sub", [s, one], ["seq_len_m1"])
    (k,) = b.node("Cast", ["seqlens_k"], ["seqlens_k_i64"], to=TensorProto.INT64)
    (last,) = b.node("Min", [k, s1], ["last_pos"])
    (idx,) = b.node("Unsqueeze", [last, b.const("axis_1", np.array([1], dtype=np.int64))], ["last_idx"])
    return idx


def _positions(b: _Builder) -> str:
    """[B, S] int64: the position of each new token, past_b + s. A first prompt (total_sequence_length
    == S, right-padded) starts every row at 0; otherwise row b's past is seqlens_k[b] + 1 - S."""
    (s,) = b.node("Shape", ["input_ids"], ["pos.seq_len"], start=1, end=2)
    (s32,) = b.node("Cast", [s], ["pos.seq_len_i32"], to=TensorProto.INT32)
    (first,) = b.node("Equal", ["total_sequence_length", s32], ["pos.first_prompt"])
    (k1,) = b.node("Add", ["seqlens_k", b.const("one_i32", np.array([1], dtype=np.int32))], ["pos.k1"])
    (past,) = b.node("Sub", [k1, s32], ["pos.past_if_cached"])
    zero = b.const("zero_i32", np.array([0], dtype=np.int32))
    (base,) = b.node("Where", [first, zero, past], ["pos.past"])
    (base64,) = b.node("Cast", [base], ["pos.past_i64"], to=TensorProto.INT64)
    (col,) = b.node(
        "Unsqueeze", [base64, b.const("axis_1b", np.array([1], dtype=np.int64))], ["pos.past_col"]
    )
    scalar = b.node("Squeeze", [s], ["pos.seq_len_scalar"])[0]
    zero64 = b.const("zero_i64", np.array(0, dtype=np.int64))
    one64 = b.const("one_i64_scalar", np.array(1, dtype=np.int64))
    (steps,) = b.node("Range", [zero64, scalar, one64], ["pos.steps"])
    (pos,) = b.node("Add", [col, steps], ["position_ids"])
    return pos


def _attention(b: _Builder, i: int, h: str, w: LayerWeights, shape: LlamaShape, pos: str) -> str:
    """Q|K|V projection, rotary on Q and K, and GroupQueryAttention of layer i; the rotated keys
    and the values of the new tokens are graph outputs (`new.{i}.*`), so a caller can keep its own
    cache without fetching the whole `present`. Returns the attention output."""
    wqkv = b.const(f"l{i}.qkv", np.concatenate([w.q, w.k, w.v], axis=1))
    (qkv,) = b.node("MatMul", [h, wqkv], [f"l{i}.qkv_out"])
    hd, kvd = shape.heads * shape.head_dim, shape.kv_heads * shape.head_dim
    sizes = b.const(f"l{i}.qkv_split", np.array([hd, kvd, kvd], dtype=np.int64))
    q, k, v = b.node("Split", [qkv, sizes], [f"l{i}.q", f"l{i}.k", f"new.{i}.value"], axis=-1)

    def rotary(x: str, out: str, heads: int) -> str:
        args = {"interleaved": 0, "num_heads": heads}
        return b.node("RotaryEmbedding", [x, pos, "cos_cache", "sin_cache"], [out], domain=MS, **args)[0]

    q = rotary(q, f"l{i}.q_rot", shape.heads)
    k = rotary(k, f"new.{i}.key", shape.kv_heads)
    past = [f"past_key_values.{i}.{t}" for t in KEY_VALUE]
    present = [f"present.{i}.{t}" for t in KEY_VALUE]
    (attn, *_) = b.node(
        "GroupQueryAttention",
        [q, k, v, *past, "seqlens_k", "total_sequence_length"],
        [f"l{i}.attn", *present],
        domain=MS,
        num_heads=shape.heads,
        kv_num_heads=shape.kv_heads,
        do_rotary=0,
    )
    return attn


def _mlp(b: _Builder, i: int, h: str, w: LayerWeights, shape: LlamaShape) -> str:
    """down(silu(gate(h)) * up(h)) with gate and up as one MatMul."""
    wgu = b.const(f"l{i}.gate_up", np.concatenate([w.gate, w.up], axis=1))
    (gu,) = b.node("MatMul", [h, wgu], [f"l{i}.gate_up_out"])
    split = b.const(f"l{i}.split", np.array([shape.intermediate, shape.intermediate], dtype=np.int64))
    gate, up = b.node("Split", [gu, split], [f"l{i}.gate", f"l{i}.up"], axis=-1)
    (sig,) = b.node("Sigmoid", [gate], [f"l{i}.sigmoid"])
    (silu,) = b.node("Mul", [gate, sig], [f"l{i}.silu"])
    (act,) = b.node("Mul", [silu, up], [f"l{i}.act"])
    (down,) = b.node("MatMul", [act, b.const(f"l{i}.down", w.down)], [f"l{i}.down_out"])
    return down


def _skip_norm(b: _Builder, x: str, skip: str, gamma: str, out: str, eps: float) -> tuple[str, str]:
    """(rmsnorm(x + skip) * gamma, x + skip)."""
    normed, _, _, total = b.node(
        "SkipSimplifiedLayerNormalization",
        [x, skip, gamma],
        [out, "", "", f"{out}.sum"],
        domain=MS,
        epsilon=eps,
    )
    return normed, total


def build_fused_graph(shape: LlamaShape, weights: LlamaWeights) -> onnx.ModelProto:
    """The fused model (I/O contract in the module docstring)."""
    if shape.heads % shape.kv_heads or shape.head_dim % 16:
        raise ValueError("GroupQueryAttention needs heads % kv_heads == 0 and head_dim % 16 == 0")
    b = _Builder()
    cos, sin = rotary_caches(shape)
    b.const("cos_cache", cos)
    b.const("sin_cache", sin)
    (x,) = b.node("Gather", [b.const("embed", weights.embed), "input_ids"], ["embedded"])
    last = _last_index(b)
    pos = _positions(b)
    eps = shape.rms_eps
    (h,) = b.node(
        "SimplifiedLayerNormalization",
        [x, b.const("l0.input_norm", weights.layers[0].input_norm)],
        ["l0.normed"],
        axis=-1,
        epsilon=eps,
        stash_type=1,
    )
    resid = x
    n = len(weights.layers)
    for i, w in enumerate(weights.layers):
        attn = _attention(b, i, h, w, shape, pos)
        if i == n - 1:  # from here on only each row's last position matters
            (attn,) = b.node("GatherND", [attn, last], ["last.attn"], batch_dims=1)
            (resid,) = b.node("GatherND", [resid, last], ["last.resid"], batch_dims=1)
        (o,) = b.node("MatMul", [attn, b.const(f"l{i}.o", w.o)], [f"l{i}.o_out"])
        h2, resid = _skip_norm(b, o, resid, b.const(f"l{i}.post_norm", w.post_norm), f"l{i}.post_normed", eps)
        down = _mlp(b, i, h2, w, shape)
        if i < n - 1:
            gamma = b.const(f"l{i + 1}.input_norm", weights.layers[i + 1].input_norm)
            h, resid = _skip_norm(b, down, resid, gamma, f"l{i + 1}.normed", eps)
        else:
            h, _ = _skip_norm(b, down, resid, b.const("final_norm", weights.final_norm), "final_normed", eps)
    b.node("MatMul", [h, b.const("lm_head", weights.lm_head)], ["logits"])
    return _model(b, shape)


def _model(b: _Builder, shape: LlamaShape) -> onnx.ModelProto:
    f, kv, d = TensorProto.FLOAT, shape.kv_heads, shape.head_dim
    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
        helper.make_tensor_value_info("seqlens_k", TensorProto.INT32, ["batch"]),
        helper.make_tensor_value_info("total_sequence_length", TensorProto.INT32, []),
    ]
    outputs = [helper.make_tensor_value_info("logits", f, ["batch", shape.vocab])]
    for i in range(shape.num_layers):
        for t in KEY_VALUE:
            inputs.append(
                helper.make_tensor_value_info(f"past_key_values.{i}.{t}", f, ["batch", kv, "past", d])
            )
            outputs.append(helper.make_tensor_value_info(f"present.{i}.{t}", f, ["batch", kv, "present", d]))
    for i in range(shape.num_layers):
        for t in KEY_VALUE:
            outputs.append(helper.make_tensor_value_info(f"new.{i}.{t}", f, ["batch", "seq", kv * d]))
    graph = helper.make_graph(b.nodes, "because-fused", inputs, outputs, initializer=b.inits)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(MS, 1)],
        producer_name="because_train.fused_graph",
    )
    model.ir_version = 8
    return model


def write_fused_graph(package: Path, out: Path) -> Path:
    """Writes the fused graph of the package folder `package` (its config.json and model.onnx)
    to `out`; returns `out`. The package is only read."""
    shape = LlamaShape.from_config(json.loads((package / "config.json").read_text()))
    weights = weights_from_onnx(package / "model.onnx", shape.num_layers)
    onnx.save(build_fused_graph(shape, weights), str(out))
    return out


# --- Feeding the graph (what an engine does; used by the tests and bench/fused_graph_probe.py) ---


def prefill_feeds(prompts: list[list[int]], pad: int = 0) -> dict[str, np.ndarray]:
    """input_ids (right-padded), seqlens_k and total_sequence_length of a prefill pass."""
    width = max(len(p) for p in prompts)
    ids = np.full((len(prompts), width), pad, dtype=np.int64)
    for r, p in enumerate(prompts):
        ids[r, : len(p)] = p
    return {
        "input_ids": ids,
        "seqlens_k": np.array([len(p) - 1 for p in prompts], dtype=np.int32),
        "total_sequence_length": np.array(width, dtype=np.int32),
    }


def decode_feeds(
    tokens: list[int] | np.ndarray, past_lengths: list[int] | np.ndarray
) -> dict[str, np.ndarray]:
    """input_ids [B, 1], seqlens_k and total_sequence_length of a decode step: row b has
    `past_lengths[b]` cached tokens and appends `tokens[b]`."""
    lengths = np.asarray(past_lengths, dtype=np.int32)
    return {
        "input_ids": np.asarray(tokens, dtype=np.int64).reshape(-1, 1),
        "seqlens_k": lengths.copy(),
        "total_sequence_length": np.array(int(lengths.max()) + 1, dtype=np.int32),
    }


class FusedRunner:
    """Drives the fused graph over one batch the way an engine would: per layer a key and a value
    buffer [rows, kv_heads, capacity, head_dim], row b's tokens in slots 0 .. lengths[b] - 1.
    `shared`: the buffers are bound (IOBinding) as both past and present, so ONNX Runtime writes
    the new positions in place and nothing is copied; otherwise they go through session.run and
    the returned presents become the buffers (ONNX Runtime copies the cache every pass).
    `own_cache` (the service's way, src/model/gqa-forward.ts): the buffers are only the past, and
    the `new.*` outputs are copied into each row's new slots here."""

    def __init__(
        self, session: Any, shape: LlamaShape, capacity: int, shared: bool = True, own_cache: bool = False
    ) -> None:
        self.session, self.shape, self.capacity, self.shared = session, shape, capacity, shared
        self.own_cache = own_cache
        self.names = [f"present.{i}.{t}" for i in range(shape.num_layers) for t in KEY_VALUE]
        self.cache: list[np.ndarray] = []
        self.lengths = np.zeros(0, dtype=np.int32)

    def prefill(self, prompts: list[list[int]], pad: int = 0) -> np.ndarray:
        """Starts the batch with `prompts` (each row's prompt), returns logits [B, V]."""
        if max(len(p) for p in prompts) > self.capacity:
            raise ValueError(f"a prompt is longer than the capacity {self.capacity}")
        s = self.shape
        self.cache = [
            np.zeros((len(prompts), s.kv_heads, self.capacity, s.head_dim), dtype=np.float32)
            for _ in self.names
        ]
        logits = self._run(prefill_feeds(prompts, pad))
        self.lengths = np.array([len(p) for p in prompts], dtype=np.int32)
        return logits

    def step(self, tokens: list[int] | np.ndarray) -> np.ndarray:
        """Appends one token to every row; returns logits [B, V]."""
        if int(self.lengths.max()) >= self.capacity:
            raise ValueError(f"a row is full (capacity {self.capacity})")
        logits = self._run(decode_feeds(tokens, self.lengths))
        self.lengths = self.lengths + 1
        return logits

    def _run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        past = {
            n.replace("present.", "past_key_values."): c for n, c in zip(self.names, self.cache, strict=True)
        }
        if self.own_cache:
            first_prompt = int(feeds["total_sequence_length"]) == feeds["input_ids"].shape[1]
            if first_prompt:
                past = {n: c[:, :, :0] for n, c in past.items()}
            new = [n.replace("present.", "new.") for n in self.names]
            logits, *fresh = self.session.run(["logits", *new], {**feeds, **past})
            self._write_new(fresh, feeds["seqlens_k"], feeds["input_ids"].shape[1], first_prompt)
            return logits
        if not self.shared:
            logits, *present = self.session.run(["logits", *self.names], {**feeds, **past})
            self.cache = list(present)
            return logits
        import onnxruntime as ort

        binding = self.session.io_binding()
        for name, value in feeds.items():
            binding.bind_cpu_input(name, value)
        for (pname, buf), name in zip(past.items(), self.names, strict=True):
            ov = ort.OrtValue.ortvalue_from_numpy(buf)  # wraps the numpy memory, no copy
            binding.bind_ortvalue_input(pname, ov)
            binding.bind_ortvalue_output(name, ov)
        logits = np.empty((len(feeds["seqlens_k"]), self.shape.vocab), dtype=np.float32)
        binding.bind_ortvalue_output("logits", ort.OrtValue.ortvalue_from_numpy(logits))
        self.session.run_with_iobinding(binding)
        return logits

    def _write_new(
        self, fresh: list[np.ndarray], seqlens_k: np.ndarray, seq: int, first_prompt: bool
    ) -> None:
        kv, d = self.shape.kv_heads, self.shape.head_dim
        for buf, new in zip(self.cache, fresh, strict=True):
            heads = new.reshape(new.shape[0], seq, kv, d).transpose(0, 2, 1, 3)  # [B, kv, S, D]
            for b, k in enumerate(seqlens_k):
                end = int(k) + 1
                start, count = (0, end) if first_prompt else (end - seq, seq)
                buf[b, :, start : start + count] = heads[b, :, :count]


def fused_forward(session: Any, shape: LlamaShape, capacity: int, shared: bool = True) -> Any:
    """A `decode.Forward` over the fused graph, for `decode.decode_batch` (which left-pads prompts
    and passes attention masks): the prompt rows are re-packed right-padded, the mask is ignored
    after the prefill (every row gains one token per step), and the state is a `FusedRunner`."""

    def forward(ids: np.ndarray, mask: np.ndarray, pos: np.ndarray, past: Any) -> tuple[np.ndarray, Any]:
        if past is None:
            past = FusedRunner(session, shape, capacity, shared)
            prompts = [
                [int(t) for t, m in zip(row, mrow, strict=True) if m]
                for row, mrow in zip(ids, mask, strict=True)
            ]
            return past.prefill(prompts), past
        return past.step(ids[:, 0]), past

    return forward


def main() -> None:
    """python -m because_train.fused_graph PACKAGE_DIR OUT.onnx"""
    import argparse

    ap = argparse.ArgumentParser(description="Write the fused ONNX graph of a model package.")
    ap.add_argument("package", type=Path)
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    print(write_fused_graph(args.package, args.out))


if __name__ == "__main__":
    main()
