"""Stages 0-2 of the pipeline: data, rgen (stage 1) and augment (stage 2); each resumable."""

import dataclasses
import hashlib
import logging
import time
from pathlib import Path
from typing import Any

from because_train.config import Config, SourceConfig, as_dict
from because_train.console import Progress
from because_train.data import DataError, LoadCounts, Row, load_labelled, rated_only, read_jsonl, write_jsonl
from because_train.normalize import lower_alnum_v1, normalize
from because_train.provenance import write_provenance
from because_train.rgen import ReasoningGenerator, RgenItem

log = logging.getLogger(__name__)

SPLITS = ("train", "validation")


def _inputs(config: Config) -> dict[str, str | Path]:
    out: dict[str, str | Path] = {}
    for src in config.data.all_sources():
        for split in SPLITS:
            f = getattr(src, split)
            if f and not f.startswith("hub:"):
                out[f"{src.name}_{split}"] = config.path(f)
    return out


def held_out(text: str, seed: int, share: float) -> bool:
    """Whether a row of a source without its own validation file goes to validation: a seeded hash
    of its normalised text, so that repeated lines ("What?") never sit on both sides."""
    digest = hashlib.sha256(f"{seed}:{lower_alnum_v1(text)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def check_mapping(config: Config, src: SourceConfig, where: str) -> None:
    """Every target of a source's `mapping` is one of `labels.names`; else stop, naming the key."""
    names = config.labels.names
    for fine, target in src.mapping.items():
        if not isinstance(target, str) or target.lower() not in [n.lower() for n in names]:
            raise SystemExit(
                f"{where}.mapping.{fine} ({src.name}): {target!r} is not one of labels.names "
                f"({', '.join(names)}); map {fine!r} onto one of them, or leave it out to skip its rows"
            )


def source_rows(config: Config, src: SourceConfig) -> dict[str, tuple[list[Row], dict[str, int]]]:
    """Training rows (given labels and mapped ones) and validation rows (given labels, or emotions that
    are a label's own name: the metrics are on rows a rater labelled with one of the labels) of one
    source, with counts."""
    if not src.train:
        raise SystemExit(f"data.sources: {src.name!r} has no train file")
    train_file = str(config.path(src.train))
    labels = config.labels.names
    try:
        rows, counts = load_labelled(train_file, "train", labels=labels, mapping=src.mapping)
        if src.validation:
            val, vcounts = load_labelled(
                str(config.path(src.validation)), "validation", labels=labels, mapping=rated_only(src.mapping)
            )
        else:
            val = [r for r in rows if not r.mapped and held_out(r.text, config.seed, src.validation_share)]
            rows = [r for r in rows if not held_out(r.text, config.seed, src.validation_share)]
            vcounts = LoadCounts(labelled=len(val))
            # What training keeps after the split; the skipped counts are of the whole file.
            counts.labelled = sum(not r.mapped for r in rows)
            counts.mapped = sum(r.mapped for r in rows)
    except DataError as e:
        raise SystemExit(f"data: {src.name}: {e}") from None
    if src.limit:
        rows = rows[: src.limit]
    return {
        "train": (rows, {**dataclasses.asdict(counts), "kept": len(rows)}),
        "validation": (val, {**dataclasses.asdict(vcounts), "kept": len(val)}),
    }


def data(config: Config) -> Path:
    out = config.run / "data"
    names = config.labels.names
    per_source: dict[str, dict[str, dict[str, int]]] = {}
    records: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    sources = config.data.all_sources()
    for i, src in enumerate(sources):
        check_mapping(config, src, f"data.sources[{i}]")
    for src in sources:
        loaded = source_rows(config, src)
        per_source[src.name] = {}
        for split in SPLITS:
            rows, counts = loaded[split]
            records[split] += [
                {
                    "key": f"{split}:{src.name}:{i}",
                    "text": r.text,
                    "label": names[r.label],
                    "source": src.name,
                    "weight": src.weight,
                }
                for i, r in enumerate(rows)
            ]
            per_source[src.name][split] = counts
            log.info(
                f"data: {src.name} {split}: {len(rows)} rows ({counts['labelled']} labelled, "
                f"{counts['mapped']} mapped; skipped {counts['no_label']} without a label, "
                f"{counts['unmapped']} with an unmapped emotion, {counts['conflicting']} conflicting)"
            )
            if split == "validation":
                write_jsonl(
                    out / f"validation-{src.name}.jsonl",
                    ({"text": r.text, "label": names[r.label]} for r in rows),
                )
    for split in SPLITS:
        write_jsonl(out / f"{split}.jsonl", records[split])
        log.info(f"data: {split}: {len(records[split])} rows")
    missing = sorted(set(names) - {r["label"] for r in records["train"]}, key=names.index)
    if missing:
        # Not an error (a smoke run may cut rows), but a label without a row cannot be learned.
        log.warning(f"data: no training row has the label(s) {', '.join(missing)} (labels.names)")
    settings = {**as_dict(config.data), "counts": per_source, "seed": config.seed}
    write_provenance(out / "provenance.json", "data", _inputs(config), settings)
    return out


def _items(config: Config, split: str) -> list[RgenItem]:
    """The rows of a split as R-Gen items; the label as the reasoning writes it (`labels.texts`)."""
    written = dict(zip(config.labels.names, config.labels.written, strict=True))
    items = []
    for r in read_jsonl(config.run / "data" / f"{split}.jsonl"):
        if r["label"] not in written:
            raise SystemExit(
                f"rgen: {split} row {r['key']} has the label {r['label']!r}, which is not one of labels.names "
                f"({', '.join(config.labels.names)}); the data stage ran with another label set: rerun it"
            )
        items.append(RgenItem(r["key"], normalize(r["text"], config.model.normalize), written[r["label"]]))
    return items


def make_generator(config: Config, train_items: list[RgenItem]) -> ReasoningGenerator:
    backend = config.rgen.backend
    if backend == "evidence":
        from because_train.rgen.evidence import EvidenceReasoningGenerator

        labels = config.labels
        none = labels.written[labels.names.index(labels.none)] if labels.none else ""
        gen = EvidenceReasoningGenerator(config.rgen.evidence, config.seed, labels.written, none)
        t = time.time()
        gen.fit(train_items)
        log.info(
            f"rgen: evidence teachers fitted in {time.time() - t:.0f}s, cross-fit accuracy {gen.stats['teacher_cross_fit_accuracy']:.4f}"
        )
        return gen
    if backend == "llm":
        from because_train.rgen.llm import LlmReasoningGenerator

        llm = LlmReasoningGenerator(config.rgen.llm, config.seed, config.run / "rgen" / "llm")
        llm.prepare()
        return llm
    if backend == "openai":
        from because_train.rgen.openai_compat import OpenAIReasoningGenerator

        return OpenAIReasoningGenerator(
            config.rgen.openai, config.seed, config.run / "rgen" / "openai-cache.jsonl"
        )
    raise SystemExit(f"rgen.backend: unknown backend {backend!r}; choose evidence, llm or openai")


def rgen(config: Config) -> Path:
    out = config.run / "rgen"
    todo = [s for s in SPLITS if not (out / f"{s}.jsonl").exists()]
    if not todo:
        log.info("rgen: outputs exist, skipping (delete training/runs/<name>/rgen to redo)")
        return out
    train_items = _items(config, "train")
    gen = make_generator(config, train_items)
    for split in todo:
        items = train_items if split == "train" else _items(config, split)
        reasonings: list[str] = []
        t = time.time()
        with Progress(log, f"rgen: {split}", len(items), unit="row") as meter:
            for s in range(0, len(items), 1000):
                reasonings += gen.generate(items[s : s + 1000])
                meter.update(len(reasonings))
                meter.line(f"rgen: {split} {len(reasonings)}/{len(items)} ({time.time() - t:.0f}s)")
        write_jsonl(
            out / f"{split}.jsonl",
            ({"key": it.key, "reasoning": r} for it, r in zip(items, reasonings, strict=True)),
        )
    stats = getattr(gen, "stats", {})
    write_provenance(
        out / "provenance.json",
        "rgen",
        {s: config.run / "data" / f"{s}.jsonl" for s in SPLITS},
        {
            "backend": config.rgen.backend,
            "settings": as_dict(config.rgen),
            "seed": config.seed,
            "stats": stats,
        },
    )
    return out


def augment(config: Config) -> Path:
    out = config.run / "augmented"
    for split in SPLITS:
        rows = read_jsonl(config.run / "data" / f"{split}.jsonl")
        reasons = {r["key"]: r["reasoning"] for r in read_jsonl(config.run / "rgen" / f"{split}.jsonl")}
        missing = [r["key"] for r in rows if r["key"] not in reasons]
        if missing:
            raise SystemExit(
                f"augment: {len(missing)} {split} rows have no reasoning (first: {missing[0]}); rerun rgen"
            )
        write_jsonl(
            out / f"{split}.jsonl",
            (
                {
                    "text": r["text"],
                    "reasoning": reasons[r["key"]],
                    "label": r["label"],
                    "source": r.get("source", "data"),
                    "weight": r.get("weight", 1.0),
                }
                for r in rows
            ),
        )
        log.info(f"augment: {split}: {len(rows)} rows")
    inputs: dict[str, str | Path] = {}
    for s in SPLITS:
        inputs[f"data_{s}"] = config.run / "data" / f"{s}.jsonl"
        inputs[f"rgen_{s}"] = config.run / "rgen" / f"{s}.jsonl"
    write_provenance(out / "provenance.json", "augment", inputs, {"rgen": config.rgen.backend})
    return out
