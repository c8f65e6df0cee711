"""Reasoning-generation triples: loading, column mapping, and errors that name file, line and problem."""

import json
import sys
import types
from pathlib import Path

import pytest

from because_train.data import DataError
from because_train.rgen.triples import Triple, column_map, load_triples, resolve_source

from conftest import SHARED_DATA, shared_file

GOOD = {
    "question": "Where do you keep milk?\nChoices: A) fridge, B) oven",
    "answer": "fridge",
    "reasoning": "cold",
}


def write_lines(path: Path, lines: list[str | bytes]) -> Path:
    with open(path, "wb") as f:
        for line in lines:
            f.write((line if isinstance(line, bytes) else line.encode()) + b"\n")
    return path


def test_loads_cose_offline_default() -> None:
    path = shared_file("reasoning", "cose_train.jsonl")
    triples = load_triples("../shared/data/reasoning/cose_train.jsonl")  # relative to the repo root
    assert len(triples) == len(path.read_text(encoding="utf-8").splitlines())
    assert all(t.question and t.answer and t.reasoning for t in triples)
    assert triples[0].answer == "house"
    assert load_triples(str(path), limit=25) == triples[:25]


def test_strips_and_keeps_extra_fields(tmp_path: Path) -> None:
    record = {"question": "  q?  ", "answer": " a ", "reasoning": " because ", "id": 7}
    path = write_lines(tmp_path / "t.jsonl", [json.dumps(record)])
    assert load_triples(str(path)) == [Triple("q?", "a", "because")]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('{"question": "q", "answer": "a"}', "missing field 'reasoning'"),
        ('{"question": "q", "answer": null, "reasoning": "r"}', "missing field 'answer'"),
        ('{"question": "  ", "answer": "a", "reasoning": "r"}', "empty 'question'"),
        ('{"question": "q", "answer": 3, "reasoning": "r"}', "'answer' must be a string, got int"),
        ('["q", "a", "r"]', "expected an object"),
        ('{"question": "q", ', "invalid JSON"),
        ("", "blank line"),
        (b'{"question": "q\xff", "answer": "a", "reasoning": "r"}', "invalid UTF-8"),
    ],
)
def test_bad_row_names_file_line_and_problem(tmp_path: Path, line: str | bytes, problem: str) -> None:
    path = write_lines(tmp_path / "bad.jsonl", [json.dumps(GOOD), json.dumps(GOOD), line])
    with pytest.raises(DataError) as e:
        load_triples(str(path))
    assert f"{path}:3:" in str(e.value)
    assert problem in str(e.value)


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        load_triples(str(tmp_path / "missing.jsonl"))
    csv = tmp_path / "t.csv"
    csv.write_text("question,answer,reasoning\n")
    with pytest.raises(DataError, match="unsupported file type"):
        load_triples(str(csv))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DataError, match="no rows"):
        load_triples(str(empty))


def test_resolve_source() -> None:
    assert resolve_source("hub:syvai/reasoning-gen") == "hub:syvai/reasoning-gen"
    assert resolve_source("/abs/x.jsonl") == "/abs/x.jsonl"
    assert resolve_source("../shared/x.jsonl") == str((SHARED_DATA.parent / "x.jsonl").resolve())


def test_column_map_for_hub_datasets() -> None:
    assert column_map(["question", "answer", "reasoning"], "ds") == {
        "question": "question",
        "answer": "answer",
        "reasoning": "reasoning",
    }
    mapped = column_map(["prompt", "rationale", "response", "id"], "ds")
    assert mapped == {"question": "prompt", "answer": "response", "reasoning": "rationale"}
    with pytest.raises(DataError, match="ds: no column for 'reasoning'.*columns: question, answer"):
        column_map(["question", "answer"], "ds")


class FakeDataset(list):
    column_names = ["prompt", "response", "rationale"]


def test_hub_source_maps_columns_and_reports_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """`hub:<name>` goes through datasets.load_dataset; stubbed here, since there is no network."""
    rows = FakeDataset([{"prompt": "q1", "response": "a1", "rationale": "r1"}] * 3)
    calls: list[tuple[str, str]] = []

    def load_dataset(name: str, split: str) -> FakeDataset:
        calls.append((name, split))
        return rows

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    assert load_triples("hub:syvai/reasoning-gen", limit=2) == [Triple("q1", "a1", "r1")] * 2
    assert calls == [("syvai/reasoning-gen", "train")]

    rows.append({"prompt": "q", "response": "", "rationale": "r"})
    with pytest.raises(DataError, match=r"syvai/reasoning-gen\[train\]:row 3: empty 'response'"):
        load_triples("hub:syvai/reasoning-gen")
