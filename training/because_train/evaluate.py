"""Evaluate a model package on a split file, decoding the ONNX model exactly as the service does."""

import argparse
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from because_train.console import Progress
from because_train.data import load_labelled
from because_train.decode import Decoded, decode_batch
from because_train.long_text import TRUNCATE_MODES, Reading, aggregate_windows, read_text
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
    """(decoded, number of text tokens) per text, in input order, each text read as `start` reads it
    (its first max_input_tokens tokens). `grounded=False` lets quotes stray from the input (for
    measuring what grounding changes); `temperature` overrides the package's calibration."""
    read = predict_texts(pkg, texts, "start", batch_size, progress, grounded, temperature)
    return [(p.decoded[0], p.input_tokens) for p in read]


@dataclass
class TextPrediction:
    """One text's answer, as the service gives it: a text read in one window is that window's answer
    unchanged; one read in several is their aggregate (long_text.aggregate_windows)."""

    reading: Reading
    decoded: list[Decoded]  # per window, in text order
    input_tokens: int  # the text's tokens, encoded whole (before any cut)
    scores: np.ndarray
    label: int
    deciding: int  # the window whose reasoning is the answer's

    @property
    def reasoning_ids(self) -> list[int]:
        return self.decoded[self.deciding].reasoning_ids

    @property
    def reasoning_tokens(self) -> int:
        """Over all windows, as the service's `usage.reasoning_tokens`."""
        return sum(len(d.reasoning_ids) for d in self.decoded)

    @property
    def forced(self) -> bool:
        """A window ran out of its reasoning budget."""
        return any(d.forced for d in self.decoded)

    @property
    def label_logits(self) -> np.ndarray | None:
        """The label logits of a text read in one window (an aggregate of several has none)."""
        return self.decoded[0].label_logits if len(self.decoded) == 1 else None


def predict_texts(
    pkg: Package,
    texts: list[str],
    truncate: str = "start",
    batch_size: int = 64,
    progress: bool = False,
    grounded: bool = True,
    temperature: float | None = None,
) -> list[TextPrediction]:
    """Every text read as `truncate` says (long_text.read_text), every window decoded, the answers of
    a text's windows aggregated; in input order."""
    if truncate not in TRUNCATE_MODES:
        raise ValueError(f"truncate {truncate!r}: expected one of {', '.join(TRUNCATE_MODES)}")
    spec, m = pkg.spec, pkg.manifest
    limit = m["limits"]["max_input_tokens"]
    text_ids = [spec.text_ids(t) for t in texts]
    readings: list[Reading] = []
    for i, (t, ids) in enumerate(zip(texts, text_ids, strict=True)):
        try:
            readings.append(read_text(t, ids, limit, truncate, spec.text_ids))
        except ValueError as e:
            raise ValueError(f"text {i}: {e}") from None
    windows = [w for r in readings for w in r.windows]
    unit = "window" if truncate == "windows" else "row"
    decoded = decode_windows(pkg, windows, batch_size, progress, grounded, temperature, unit)
    out: list[TextPrediction] = []
    at = 0
    for reading, ids in zip(readings, text_ids, strict=True):
        mine = decoded[at : at + len(reading.windows)]
        at += len(reading.windows)
        if len(mine) == 1:
            scores, label, deciding = mine[0].scores, mine[0].label, 0
        else:
            agg = aggregate_windows([d.scores for d in mine], [len(w) for w in reading.windows])
            scores, label, deciding = np.array(agg.scores), agg.label_index, agg.deciding_window
        out.append(TextPrediction(reading, mine, len(ids), scores, label, deciding))
    return out


def decode_windows(
    pkg: Package,
    windows: list[list[int]],
    batch_size: int = 64,
    progress: bool = False,
    grounded: bool = True,
    temperature: float | None = None,
    unit: str = "row",
) -> list[Decoded]:
    """Each window's text ids between the template's, decoded (shortest prompts batched together);
    in input order."""
    spec, m = pkg.spec, pkg.manifest
    prompts = [spec.prompt_ids(ids) for ids in windows]
    # KV slots per row for a gqa graph: the prompt (the marker too, qa), the reasoning, the marker.
    longest = max((len(p) for p in prompts), default=1)
    forward = pkg.forward(capacity=longest + m["limits"]["max_reasoning_tokens"] + 3)
    sources = [spec.source_bytes(ids) for ids in windows]
    priors, gates, temps = pkg.fusion(sources)
    if temperature is not None:
        temps = [temperature] * len(windows)
    order = sorted(range(len(windows)), key=lambda i: len(prompts[i]))
    out: dict[int, Decoded] = {}
    t0 = time.time()
    meter = Progress(log, "evaluate", len(windows), unit=unit, enabled=progress)
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
            temperature=[temps[i] for i in idx],
            scores_at_first_label=pkg.scores_at_first_label,
            priors=[priors[i] for i in idx] if priors is not None else None,
        )
        for i, d in zip(idx, decoded, strict=True):
            d.gate = gates[i]
            out[i] = d
        meter.update(len(out))
        meter.line(f"evaluate: {len(out)}/{len(windows)} {unit}s ({time.time() - t0:.0f}s)")
    meter.close()
    return [out[i] for i in range(len(windows))]


