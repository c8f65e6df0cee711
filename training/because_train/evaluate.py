"""Evaluate a model package on a split file, decoding the ONNX model exactly as the service does."""

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

from because_train.console import Progress
from because_train.data import load_labelled
from because_train.decode import Decoded, decode_batch
from because_train.metrics import classification_metrics, expected_calibration_error, quoted_phrases
from because_train.normalize import normalize
from because_train.package import Package, PackageError, load_package

log = logging.getLogger(__name__)


def predict(
    pkg: Package,
    texts: list[str],
    batch_size: int = 64,
    progress: bool = False,
    grounded: bool = True,
    temperature: float | None = None,
) -> list[tuple[Decoded, int]]:
    """(decoded, number of text tokens) per text, in input order. `grounded=False` lets quotes
    stray from the input (for measuring what grounding changes); `temperature` overrides the
    package's calibration."""
    spec, m = pkg.spec, pkg.manifest
    forward = pkg.forward()
    text_ids = [spec.text_ids(t) for t in texts]
    limit = m["limits"]["max_input_tokens"]
    prompts = [spec.prompt_ids(ids[:limit]) for ids in text_ids]
    sources = [spec.source_bytes(ids[:limit]) for ids in text_ids]
    order = sorted(range(len(texts)), key=lambda i: len(prompts[i]))
    out: dict[int, Decoded] = {}
    t0 = time.time()
    meter = Progress(log, "evaluate", len(texts), unit="row", enabled=progress)
    for s in range(0, len(order), batch_size):
        idx = order[s : s + batch_size]
        decoded = decode_batch(
            forward,
            [prompts[i] for i in idx],
            kind=pkg.kind,
            marker=spec.specials["marker"],
            banned=spec.banned_in_reasoning,
            label_ids=[ids[0] for ids in spec.label_ids],
            max_reasoning=m["limits"]["max_reasoning_tokens"],
            pad=max(spec.specials["pad"], 0),
            sources=[sources[i] for i in idx] if grounded else None,
            token_bytes=spec.token_bytes if grounded else None,
            temperature=pkg.temperature if temperature is None else temperature,
            scores_at_first_label=pkg.scores_at_first_label,
        )
        out.update(zip(idx, decoded, strict=True))
        meter.update(len(out))
        meter.line(f"evaluate: {len(out)}/{len(texts)} rows ({time.time() - t0:.0f}s)")
    meter.close()
    return [(out[i], len(text_ids[i])) for i in range(len(texts))]


def reasoning_text(pkg: Package, d: Decoded) -> str:
    return pkg.spec.tokenizer.decode(d.reasoning_ids, skip_special_tokens=False).strip()


def grounding_counts(pkg: Package, texts: list[str], reasonings: list[str]) -> tuple[int, int]:
    """(quoted phrases, those that occur in their normalised input)."""
    quotes = grounded = 0
    for text, reasoning in zip(texts, reasonings, strict=True):
        source = normalize(text, pkg.spec.normalize, pkg.spec.emoji)
        for phrase in quoted_phrases(reasoning):
            quotes += 1
            grounded += phrase in source
    return quotes, grounded


def evaluate(
    pkg: Package,
    data: str,
    limit: int = 0,
    batch_size: int = 64,
    progress: bool = True,
    grounded: bool = True,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Metrics and per-row predictions on the rows of `data` that have a label (rows whose label
    is null are skipped and counted in `skipped`)."""
    labels = pkg.manifest["labels"]
    rows, counts = load_labelled(data, labels=tuple(labels))
    if limit:
        rows = rows[:limit]
    t0 = time.time()
    results = predict(pkg, [r.text for r in rows], batch_size, progress, grounded)
    seconds = time.time() - t0
    metrics = classification_metrics([r.label for r in rows], [d.label for d, _ in results], labels)
    reasonings = [reasoning_text(pkg, d) for d, _ in results]
    quotes, in_input = grounding_counts(pkg, [r.text for r in rows], reasonings)
    correct = [d.label == r.label for r, (d, _) in zip(rows, results, strict=True)]
    metrics.update(
        model=pkg.id,
        kind=pkg.kind,
        data=data,
        skipped=counts.skipped,
        seconds=round(seconds, 2),
        forced_marker=sum(d.forced for d, _ in results),
        quotes=quotes,
        quotes_grounded=in_input / quotes if quotes else 1.0,
        mean_top_score=float(sum(float(d.scores.max()) for d, _ in results) / max(1, len(results))),
        ece=expected_calibration_error([float(d.scores.max()) for d, _ in results], correct),
        temperature=pkg.temperature,
    )
    predictions = [
        {
            "text": r.text,
            "label": labels[r.label],
            "pred": labels[d.label],
            "reasoning": reasoning,
            "scores": {name: float(s) for name, s in zip(labels, d.scores, strict=True)},
            "input_tokens": n,
            "reasoning_tokens": len(d.reasoning_ids),
            "label_logits": [float(x) for x in d.label_logits] if d.label_logits is not None else None,
        }
        for r, (d, n), reasoning in zip(rows, results, reasonings, strict=True)
    ]
    return metrics, predictions


def confusion_png(metrics: dict[str, Any], labels: list[str], path: str | Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    cm = np.array(metrics["confusion"])
    fig, ax = plt.subplots(figsize=(5.2, 4.6), dpi=120)
    ax.imshow(cm / np.maximum(cm.sum(axis=1, keepdims=True), 1), cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(
                j,
                i,
                str(cm[i, j]),
                ha="center",
                va="center",
                fontsize=8,
                color="black" if i != j else "white",
            )
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def evaluate_cli(args: argparse.Namespace) -> int:
    try:
        pkg = load_package(args.model, args.threads)
        metrics, predictions = evaluate(
            pkg, args.data, args.limit, args.batch_size, grounded=not args.ungrounded
        )
    except (PackageError, ValueError, OSError) as e:
        log.error(f"evaluate: {e}")
        return 1
    labels = pkg.manifest["labels"]
    print(
        f"model {pkg.id} ({pkg.kind}) on {args.data}: {metrics['n']} rows in {metrics['seconds']}s "
        f"({metrics['skipped']} rows without a label skipped)"
    )
    print(
        f"accuracy {metrics['accuracy']:.4f}  macro-F1 {metrics['macro_f1']:.4f}  forced marker {metrics['forced_marker']}"
    )
    print(
        f"quoted phrases in the input {metrics['quotes_grounded']:.4f} ({metrics['quotes']} quotes)  "
        f"ECE {metrics['ece']:.4f} (temperature {metrics['temperature']:.3g}, mean top score {metrics['mean_top_score']:.4f})"
    )
    print(f"{'label':<10} {'precision':>9} {'recall':>7} {'f1':>7} {'support':>8}")
    for name in labels:
        c = metrics["per_class"][name]
        print(f"{name:<10} {c['precision']:>9.4f} {c['recall']:>7.4f} {c['f1']:>7.4f} {c['support']:>8}")
    if args.predictions_out:
        with open(args.predictions_out, "w", encoding="utf-8") as f:
            for p in predictions:
                f.write(json.dumps(p, ensure_ascii=False) + "\n")
    if args.confusion_png:
        confusion_png(metrics, labels, args.confusion_png, f"{pkg.id} on {Path(args.data).name}")
    summary = {
        k: metrics[k]
        for k in (
            "model",
            "kind",
            "n",
            "skipped",
            "accuracy",
            "macro_f1",
            "quotes_grounded",
            "quotes",
            "ece",
            "forced_marker",
            "seconds",
            "data",
        )
    }
    print(json.dumps(summary))
    return 0
