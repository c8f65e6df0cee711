"""Stages 0-2 of the pipeline: data, rgen (stage 1) and augment (stage 2); each resumable."""

import sys
import time
from pathlib import Path

from because_train import LABELS
from because_train.config import Config, as_dict
from because_train.data import load_rows, read_jsonl, write_jsonl
from because_train.normalize import lower_alnum_v1
from because_train.provenance import write_provenance
from because_train.rgen import ReasoningGenerator, RgenItem

SPLITS = ("train", "validation")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _inputs(config: Config) -> dict[str, str | Path]:
    return {
        s: config.path(getattr(config.data, s))
        for s in SPLITS
        if not getattr(config.data, s).startswith("hub:")
    }


def data(config: Config) -> Path:
    out = config.run / "data"
    for split in SPLITS:
        rows = load_rows(str(config.path(getattr(config.data, split))), split)
        if split == "train" and config.data.limit:
            rows = rows[: config.data.limit]
        write_jsonl(
            out / f"{split}.jsonl",
            ({"key": f"{split}:{i}", "text": r.text, "label": LABELS[r.label]} for i, r in enumerate(rows)),
        )
        log(f"data: {split}: {len(rows)} rows")
    write_provenance(out / "provenance.json", "data", _inputs(config), as_dict(config.data))
    return out


def _items(config: Config, split: str) -> list[RgenItem]:
    return [
        RgenItem(r["key"], lower_alnum_v1(r["text"]), r["label"])
        for r in read_jsonl(config.run / "data" / f"{split}.jsonl")
    ]


def make_generator(config: Config, train_items: list[RgenItem]) -> ReasoningGenerator:
    backend = config.rgen.backend
    if backend == "evidence":
        from because_train.rgen.evidence import EvidenceReasoningGenerator

        gen = EvidenceReasoningGenerator(config.rgen.evidence, config.seed, LABELS)
        t = time.time()
        gen.fit(train_items)
        log(
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
        log("rgen: outputs exist, skipping (delete training/runs/<name>/rgen to redo)")
        return out
    train_items = _items(config, "train")
    gen = make_generator(config, train_items)
    for split in todo:
        items = train_items if split == "train" else _items(config, split)
        reasonings: list[str] = []
        t = time.time()
        for s in range(0, len(items), 1000):
            reasonings += gen.generate(items[s : s + 1000])
            log(f"rgen: {split} {len(reasonings)}/{len(items)} ({time.time() - t:.0f}s)")
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
            ({"text": r["text"], "reasoning": reasons[r["key"]], "label": r["label"]} for r in rows),
        )
        log(f"augment: {split}: {len(rows)} rows")
    inputs: dict[str, str | Path] = {}
    for s in SPLITS:
        inputs[f"data_{s}"] = config.run / "data" / f"{s}.jsonl"
        inputs[f"rgen_{s}"] = config.run / "rgen" / f"{s}.jsonl"
    write_provenance(out / "provenance.json", "augment", inputs, {"rgen": config.rgen.backend})
    return out
