"""Evaluate a model package on a split file, decoding the ONNX model exactly as the service does."""

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from because_train.data import load_rows
from because_train.decode import Decoded, decode_batch
from because_train.metrics import classification_metrics
from because_train.package import Package, PackageError, load_package


def predict(
    pkg: Package, texts: list[str], batch_size: int = 64, progress: bool = False
) -> list[tuple[Decoded, int]]:
    """(decoded, number of text tokens) per text, in input order."""
    spec, m = pkg.spec, pkg.manifest
    forward = pkg.forward()
    text_ids = [spec.text_ids(t) for t in texts]
    limit = m["limits"]["max_input_tokens"]
    prompts = [spec.prompt_ids(ids[:limit]) for ids in text_ids]
    order = sorted(range(len(texts)), key=lambda i: len(prompts[i]))
    out: dict[int, Decoded] = {}
    t0 = time.time()
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
        )
        out.update(zip(idx, decoded, strict=True))
        if progress:
            print(
                f"evaluate: {len(out)}/{len(texts)} rows ({time.time() - t0:.0f}s)",
                file=sys.stderr,
                flush=True,
            )
    return [(out[i], len(text_ids[i])) for i in range(len(texts))]


def reasoning_text(pkg: Package, d: Decoded) -> str:
    return pkg.spec.tokenizer.decode(d.reasoning_ids, skip_special_tokens=False).strip()


def evaluate(
    pkg: Package, data: str, limit: int = 0, batch_size: int = 64, progress: bool = True
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    rows = load_rows(data, labels=tuple(pkg.manifest["labels"]))
    if limit:
        rows = rows[:limit]
    t0 = time.time()
    results = predict(pkg, [r.text for r in rows], batch_size, progress)
    seconds = time.time() - t0
    labels = pkg.manifest["labels"]
    metrics = classification_metrics([r.label for r in rows], [d.label for d, _ in results], labels)
    metrics.update(
        model=pkg.id,
        kind=pkg.kind,
        data=data,
        seconds=round(seconds, 2),
        forced_marker=sum(d.forced for d, _ in results),
    )
    predictions = [
        {
            "text": r.text,
            "label": labels[r.label],
            "pred": labels[d.label],
            "reasoning": reasoning_text(pkg, d),
            "scores": {name: float(s) for name, s in zip(labels, d.scores, strict=True)},
            "input_tokens": n,
            "reasoning_tokens": len(d.reasoning_ids),
        }
        for r, (d, n) in zip(rows, results, strict=True)
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
        metrics, predictions = evaluate(pkg, args.data, args.limit, args.batch_size)
    except (PackageError, ValueError, OSError) as e:
        print(f"evaluate: {e}", file=sys.stderr)
        return 1
    labels = pkg.manifest["labels"]
    print(f"model {pkg.id} ({pkg.kind}) on {args.data}: {metrics['n']} rows in {metrics['seconds']}s")
    print(
        f"accuracy {metrics['accuracy']:.4f}  macro-F1 {metrics['macro_f1']:.4f}  forced marker {metrics['forced_marker']}"
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
        for k in ("model", "kind", "n", "accuracy", "macro_f1", "forced_marker", "seconds", "data")
    }
    print(json.dumps(summary))
    return 0
