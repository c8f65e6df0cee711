"""A package's graphs (docs/model-package.md, "Graphs"): the fused fp32 graph (fused_graph.py) and its
int8 variant written beside `model.onnx`, checked, and the graph the service runs by default chosen.

- `write_graphs`: `model.fused.onnx` from the package's own model.onnx weights, and
  `model.fused-int8.onnx` from it with every MatMul in int8, activations scaled per row
  (int8_rows.py), so that a text's answer does not depend on the texts batched beside it.
- `fused_parity`: the fused fp32 graph against the reference graph on real prompts of different
  lengths, a right-padded prefill and greedy steps; greedy tokens identical and logits within
  `TOLERANCE`, else the export fails.
- `choose_default_graph` (a pure function): `fused-int8` when its answers do not depend on the batch
  (`INT8_BATCH_INVARIANT`: true of int8_rows.py's graph, not of onnxruntime's dynamic quantisation)
  and its accuracy is within `ACCURACY_MARGIN` of fp32's on every validation source, else
  `fused-fp32`.
- `add_graphs`: all of it on a package folder in place (the `graphs` stage; `export` does the
  same steps on the package it writes): `graphs`, `default_graph`, `metrics.graphs`,
  `provenance.parity.fused_fp32_vs_reference` and the file hashes change, nothing else of the
  manifest.
"""

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from because_train.provenance import sha256_file

log = logging.getLogger(__name__)

FP32, FUSED_FP32, FUSED_INT8 = "fp32", "fused-fp32", "fused-int8"
FILES = {FUSED_FP32: "model.fused.onnx", FUSED_INT8: "model.fused-int8.onnx"}
# Max |logit difference|, fused fp32 against the reference graph. The two sum in different orders (packed
# matmuls, fused attention); 1e-4 stopped the v3 Q->A export at 1.12e-4 with every greedy token the same.
TOLERANCE = 5e-4
ACCURACY_MARGIN = 0.005  # int8 may lose at most 0.5 accuracy points on a source to be the default
# int8_rows.py scales activations per row. (onnxruntime's DynamicQuantizeMatMul, used before, scales them per
# tensor, i.e. per batch: in `npm run bench` 446 of the engine's answers under load differed from its answer to
# the same text at another concurrency.)
INT8_BATCH_INVARIANT = True
PARITY_STEPS = 12
PARITY_TEXTS = (
    "i feel so happy today",
    "i am scared",
    "why would he do that to me i am furious",
    "i miss her so much and nothing feels the same since she left",
    "wow i did not expect that at all",
)
COMPARED = (FP32, FUSED_FP32, FUSED_INT8)  # the graphs evaluated per source for the decision


def graphs_entry(onnx_file: str) -> dict[str, dict[str, str]]:
    """The manifest's `graphs`: the reference graph and the two fused ones."""
    return {
        FP32: {"file": onnx_file, "layout": "optimum", "dtype": "float32"},
        FUSED_FP32: {"file": FILES[FUSED_FP32], "layout": "gqa", "dtype": "float32"},
        FUSED_INT8: {"file": FILES[FUSED_INT8], "layout": "gqa", "dtype": "int8"},
    }


def quantize_int8(src: Path, dst: Path) -> Path:
    """int8 MatMuls with per-row activation scales (inputs and outputs stay float32)."""
    from because_train.int8_rows import quantize_rows

    return quantize_rows(src, dst)


def write_graphs(package: Path, onnx_file: str = "model.onnx") -> dict[str, dict[str, str]]:
    """Writes the fused fp32 and int8 graphs into `package` from its config.json and `onnx_file`;
    returns the manifest's `graphs`."""
    from because_train.fused_graph import write_fused_graph

    if onnx_file != "model.onnx":
        raise ValueError(f"{package}: the fused graphs are read from model.onnx, not {onnx_file}")
    fused = write_fused_graph(package, package / FILES[FUSED_FP32])
    quantize_int8(fused, package / FILES[FUSED_INT8])
    return graphs_entry(onnx_file)


