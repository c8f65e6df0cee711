"""Times the package's model.onnx against the fused graph (training/because_train/fused_graph.py),
fp32 and int8 (onnxruntime.quantization.quantize_dynamic, MatMul weights), in Python ONNX Runtime,
and measures how often the int8 models pick the fp32 model's greedy tokens.

    nice -n 19 training/.venv/bin/python bench/fused_graph_probe.py [--rounds 12] [--passes 10]

Passes: a prefill of 3 prompts x 26 tokens, a decode step of 1 row and one of 32 rows (past 40),
at 1 and 2 intra-op threads (spinning off, like the engine). Variants are interleaved round by
round (the order rotates every round), so a ratio compares passes run seconds apart: on a shared
machine the ratios are what to read, the absolute milliseconds are only indicative.

  current      model.onnx through session.run (host feeds, ORT allocates and returns presents)
  fused        the fused graph, its KV buffers bound as past and present (IOBinding): in place
  fused-copy   the fused graph through session.run: ORT copies the past into a new present
  current-int8, fused-int8: the same as current and fused, int8 weights
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "training"))

import onnxruntime as ort  # noqa: E402

from because_train.data import load_labelled  # noqa: E402
from because_train.decode import Decoded, Forward  # noqa: E402
from because_train.fused_graph import LlamaShape, fused_forward, write_fused_graph  # noqa: E402
from because_train.graphs import quantize_int8  # noqa: E402
from because_train.package import Package, load_package  # noqa: E402
from because_train.runtime import onnx_forward  # noqa: E402

PAST, CAPACITY = 40, 48  # the engine's capacity grows in steps of 8 slots


@dataclass
class Models:
    current: Path
    fused: Path
    current_int8: Path
    fused_int8: Path


def build_models(package: Path, out: Path) -> Models:
    fused = write_fused_graph(package, out / "fused.onnx")
    models = Models(package / "model.onnx", fused, out / "current-int8.onnx", out / "fused-int8.onnx")
    for src, dst in ((models.current, models.current_int8), (models.fused, models.fused_int8)):
        quantize_int8(src, dst)
    return models


def session(path: Path, threads: int) -> Any:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def optimized_ops(path: Path) -> dict[str, int]:
    """Op counts of the graph after ONNX Runtime's optimisation (what runs)."""
    import onnx

    with tempfile.TemporaryDirectory() as d:
        opts = ort.SessionOptions()
        opts.optimized_model_filepath = str(Path(d) / "opt.onnx")
        opts.log_severity_level = 3
        ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        nodes = onnx.load(opts.optimized_model_filepath).graph.node
    counts: dict[str, int] = {}
    for n in nodes:
        counts[n.op_type] = counts.get(n.op_type, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


# --- one pass of each kind, as a closure over prepared inputs ---


@dataclass(frozen=True)
class Pass:
    name: str
    batch: int
    new: int  # tokens per row
    past: int


PASSES = [Pass("prefill 3x26", 3, 26, 0), Pass("decode B=1", 1, 1, PAST), Pass("decode B=32", 32, 1, PAST)]


def current_pass(sess: Any, shape: LlamaShape, p: Pass, rng: np.random.Generator) -> Callable[[], None]:
    b, s, total = p.batch, p.new, p.past + p.new
    feeds: dict[str, np.ndarray] = {
        "input_ids": rng.integers(5, shape.vocab, (b, s)).astype(np.int64),
        "attention_mask": np.ones((b, total), dtype=np.int64),
        "position_ids": np.tile(np.arange(p.past, total, dtype=np.int64), (b, 1)),
    }
    for i in range(shape.num_layers):
        for t in ("key", "value"):
            feeds[f"past_key_values.{i}.{t}"] = rng.standard_normal(
                (b, shape.kv_heads, p.past, shape.head_dim), dtype=np.float32
            )
    return lambda: sess.run(None, feeds)


def fused_feeds(shape: LlamaShape, p: Pass, rng: np.random.Generator, capacity: int) -> dict[str, np.ndarray]:
    b = p.batch
    feeds: dict[str, np.ndarray] = {
        "input_ids": rng.integers(5, shape.vocab, (b, p.new)).astype(np.int64),
        "seqlens_k": np.full(b, p.past + p.new - 1, dtype=np.int32),
        "total_sequence_length": np.array(p.past + p.new, dtype=np.int32),
    }
    for i in range(shape.num_layers):
        for t in ("key", "value"):
            feeds[f"past_key_values.{i}.{t}"] = rng.standard_normal(
                (b, shape.kv_heads, capacity, shape.head_dim), dtype=np.float32
            )
    return feeds


def fused_shared_pass(sess: Any, shape: LlamaShape, p: Pass, rng: np.random.Generator) -> Callable[[], None]:
    """Buffers of CAPACITY slots bound as past and present: ORT writes the new slots in place."""
    feeds = fused_feeds(shape, p, rng, CAPACITY)
    binding = sess.io_binding()
    keep = []  # the OrtValues wrap numpy memory: keep both alive
    for name, value in feeds.items():
        ov = ort.OrtValue.ortvalue_from_numpy(value)
        keep.append(ov)
        binding.bind_ortvalue_input(name, ov)
        if name.startswith("past_key_values."):
            binding.bind_ortvalue_output(name.replace("past_key_values.", "present."), ov)
    logits = ort.OrtValue.ortvalue_from_numpy(np.empty((p.batch, shape.vocab), dtype=np.float32))
    binding.bind_ortvalue_output("logits", logits)
    keep += [logits, feeds]

    def run() -> None:
        sess.run_with_iobinding(binding)
        assert keep

    return run


def fused_copy_pass(sess: Any, shape: LlamaShape, p: Pass, rng: np.random.Generator) -> Callable[[], None]:
    """session.run with a past of CAPACITY slots (a prefill: an empty past), presents returned."""
    feeds = fused_feeds(shape, p, rng, CAPACITY if p.past else 0)
    return lambda: sess.run(None, feeds)


# --- interleaved timing ---


def time_interleaved(
    runs: dict[str, Callable[[], None]], rounds: int, passes: int
) -> dict[str, list[list[float]]]:
    """name -> per round, the milliseconds of each pass; the order of the variants rotates."""
    names = list(runs)
    for fn in runs.values():  # warm up: arenas, thread pools, prepacked weights
        for _ in range(3):
            fn()
    out: dict[str, list[list[float]]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            fn, times = runs[name], []
            for _ in range(passes):
                t0 = time.perf_counter_ns()
                fn()
                times.append((time.perf_counter_ns() - t0) / 1e6)
            out[name].append(times)
    return out


def summarise(times: dict[str, list[list[float]]], ratios: list[tuple[str, str]]) -> dict[str, Any]:
    """Median ms per variant over all passes; each ratio a / b as the median over rounds of the
    per-round medians' ratio (with the lowest and highest round)."""
    med = {n: statistics.median(x for rnd in t for x in rnd) for n, t in times.items()}
    out: dict[str, Any] = {"ms": med, "ratios": {}}
    for a, b in ratios:
        per_round = [
            statistics.median(x) / statistics.median(y) for x, y in zip(times[a], times[b], strict=True)
        ]
        out["ratios"][f"{a} / {b}"] = {
            "median": statistics.median(per_round),
            "min": min(per_round),
            "max": max(per_round),
        }
    return out


RATIOS = [
    ("current", "fused"),
    ("current", "fused-copy"),
    ("fused-copy", "fused"),
    ("current-int8", "fused-int8"),
    ("current", "fused-int8"),
    ("fused", "fused-int8"),
]


def timing(models: Models, shape: LlamaShape, threads: list[int], rounds: int, passes: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for t in threads:
        sess = {
            "current": session(models.current, t),
            "fused": session(models.fused, t),
            "current-int8": session(models.current_int8, t),
            "fused-int8": session(models.fused_int8, t),
        }
        for p in PASSES:
            rng = np.random.default_rng(0)
            runs = {
                "current": current_pass(sess["current"], shape, p, rng),
                "fused": fused_shared_pass(sess["fused"], shape, p, rng),
                "fused-copy": fused_copy_pass(sess["fused"], shape, p, rng),
                "current-int8": current_pass(sess["current-int8"], shape, p, rng),
                "fused-int8": fused_shared_pass(sess["fused-int8"], shape, p, rng),
            }
            key = f"{p.name}, {t} thread{'s' if t > 1 else ''}"
            results[key] = summarise(time_interleaved(runs, rounds, passes), RATIOS)
            print(
                f"{key}: " + ", ".join(f"{n} {ms:.3f} ms" for n, ms in results[key]["ms"].items()), flush=True
            )
    return results


# --- greedy agreement on real prompts ---


def real_prompts(pkg: Package, data: Path, n: int) -> tuple[list[list[int]], list[list[int]]]:
    """(text ids, prompt ids) of the first n labelled rows, as `evaluate` builds them."""
    rows, _ = load_labelled(str(data), labels=pkg.manifest["labels"])
    limit = pkg.manifest["limits"]["max_input_tokens"]
    text_ids = [pkg.spec.text_ids(r.text)[:limit] for r in rows[:n]]
    return text_ids, [pkg.spec.prompt_ids(ids) for ids in text_ids]


def decode_all(
    pkg: Package, forward: Forward, text_ids: list[list[int]], prompts: list[list[int]]
) -> list[Decoded]:
    return pkg.decode(forward, text_ids)


def teacher_forced_argmax(
    pkg: Package, forward: Forward, prompts: list[list[int]], feed: list[list[int]]
) -> np.ndarray:
    """[rows, steps] argmax (special ids but the marker masked) after the prompt and after each fed
    token, every row fed the same continuation `feed[r]` (padded with the marker)."""
    b, steps = len(prompts), max(len(f) for f in feed)
    w, pad = max(len(p) for p in prompts), pkg.spec.specials["pad"]
    ids, mask = np.full((b, w), pad, dtype=np.int64), np.zeros((b, w), dtype=np.int64)
    for r, p in enumerate(prompts):
        ids[r, w - len(p) :], mask[r, w - len(p) :] = p, 1
    pos = np.clip(np.cumsum(mask, 1) - 1, 0, None)
    logits, past = forward(ids, mask, pos, None)
    picks, nxt = [], pos[:, -1:] + 1
    marker, banned = pkg.spec.specials["marker"], pkg.spec.banned_in_reasoning
    for s in range(steps + 1):
        z = logits.copy()
        z[:, banned] = -np.inf
        picks.append(np.argmax(z, -1))
        if s == steps:
            break
        tok = np.array([f[s] if s < len(f) else marker for f in feed], dtype=np.int64)[:, None]
        mask = np.concatenate([mask, np.ones((b, 1), dtype=np.int64)], 1)
        logits, past = forward(tok, mask, nxt, past)
        nxt = nxt + 1
    return np.stack(picks, 1)


def agreement(models: Models, package: Path, data: Path, n: int) -> dict[str, Any]:
    pkg = load_package(package, threads=2, graph="fp32")  # the reference, whatever the default
    o = pkg.manifest["onnx"]
    shape = LlamaShape.from_config(json.loads((package / "config.json").read_text()))
    text_ids, prompts = real_prompts(pkg, data, n)
    cap = max(map(len, prompts)) + pkg.manifest["limits"]["max_reasoning_tokens"] + 2
    layers, kv, hd = o["num_layers"], o["num_kv_heads"], o["head_dim"]
    forwards: dict[str, Forward] = {
        "current": pkg.forward(),
        "fused": fused_forward(session(models.fused, 2), shape, cap),
        "current-int8": onnx_forward(session(models.current_int8, 2), layers, kv, hd),
        "fused-int8": fused_forward(session(models.fused_int8, 2), shape, cap),
    }
    decoded = {k: decode_all(pkg, f, text_ids, prompts) for k, f in forwards.items()}
    ref = decoded["current"]
    # Each row continued with the fp32 model's reasoning and marker: top-1 agreement per position.
    feed = [d.reasoning_ids + [pkg.spec.specials["marker"]] for d in ref]
    valid = np.array([[s <= len(f) for s in range(max(map(len, feed)) + 1)] for f in feed])
    forced = {k: teacher_forced_argmax(pkg, f, prompts, feed) for k, f in forwards.items()}
    out: dict[str, Any] = {"rows": len(ref), "reasoning_tokens": sum(len(d.reasoning_ids) for d in ref)}
    for k, dec in decoded.items():
        out[k] = {
            "same_reasoning_and_label": sum(
                a.reasoning_ids == b.reasoning_ids and a.label == b.label
                for a, b in zip(ref, dec, strict=True)
            ),
            "same_label": sum(a.label == b.label for a, b in zip(ref, dec, strict=True)),
            "max_score_diff": float(
                max(np.abs(a.scores - b.scores).max() for a, b in zip(ref, dec, strict=True))
            ),
            "teacher_forced_top1": float((forced[k] == forced["current"])[valid].mean()),
            "teacher_forced_positions": int(valid.sum()),
        }
    return out


def print_table(results: dict[str, Any]) -> None:
    variants = ["current", "fused", "fused-copy", "current-int8", "fused-int8"]
    print("\n| pass | " + " | ".join(variants) + " | " + " | ".join(f"{a} / {b}" for a, b in RATIOS) + " |")
    print("|---" * (1 + len(variants) + len(RATIOS)) + "|")
    for key, r in results.items():
        ms = " | ".join(f"{r['ms'][v]:.3f}" for v in variants)
        ratios = " | ".join(
            "{median:.2f} ({min:.2f}-{max:.2f})".format(**r["ratios"][f"{a} / {b}"]) for a, b in RATIOS
        )
        print(f"| {key} | {ms} | {ratios} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--package", type=Path, default=ROOT / "models" / "emotion-qra-natural")
    ap.add_argument(
        "--data", type=Path, default=ROOT.parent / "shared" / "data" / "emotion" / "validation.jsonl"
    )
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--passes", type=int, default=10, help="passes per variant per round")
    ap.add_argument("--texts", type=int, default=50, help="validation texts for the int8 agreement")
    ap.add_argument("--json", type=Path, help="write the results here too")
    args = ap.parse_args()
    shape = LlamaShape.from_config(json.loads((args.package / "config.json").read_text()))
    with tempfile.TemporaryDirectory() as d:
        models = build_models(args.package, Path(d))
        ops = {
            k: optimized_ops(getattr(models, k)) for k in ("current", "fused", "current_int8", "fused_int8")
        }
        for k, c in ops.items():
            print(f"{k}: {sum(c.values())} nodes after ORT optimisation: {dict(list(c.items())[:8])}")
        agree = agreement(models, args.package, args.data, args.texts)
        print(json.dumps(agree, indent=2))
        results = timing(models, shape, args.threads, args.rounds, args.passes)
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps({"ops": ops, "agreement": agree, "timing": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