def reasoning_text(pkg: Package, d: Decoded | TextPrediction) -> str:
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
    truncate: str = "start",
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Metrics and per-row predictions on the rows of `data` that have a label (rows whose label
    is null are skipped and counted in `skipped`). A row over the package's max_input_tokens is
    read as `truncate` says (docs/long-texts.md): its first tokens (`start`), its last (`end`), or
    all of it in windows (`windows`)."""
    labels = pkg.manifest["labels"]
    rows, counts = load_labelled(data, labels=tuple(labels))
    if limit:
        rows = rows[:limit]
    t0 = time.time()
    results = predict_texts(pkg, [r.text for r in rows], truncate, batch_size, progress, grounded)
    seconds = time.time() - t0
    metrics = classification_metrics([r.label for r in rows], [p.label for p in results], labels)
    reasonings = [reasoning_text(pkg, p) for p in results]
    quotes, in_input = grounding_counts(pkg, [r.text for r in rows], reasonings)
    correct = [p.label == r.label for r, p in zip(rows, results, strict=True)]
    metrics.update(
        model=pkg.id,
        kind=pkg.kind,
        graph=pkg.graph,
        data=data,
        skipped=counts.skipped,
        seconds=round(seconds, 2),
        forced_marker=sum(p.forced for p in results),
        quotes=quotes,
        quotes_grounded=in_input / quotes if quotes else 1.0,
        mean_top_score=float(sum(float(p.scores.max()) for p in results) / max(1, len(results))),
        ece=expected_calibration_error([float(p.scores.max()) for p in results], correct),
        temperature=(pkg.manifest.get("calibration") or {}).get("temperatures") or pkg.temperature,
        prior_weight=_prior_weight(pkg),
        truncate=truncate,
        long_rows=sum(p.input_tokens > pkg.manifest["limits"]["max_input_tokens"] for p in results),
        windows=sum(len(p.decoded) for p in results),
        input_tokens_dropped=sum(p.reading.dropped for p in results),
    )
    predictions = [
        {
            "text": r.text,
            "label": labels[r.label],
            "pred": labels[p.label],
            "reasoning": reasoning,
            "scores": {name: float(s) for name, s in zip(labels, p.scores, strict=True)},
            "input_tokens": p.input_tokens,
            "reasoning_tokens": p.reasoning_tokens,
            "label_logits": [float(x) for x in p.label_logits] if p.label_logits is not None else None,
            **({"registers": p.decoded[0].gate} if p.decoded[0].gate is not None else {}),
            "input_tokens_dropped": p.reading.dropped,
            "windows": len(p.decoded),
            **({"reasoning_window": _reasoning_window(p)} if truncate == "windows" else {}),
        }
        for r, p, reasoning in zip(rows, results, reasonings, strict=True)
    ]
    return metrics, predictions


def _prior_weight(pkg: Package) -> float | dict[str, float] | None:
    """The fusion weight: one number, or one per register; None without a prior."""
    if pkg.prior is None:
        return None
    if pkg.prior.registers is None:
        return pkg.prior.weight
    assert pkg.prior.weights is not None
    return dict(zip(pkg.prior.registers, pkg.prior.weights, strict=True))


def _reasoning_window(p: TextPrediction) -> dict[str, int]:
    """The deciding window's index and code point span, as the service's `reasoning_window`."""
    assert p.reading.spans is not None
    span = p.reading.spans[p.deciding]
    return {"index": p.deciding, "start": span.start, "end": span.end}


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


def _numbers(v: float | dict[str, float]) -> str:
    """A number, or one per register ("dair 1.44, xed 2.49")."""
    if isinstance(v, dict):
        return ", ".join(f"{k} {x:.3g}" for k, x in v.items())
    return f"{v:.3g}"


def evaluate_cli(args: argparse.Namespace) -> int:
    try:
        pkg = load_package(args.model, args.threads, args.graph)
        if args.no_prior:
            pkg.drop_prior()
        metrics, predictions = evaluate(
            pkg, args.data, args.limit, args.batch_size, grounded=not args.ungrounded, truncate=args.truncate
        )
    except (PackageError, ValueError, OSError) as e:
        log.error(f"evaluate: {e}")
        return 1
    labels = pkg.manifest["labels"]
    print(
        f"model {pkg.id} ({pkg.kind}, graph {pkg.graph}) on {args.data}: {metrics['n']} rows in {metrics['seconds']}s "
        f"({metrics['skipped']} rows without a label skipped)"
    )
    if args.truncate != "start":
        print(
            f"truncate {args.truncate}: {metrics['long_rows']} rows over {pkg.manifest['limits']['max_input_tokens']} "
            f"tokens; {metrics['windows']} windows read, {metrics['input_tokens_dropped']} tokens dropped"
        )
    print(
        f"accuracy {metrics['accuracy']:.4f}  macro-F1 {metrics['macro_f1']:.4f}  forced marker {metrics['forced_marker']}"
    )
    print(
        f"quoted phrases in the input {metrics['quotes_grounded']:.4f} ({metrics['quotes']} quotes)  "
        f"ECE {metrics['ece']:.4f} (temperature {_numbers(metrics['temperature'])}, mean top score {metrics['mean_top_score']:.4f})"
    )
    if pkg.prior:
        print(
            f"lexical prior: weight {_numbers(metrics['prior_weight'])}, {pkg.prior.terms} terms (--no-prior leaves it out)"
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
            "graph",
            "n",
            "skipped",
            "accuracy",
            "macro_f1",
            "quotes_grounded",
            "quotes",
            "ece",
            "forced_marker",
            "prior_weight",
            "seconds",
            "data",
            "truncate",
        )
    }
    print(json.dumps(summary))
    return 0
