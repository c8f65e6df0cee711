"""The fused graph (because_train/fused_graph.py) computes the embedded package's model: against the
package's own model.onnx and against PyTorch, for a right-padded prefill of prompts of different
lengths and greedy decode steps of rows whose past lengths differ, with the KV cache shared
between past and present or copied."""

import json

import numpy as np
import onnx
import pytest
import torch

from because_train.data import load_labelled
from because_train.fused_graph import (
    FusedRunner,
    LlamaShape,
    fused_forward,
    weights_from_onnx,
    weights_from_torch,
    write_fused_graph,
)
from because_train.package import load_package
from because_train.runtime import onnx_session

from conftest import REPO_ROOT, shared_file

QRA, QA = "emotion-qra-natural", "emotion-qa-natural"
TOLERANCE = 1e-4
STEPS = 8


def package_dir(name: str):
    return REPO_ROOT / "models" / name


@pytest.fixture(scope="module")
def fused(tmp_path_factory):
    """name -> (package, fused session, shape)."""
    out = {}
    for name in (QRA, QA):
        path = write_fused_graph(package_dir(name), tmp_path_factory.mktemp(name) / "fused.onnx")
        shape = LlamaShape.from_config(json.loads((package_dir(name) / "config.json").read_text()))
        out[name] = (
            load_package(package_dir(name), threads=1, graph="fp32"),
            onnx_session(path, threads=1),
            shape,
            path,
        )
    return out


def validation_texts(n: int) -> list[str]:
    labels = json.loads((package_dir(QRA) / "manifest.json").read_text())["labels"]
    rows, _ = load_labelled(str(shared_file("emotion", "validation.jsonl")), labels=labels)
    return [r.text for r in rows[:n]]


def prompts_of_different_lengths(pkg, count: int) -> list[list[int]]:
    """Prompts of `count` distinct lengths from the first validation rows, longest first."""
    by_len: dict[int, list[int]] = {}
    for t in validation_texts(80):
        p = pkg.spec.prompt_ids(pkg.spec.text_ids(t))
        by_len.setdefault(len(p), p)
    lengths = sorted(by_len)
    picks = [lengths[round(i * (len(lengths) - 1) / (count - 1))] for i in range(count)]
    return [by_len[n] for n in sorted(set(picks), reverse=True)]


def reference_steps(pkg, prompts, tokens_per_step) -> list[np.ndarray]:
    """Last-position logits of the package's model.onnx: a left-padded prefill, then one step per
    entry of `tokens_per_step` (the tokens fed to each row)."""
    forward, pad = pkg.forward(), pkg.spec.specials["pad"]
    w = max(len(p) for p in prompts)
    ids = np.full((len(prompts), w), pad, dtype=np.int64)
    mask = np.zeros_like(ids)
    for r, p in enumerate(prompts):
        ids[r, w - len(p) :], mask[r, w - len(p) :] = p, 1
    pos = np.clip(np.cumsum(mask, 1) - 1, 0, None)
    logits, past = forward(ids, mask, pos, None)
    out, nxt = [logits], pos[:, -1:] + 1
    for tok in tokens_per_step:
        mask = np.concatenate([mask, np.ones((len(prompts), 1), dtype=np.int64)], 1)
        logits, past = forward(np.asarray(tok, dtype=np.int64)[:, None], mask, nxt, past)
        out.append(logits)
        nxt = nxt + 1
    return out


def greedy_fused(runner: FusedRunner, prompts, steps: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(logits per pass, tokens fed per step): a prefill, then `steps` greedy steps (argmax)."""
    logits = [runner.prefill(prompts)]
    fed = []
    for _ in range(steps):
        tok = np.argmax(logits[-1], axis=-1)
        fed.append(tok)
        logits.append(runner.step(tok))
    return logits, fed


def torch_model(name: str):
    """A transformers LlamaForCausalLM from the package's config.json with the weights of its
    model.onnx (the package ships no PyTorch checkpoint)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig.from_pretrained(package_dir(name))
    w = weights_from_onnx(package_dir(name) / "model.onnx", cfg.num_hidden_layers)
    state = {
        "model.embed_tokens.weight": w.embed,
        "model.norm.weight": w.final_norm,
        "lm_head.weight": w.lm_head.T,
    }
    for i, lw in enumerate(w.layers):
        p = f"model.layers.{i}."
        state[p + "input_layernorm.weight"] = lw.input_norm
        state[p + "post_attention_layernorm.weight"] = lw.post_norm
        for proj in ("q", "k", "v", "o"):
            state[p + f"self_attn.{proj}_proj.weight"] = getattr(lw, proj).T
        for proj in ("gate", "up", "down"):
            state[p + f"mlp.{proj}_proj.weight"] = getattr(lw, proj).T
    model = LlamaForCausalLM(cfg).eval()
    model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()})
    return model