def fused_parity(
    package: Path, prompts: list[list[int]], pad: int, steps: int = PARITY_STEPS, threads: int = 2
) -> dict[str, float]:
    """Max |logit difference| of the fused fp32 graph against the package's reference graph over a
    prefill of `prompts` (right-padded there, left-padded in the reference) and `steps` greedy
    steps; raises SystemExit when a greedy token differs or the difference exceeds TOLERANCE."""
    from because_train.fused_graph import FusedRunner, LlamaShape
    from because_train.runtime import onnx_forward, onnx_session

    shape = LlamaShape.from_config(json.loads((package / "config.json").read_text()))
    ref = onnx_session(package / "model.onnx", threads)
    fused = onnx_session(package / FILES[FUSED_FP32], threads)
    forward = onnx_forward(ref, shape.num_layers, shape.kv_heads, shape.head_dim)
    b, width = len(prompts), max(len(p) for p in prompts)
    ids = np.full((b, width), pad, dtype=np.int64)
    mask = np.zeros_like(ids)
    for r, p in enumerate(prompts):
        ids[r, width - len(p) :], mask[r, width - len(p) :] = p, 1
    pos = np.clip(np.cumsum(mask, 1) - 1, 0, None)
    want, past = forward(ids, mask, pos, None)
    runner = FusedRunner(fused, shape, capacity=width + steps + 1)
    got = runner.prefill(prompts)
    worst, differing = 0.0, 0
    for step in range(steps + 1):
        worst = max(worst, float(np.abs(got - want).max()))
        tokens = np.argmax(got, axis=-1)
        differing += int((tokens != np.argmax(want, axis=-1)).sum())
        if step == steps:
            break
        mask = np.concatenate([mask, np.ones((b, 1), dtype=np.int64)], 1)
        pos = pos[:, -1:] + 1
        want, past = forward(tokens[:, None].astype(np.int64), mask, pos, past)
        got = runner.step(tokens)
    if differing or not worst <= TOLERANCE:
        raise SystemExit(
            f"{package}: fused graph parity check failed: max |logit difference| {worst:.3g} "
            f"(tolerance {TOLERANCE}), {differing} greedy tokens differ from {FILES[FUSED_FP32]}'s reference"
        )
    return {"fused_fp32_vs_reference": worst}


def choose_default_graph(
    per_source: dict[str, dict[str, dict[str, Any]]],
    margin: float = ACCURACY_MARGIN,
    int8_batch_invariant: bool = INT8_BATCH_INVARIANT,
) -> tuple[str, str]:
    """(default graph, why) from `per_source[source][graph]["accuracy"]`: `fused-int8` when its
    answers do not depend on the rows batched with them and its accuracy is at most `margin` below
    fp32's on every source, else `fused-fp32`."""
    if not per_source:
        raise ValueError("choose_default_graph: no validation source to decide on")
    drops = {s: g[FP32]["accuracy"] - g[FUSED_INT8]["accuracy"] for s, g in per_source.items()}
    worst = max(drops, key=lambda s: drops[s])
    points, limit = 100 * drops[worst], 100 * margin
    if not int8_batch_invariant:
        return FUSED_FP32, (
            f"{FUSED_FP32} is the default: {FUSED_INT8} quantises each MatMul's input with one scale for "
            f"the whole batch, so a text's answer can change with the texts batched beside it (its accuracy, "
            f"largest drop {points:.2f} points on {worst}, is not the obstacle); `--graph {FUSED_INT8}` "
            "serves it where that is acceptable"
        )
    if drops[worst] <= 0:
        return FUSED_INT8, (
            f"{FUSED_INT8} is the default: its accuracy is at least {FP32}'s on every validation source "
            f"(required: within {limit:.1f} points)"
        )
    if drops[worst] <= margin + 1e-12:
        return FUSED_INT8, (
            f"{FUSED_INT8} is the default: its accuracy is within {limit:.1f} points of {FP32} on every "
            f"validation source (largest drop {points:.2f} points, {worst})"
        )
    return FUSED_FP32, (
        f"{FUSED_FP32} is the default: {FUSED_INT8}'s accuracy falls {points:.2f} points below {FP32} on "
        f"{worst} (more than {limit:.1f})"
    )


def row_metrics(rows: list[dict[str, Any]], labels: list[str], manifest: dict[str, Any]) -> dict[str, Any]:
    """Accuracy, macro-F1 and ECE (at the package's calibration) of evaluate's prediction rows."""
    from because_train.calibrate import ece_at, temperature_of
    from because_train.metrics import classification_metrics

    gold = [labels.index(r["label"]) for r in rows]
    m = classification_metrics(gold, [labels.index(r["pred"]) for r in rows], labels)
    registers = (manifest.get("prior") or {}).get("registers")  # prior.json's order, recorded by export
    temps = [temperature_of(manifest.get("calibration"), registers, r.get("registers")) for r in rows]
    return {
        "n": m["n"],
        "accuracy": m["accuracy"],
        "macro_f1": m["macro_f1"],
        "ece": ece_at(np.array([r["label_logits"] for r in rows]), np.array(gold), np.array(temps)),
    }


