"""Loading labelled emotion rows from local files (JSONL, CSV, parquet) or the Hugging Face hub.

Every bad row stops the load with an error naming the file, the line and the problem: a silently
skipped row would change the data a model was trained on without anyone knowing.
"""

import csv
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Row:
    text: str
    label: int  # index into the label set (`labels.names`)
    mapped: bool = False  # the label came from the row's fine emotions through a mapping onto another name


@dataclass
class LoadCounts:
    """What a load kept and what it left out, and why: a skipped row is counted, never silent."""

    labelled: int = 0  # a label given, or emotions that are all the label's own name
    mapped: int = 0
    no_label: int = 0  # `label` null and no mapping given (or no `emotions`)
    unmapped: int = 0  # an emotion the mapping does not cover
    conflicting: int = 0  # emotions that map onto different labels

    @property
    def kept(self) -> int:
        return self.labelled + self.mapped

    @property
    def skipped(self) -> int:
        return self.no_label + self.unmapped + self.conflicting


class DataError(ValueError):
    """A row or file that cannot be used; the message names where and what."""


def _parse_label(value: Any, where: str, labels: Sequence[str]) -> int:
    if isinstance(value, bool):
        raise DataError(f"{where}: label must be an integer 0-{len(labels) - 1} or a name, got {value!r}")
    if isinstance(value, int):
        if 0 <= value < len(labels):
            return value
        raise DataError(f"{where}: label {value} out of range 0-{len(labels) - 1}")
    if isinstance(value, str):
        v = value.strip()
        if v.lstrip("-").isdigit():
            return _parse_label(int(v), where, labels)
        lowered = [name.lower() for name in labels]  # names are unique case-insensitively (config.py)
        if v.lower() in lowered:
            return lowered.index(v.lower())
        raise DataError(
            f"{where}: unknown label {value!r}; allowed: {', '.join(labels)} or 0-{len(labels) - 1}"
        )
    raise DataError(f"{where}: label must be an integer or a label name, got {type(value).__name__}")


def _to_row(
    record: Any,
    where: str,
    labels: Sequence[str],
    mapping: dict[str, str] | None = None,
    counts: LoadCounts | None = None,
) -> Row | None:
    """The row, or None for a row without a label (counted in `counts`); None is only possible
    where `counts` is given, so that strict callers still get an error."""
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected an object with 'text' and 'label', got {type(record).__name__}")
    for field in ("text", "label"):
        if field not in record or (record[field] is None and counts is None):
            raise DataError(f"{where}: missing field '{field}'")
    text = record["text"]
    if not isinstance(text, str):
        raise DataError(f"{where}: 'text' must be a string, got {type(text).__name__}")
    if not text.strip():
        raise DataError(f"{where}: empty text")
    if record["label"] is not None:
        if counts is not None:
            counts.labelled += 1
        return Row(text=text, label=_parse_label(record["label"], where, labels))
    assert counts is not None
    emotions = record.get("emotions")
    if not mapping or not isinstance(emotions, list) or not emotions:
        counts.no_label += 1
        return None
    if any(not isinstance(e, str) or e not in mapping for e in emotions):
        counts.unmapped += 1
        return None
    targets = {mapping[e].lower() for e in emotions}
    if len(targets) != 1:
        counts.conflicting += 1
        return None
    # Emotions that are the label's own name ("neutral" -> "neutral") are a rating with that label, not
    # a grouping's guess: such a row counts as labelled, and may be a validation row.
    rated = all(e.lower() == mapping[e].lower() for e in emotions)
    if rated:
        counts.labelled += 1
    else:
        counts.mapped += 1
    return Row(text=text, label=_parse_label(targets.pop(), where, labels), mapped=not rated)


def rated_only(mapping: dict[str, str]) -> dict[str, str]:
    """The entries of a mapping that map an emotion onto the label of the same name: what a validation
    file may use (its metrics are on rows a rater labelled with one of the labels)."""
    return {fine: target for fine, target in mapping.items() if fine.lower() == target.lower()}


def _read_jsonl(path: Path) -> Iterable[tuple[str, Any]]:
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            where = f"{path}:{lineno}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"{where}: invalid UTF-8 at byte {e.start}") from None
            if not line.strip():
                raise DataError(f"{where}: blank line")
            try:
                yield where, json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{where}: invalid JSON ({e.msg} at column {e.colno})") from None


def _read_csv(path: Path) -> Iterable[tuple[str, Any]]:
    try:
        content = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: invalid UTF-8 at byte {e.start}") from None
    reader = csv.DictReader(content.splitlines())
    if reader.fieldnames is None or not {"text", "label"} <= set(reader.fieldnames):
        raise DataError(f"{path}:1: the header must name 'text' and 'label' columns, got {reader.fieldnames}")
    for record in reader:
        yield f"{path}:{reader.line_num}", record


def _read_parquet(path: Path) -> Iterable[tuple[str, Any]]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    missing = {"text", "label"} - set(table.column_names)
    if missing:
        raise DataError(f"{path}: missing column(s) {sorted(missing)}")
    for i, record in enumerate(table.select(["text", "label"]).to_pylist()):
        yield f"{path}:row {i}", record


def _read_hub(name: str, split: str) -> Iterable[tuple[str, Any]]:
    import datasets  # only where a network exists

    for i, record in enumerate(datasets.load_dataset(name, split=split)):
        yield f"{name}[{split}]:row {i}", record


READERS = {".jsonl": _read_jsonl, ".json": _read_jsonl, ".csv": _read_csv, ".parquet": _read_parquet}


def load_rows(source: str, split: str = "train", *, labels: Sequence[str]) -> list[Row]:
    """Rows from a local file, or from the hub when `source` is `hub:<name>`; every row must have a label."""
    rows = [row for where, record in _records(source, split) if (row := _to_row(record, where, labels))]
    if not rows:
        raise DataError(f"{source}: no rows")
    return rows


def load_labelled(
    source: str,
    split: str = "train",
    *,
    labels: Sequence[str],
    mapping: dict[str, str] | None = None,
) -> tuple[list[Row], LoadCounts]:
    """Rows with a label (given, or through `mapping` from the row's `emotions`), and the counts of
    what was kept and skipped. Rows whose `label` is null are skipped, not errors."""
    lowered = [name.lower() for name in labels]
    for fine, target in (mapping or {}).items():
        if not isinstance(target, str) or target.lower() not in lowered:
            raise DataError(
                f"mapping: {fine!r} -> {target!r}, which is not a label; allowed: {', '.join(labels)}"
            )
    counts = LoadCounts()
    rows = [
        row
        for where, record in _records(source, split)
        if (row := _to_row(record, where, labels, mapping, counts))
    ]
    if not rows:
        raise DataError(f"{source}: no rows with a label ({counts.skipped} skipped)")
    return rows, counts


def _records(source: str, split: str) -> Iterable[tuple[str, Any]]:
    if source.startswith("hub:"):
        records = _read_hub(source[4:], split)
    else:
        path = Path(source)
        if not path.is_file():
            raise DataError(f"{path}: no such file")
        reader = READERS.get(path.suffix.lower())
        if reader is None:
            raise DataError(f"{path}: unsupported file type '{path.suffix}'; use one of {sorted(READERS)}")
        records = reader(path)
    return records


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    tmp.replace(path)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [record for _, record in _read_jsonl(path)]
