"""`forward` functions for decode.py: PyTorch (during training) and ONNX Runtime (an exported
package's graphs, in the optimum layout or the fused gqa layout)."""

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import DynamicCache, PreTrainedModel

from because_train.decode import Forward


class KVWrapper(torch.nn.Module):
    """The ONNX interface around a causal LM: flat past tensors in, logits and flat present out."""

    def __init__(self, model: PreTrainedModel, num_layers: int) -> None:
        super().__init__()
        self.model, self.num_layers = model, num_layers

    def forward(self, input_ids, attention_mask, position_ids, *past):  # type: ignore[no-untyped-def]
        cache = DynamicCache()
        for i in range(self.num_layers):
            cache.update(past[2 * i], past[2 * i + 1], i)
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=cache,
            use_cache=True,
        )
        present: list[torch.Tensor] = []
        for layer in out.past_key_values.layers:
            present += [layer.keys, layer.values]
        return (out.logits, *present)


def empty_past(batch: int, num_layers: int, kv_heads: int, head_dim: int) -> list[np.ndarray]:
    return [np.zeros((batch, kv_heads, 0, head_dim), dtype=np.float32) for _ in range(2 * num_layers)]


def torch_forward(model: PreTrainedModel, device: torch.device) -> Forward:
    @torch.no_grad()
    def forward(ids: np.ndarray, mask: np.ndarray, pos: np.ndarray, past: Any) -> tuple[np.ndarray, Any]:
        if past is None:
            past = DynamicCache()
        out = model(
            input_ids=torch.from_numpy(ids).to(device),
            attention_mask=torch.from_numpy(mask).to(device),
            position_ids=torch.from_numpy(pos).to(device),
            past_key_values=past,
            use_cache=True,
        )
        return out.logits[:, -1].float().cpu().numpy(), out.past_key_values

    return forward


def onnx_session(path: Path, threads: int = 0) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def onnx_forward(session: Any, num_layers: int, kv_heads: int, head_dim: int) -> Forward:
    names = [o.name for o in session.get_outputs()]

    def forward(ids: np.ndarray, mask: np.ndarray, pos: np.ndarray, past: Any) -> tuple[np.ndarray, Any]:
        if past is None:
            past = empty_past(ids.shape[0], num_layers, kv_heads, head_dim)
        feed = {"input_ids": ids, "attention_mask": mask, "position_ids": pos}
        for i in range(num_layers):
            feed[f"past_key_values.{i}.key"] = past[2 * i]
            feed[f"past_key_values.{i}.value"] = past[2 * i + 1]
        outs = session.run(names, feed)
        return outs[0][:, -1], outs[1:]

    return forward


def gqa_forward(session: Any, config_json: Path, capacity: int) -> Forward:
    """A forward over a graph of the gqa layout (fused_graph.py; docs/model-package.md), driven as the
    service's engine drives it: the left-padded prompt rows `decode_batch` passes are re-packed
    right-padded for one prefill (`seqlens_k`, `total_sequence_length`), then every step appends one
    token per row to a KV buffer of `capacity` slots that the graph writes in place."""
    from because_train.fused_graph import LlamaShape, fused_forward

    shape = LlamaShape.from_config(json.loads(Path(config_json).read_text()))
    return fused_forward(session, shape, capacity, shared=True)