def compare_graphs(
    package: Path,
    data: dict[str, str],
    known: dict[str, dict[str, dict[str, Any]]] | None = None,
    limit: int = 0,
    threads: int = 0,
    batch_size: int = 64,
) -> dict[str, dict[str, dict[str, Any]]]:
    """`[source][graph]` -> accuracy, macro-F1, ECE of each graph of COMPARED on each source's file
    of `data`, decoded (grounded) as the service decodes, at the package's calibration temperature;
    `known[source][graph]`: numbers already measured (export's fp32 evaluation), not redone."""
    from because_train.evaluate import evaluate
    from because_train.package import load_package

    out: dict[str, dict[str, dict[str, Any]]] = {s: dict((known or {}).get(s, {})) for s in data}
    for graph in COMPARED:
        if all(graph in out[s] for s in data):
            continue
        pkg = load_package(package, threads, graph)
        labels = pkg.manifest["labels"]
        for source, path in data.items():
            if graph in out[source]:
                continue
            metrics, rows = evaluate(pkg, path, limit, batch_size, progress=False)
            out[source][graph] = row_metrics(rows, labels, pkg.manifest)
            log.info(
                f"graphs {pkg.id}: {source} on {graph}: accuracy {metrics['accuracy']:.4f}, "
                f"macro-F1 {metrics['macro_f1']:.4f} ({metrics['seconds']}s)"
            )
    return out


def record_decision(manifest: dict[str, Any], per_source: dict[str, dict[str, dict[str, Any]]]) -> str:
    """Sets `default_graph` and `metrics.graphs` (the numbers and the reason); returns the reason."""
    name, reason = choose_default_graph(per_source)
    manifest["default_graph"] = name
    manifest.setdefault("metrics", {})["graphs"] = {
        "default": name,
        "reason": reason,
        "accuracy_margin": ACCURACY_MARGIN,
        "per_source": per_source,
    }
    return reason


def write_manifest(package: Path, manifest: dict[str, Any]) -> None:
    """manifest.json with every file's sha256 (as export writes it)."""
    manifest["files"] = {
        f.name: sha256_file(f) for f in sorted(package.iterdir()) if f.is_file() and f.name != "manifest.json"
    }
    (package / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def parse_data(items: list[str]) -> dict[str, str]:
    """`--data` values, `NAME=FILE` or `FILE` (named by its stem), -> {source name: file}."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep:
            name, path = Path(item).stem.removeprefix("validation-"), item
        if name in out:
            raise ValueError(f"--data {item!r}: source {name!r} given twice (name it: NAME=FILE)")
        out[name] = path
    return out


def add_graphs(
    package: Path,
    data: dict[str, str] | None,
    card_notes: str | None = None,
    limit: int = 0,
    threads: int = 0,
) -> dict[str, Any]:
    """The graphs stage on a package folder, in place: writes the fused graphs, checks the fp32 one,
    decides `default_graph` on `data` ({source: validation file}; None or empty: not decided, the
    current default kept, with a message saying so), rewrites the card (`card_notes`: the full card
    from the manifest; None: only its Graphs section) and the manifest. Returns the manifest."""
    from because_train.model_card import update_graphs_section, write_model_card
    from because_train.package import load_package

    package = Path(package)
    pkg = load_package(package, graph="fp32")  # checks every file against the manifest first
    manifest = pkg.manifest
    manifest["graphs"] = write_graphs(package, manifest["onnx"]["file"])
    spec = pkg.spec
    prompts = [spec.prompt_ids(spec.text_ids(t)) for t in PARITY_TEXTS]
    parity = fused_parity(package, prompts, spec.specials["pad"])
    manifest.setdefault("provenance", {}).setdefault("parity", {}).update(parity)
    log.info(f"graphs {pkg.id}: fused fp32 against {manifest['onnx']['file']}: {parity}")
    if manifest.get("default_graph") not in manifest["graphs"]:
        manifest.pop("default_graph", None)
    write_manifest(package, manifest)  # the new graphs' hashes, for loading them below
    if data:
        per_source = compare_graphs(package, data, limit=limit, threads=threads)
        reason = record_decision(manifest, per_source)
        log.info(f"graphs {pkg.id}: {reason}")
    else:
        log.warning(
            f"graphs {pkg.id}: no validation data (--data) to compare {FUSED_INT8} with {FP32} on: "
            f"default_graph not decided, left {manifest.get('default_graph') or 'unset (the service runs fp32)'}"
        )
    if card_notes is not None:
        write_model_card(package, manifest, card_notes)
    else:
        card = package / "MODEL_CARD.md"
        if card.exists():
            card.write_text(update_graphs_section(card.read_text(), manifest))
    write_manifest(package, manifest)
    return manifest
