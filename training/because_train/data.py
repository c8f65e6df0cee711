"""Loading labelled emotion rows from local files (JSONL, CSV, parquet) or the Hugging Face hub.

Every bad row stops the load with an error naming the file, the line and the problem: a silently
skipped row would change the data a model was trained on without anyone knowing.
"""

import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from because_train import LABELS


@dataclass(frozen=True)
class Row:
    text: str
    label: int  # index into LABELS


class DataError(ValueError):
    """A row or file that cannot be used; the message names where and what."""


def _parse_label(value: Any, where: str, labels: tuple[str, ...]) -> int:
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
        if v.lower() in labels:
            return labels.index(v.lower())
        raise DataError(
            f"{where}: unknown label {value!r}; allowed: {', '.join(labels)} or 0-{len(labels) - 1}"
        )
    raise DataError(f"{where}: label must be an integer or a label name, got {type(value).__name__}")


def _to_row(record: Any, where: str, labels: tuple[str, ...]) -> Row:
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected an object with 'text' and 'label', got {type(record).__name__}")
    for field in ("text", "label"):
        if field not in record or record[field] is None:
            raise DataError(f"{where}: missing field '{field}'")
    text = record["text"]
    if not isinstance(text, str):
        raise DataError(f"{where}: 'text' must be a string, got {type(text).__name__}")
    if not text.strip():
        raise DataError(f"{where}: empty text")
    return Row(text=text, label=_parse_label(record["label"], where, labels))


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


def load_rows(source: str, split: str = "train", labels: tuple[str, ...] = LABELS) -> list[Row]:
    """Rows from a local file, or from the hub when `source` is `hub:<name>`."""
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
    rows = [_to_row(record, where, labels) for where, record in records]
    if not rows:
        raise DataError(f"{source}: no rows")
    return rows


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    tmp.replace(path)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [record for _, record in _read_jsonl(path)]