def test_graph_is_fused(fused):
    _, _, shape, path = fused[QRA]
    model = onnx.load(str(path))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("GroupQueryAttention") == shape.num_layers
    assert ops.count("MatMul") == 4 * shape.num_layers + 1  # qkv, o, gate|up, down; lm_head
    assert ops.count("RotaryEmbedding") == 2 * shape.num_layers
    assert "Concat" not in ops and "Transpose" not in ops and len(ops) < 90
    outputs = [o.name for o in model.graph.output]
    assert outputs[1 + 2 * shape.num_layers :] == [
        f"new.{i}.{t}" for i in range(shape.num_layers) for t in ("key", "value")
    ]
    logits = model.graph.output[0]
    assert logits.name == "logits"
    assert [d.dim_param or d.dim_value for d in logits.type.tensor_type.shape.dim] == ["batch", shape.vocab]
    assert [i.name for i in model.graph.input[:3]] == ["input_ids", "seqlens_k", "total_sequence_length"]


@pytest.mark.parametrize(
    ("shared", "own_cache"),
    [(True, False), (False, False), (False, True)],
    ids=["shared-buffer", "copied", "own-cache"],
)
def test_prefill_and_greedy_steps_match_the_package_graph(fused, shared, own_cache):
    pkg, session, shape, _ = fused[QRA]
    prompts = prompts_of_different_lengths(pkg, 5)
    assert len({len(p) for p in prompts}) == 5
    capacity = max(map(len, prompts)) + STEPS + 3
    runner = FusedRunner(session, shape, capacity=capacity, shared=shared, own_cache=own_cache)
    got, fed = greedy_fused(runner, prompts, STEPS)
    want = reference_steps(pkg, prompts, fed)
    diffs = [float(np.abs(g - w).max()) for g, w in zip(got, want, strict=True)]
    print(f"max |fused - model.onnx| per pass (shared={shared}): {max(diffs):.2e}", diffs)
    assert max(diffs) <= TOLERANCE
    for g, w in zip(got, want, strict=True):
        assert (np.argmax(g, -1) == np.argmax(w, -1)).all()  # the greedy tokens are the same
    assert list(runner.lengths) == [len(p) + STEPS for p in prompts]


def test_greedy_steps_match_pytorch(fused):
    pkg, session, shape, _ = fused[QRA]
    prompts = prompts_of_different_lengths(pkg, 4)
    runner = FusedRunner(session, shape, capacity=max(map(len, prompts)) + STEPS)
    got, fed = greedy_fused(runner, prompts, STEPS)
    model = torch_model(QRA)
    worst = 0.0
    for r, p in enumerate(prompts):
        seq = p + [int(t[r]) for t in fed]
        with torch.no_grad():
            full = model(input_ids=torch.tensor([seq])).logits[0].numpy()
        want = full[len(p) - 1 :]  # the logits after the prompt, then after each fed token
        worst = max(worst, max(float(np.abs(g[r] - w).max()) for g, w in zip(got, want, strict=True)))
        assert [int(np.argmax(g[r])) for g in got] == [int(np.argmax(w)) for w in want]
    print(f"max |fused - PyTorch|: {worst:.2e}")
    assert worst <= TOLERANCE


def test_weights_from_torch_are_the_weights_from_onnx():
    model = torch_model(QRA)
    a = weights_from_torch(model)
    b = weights_from_onnx(package_dir(QRA) / "model.onnx", len(a.layers))
    assert np.array_equal(a.embed, b.embed) and np.array_equal(a.lm_head, b.lm_head)
    for x, y in zip(a.layers, b.layers, strict=True):
        for field in ("input_norm", "q", "k", "v", "o", "post_norm", "gate", "up", "down"):
            assert np.array_equal(getattr(x, field), getattr(y, field)), field


@pytest.mark.parametrize("name", [QRA, QA])
def test_decoding_through_the_fused_graph_gives_the_same_answers(fused, name):
    """decode.decode_batch (grounded quoting, label scoring) on the fused graph and on model.onnx."""
    pkg, session, shape, _ = fused[name]
    spec, m = pkg.spec, pkg.manifest
    texts = validation_texts(24)
    text_ids = [spec.text_ids(t) for t in texts]
    prompts = [spec.prompt_ids(ids) for ids in text_ids]
    cap = max(map(len, prompts)) + m["limits"]["max_reasoning_tokens"] + 2

    want, got = pkg.decode(pkg.forward(), text_ids), pkg.decode(fused_forward(session, shape, cap), text_ids)
    for w, g in zip(want, got, strict=True):
        assert g.reasoning_ids == w.reasoning_ids and g.label == w.label and g.forced == w.forced
        assert np.abs(g.scores - w.scores).max() <= 1e-4


def test_own_cache_from_the_new_outputs_equals_the_in_place_cache(fused):
    """What the service does (fetch `new.*`, copy them into its cache) is bit for bit what the op
    writes into a shared buffer."""
    pkg, session, shape, _ = fused[QRA]
    prompts = prompts_of_different_lengths(pkg, 5)
    capacity = max(map(len, prompts)) + STEPS + 3
    shared = FusedRunner(session, shape, capacity=capacity)
    own = FusedRunner(session, shape, capacity=capacity, shared=False, own_cache=True)
    got_shared, fed = greedy_fused(shared, prompts, STEPS)
    got_own, _ = greedy_fused(own, prompts, STEPS)
    for a, b in zip(got_shared, got_own, strict=True):
        assert np.array_equal(a, b)
    for a, b in zip(shared.cache, own.cache, strict=True):
        for r, n in enumerate(shared.lengths):
            assert np.array_equal(a[r, :, :n], b[r, :, :n])
