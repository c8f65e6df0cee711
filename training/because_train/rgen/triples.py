"""Reasoning-generation triples {question, answer, reasoning}: the data stage 1 fine-tunes R-Gen on.

From a local JSONL file (offline: `../shared/data/reasoning/cose_train.jsonl`, CoS-E, BSD-3-Clause) or
from the hub with `hub:<name>` (the paper's `syvai/reasoning-gen`). Hub datasets name their columns in
different ways, so each field is taken from the first column that exists among a few usual names.
Every bad row stops the load with an error naming the file, the line and the problem.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from because_train.data import DataError, _read_jsonl
from because_train.provenance import REPO_ROOT


@dataclass(frozen=True)
class Triple:
    question: str
    answer: str
    reasoning: str


# Column names tried in order for each field when a hub dataset does not use ours.
COLUMNS: dict[str, tuple[str, ...]] = {
    "question": ("question", "prompt", "query", "instruction", "input", "problem"),
    "answer": ("answer", "final_answer", "response", "output", "solution", "label"),
    "reasoning": ("reasoning", "rationale", "explanation", "thinking", "reasoning_trace", "cot"),
}


def resolve_source(source: str) -> str:
    """Relative paths are relative to the repository root, as everywhere in the configs."""
    if source.startswith("hub:"):
        return source
    p = Path(source)
    return str(p if p.is_absolute() else (REPO_ROOT / p).resolve())


def column_map(columns: Iterable[str], where: str) -> dict[str, str]:
    """Which column holds which field; an error naming the columns when one cannot be found."""
    present = list(columns)
    mapping: dict[str, str] = {}
    for field, names in COLUMNS.items():
        found = next((n for n in names if n in present), None)
        if found is None:
            raise DataError(
                f"{where}: no column for '{field}' (tried {', '.join(names)}); columns: {', '.join(present)}"
            )
        mapping[field] = found
    return mapping


def _to_triple(record: Any, where: str, mapping: dict[str, str]) -> Triple:
    if not isinstance(record, dict):
        raise DataError(
            f"{where}: expected an object with question, answer, reasoning, got {type(record).__name__}"
        )
    values: dict[str, str] = {}
    for field, column in mapping.items():
        if column not in record or record[column] is None:
            raise DataError(f"{where}: missing field '{column}'")
        value = record[column]
        if not isinstance(value, str):
            raise DataError(f"{where}: '{column}' must be a string, got {type(value).__name__}")
        if not value.strip():
            raise DataError(f"{where}: empty '{column}'")
        values[field] = value.strip()
    return Triple(**values)


def _read_hub(name: str, split: str) -> tuple[dict[str, str], Iterable[tuple[str, Any]]]:
    import datasets  # only where a network exists

    ds = datasets.load_dataset(name, split=split)
    mapping = column_map(ds.column_names, f"{name}[{split}]")
    return mapping, ((f"{name}[{split}]:row {i}", record) for i, record in enumerate(ds))


def load_triples(source: str, limit: int = 0, split: str = "train") -> list[Triple]:
    """Triples from a JSONL file or `hub:<name>`; the first `limit` rows only when limit > 0."""
    source = resolve_source(source)
    if source.startswith("hub:"):
        mapping, records = _read_hub(source[4:], split)
    else:
        path = Path(source)
        if not path.is_file():
            raise DataError(f"{path}: no such file")
        if path.suffix.lower() not in (".jsonl", ".json"):
            raise DataError(f"{path}: unsupported file type '{path.suffix}'; triples are read from JSONL")
        mapping = {field: field for field in COLUMNS}
        records = _read_jsonl(path)
    triples: list[Triple] = []
    for where, record in records:
        triples.append(_to_triple(record, where, mapping))
        if limit and len(triples) >= limit:
            break
    if not triples:
        raise DataError(f"{source}: no rows")
    return triples
