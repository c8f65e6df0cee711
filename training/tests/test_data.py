import json

import pytest

from because_train.data import DataError, load_rows


def write(tmp_path, name, content: bytes):
    p = tmp_path / name
    p.write_bytes(content)
    return str(p)


def test_jsonl_rows_and_label_names(tmp_path):
    path = write(
        tmp_path,
        "ok.jsonl",
        b'{"text": "i feel great", "label": 1}\n{"text": "so scared", "label": "fear"}\n',
    )
    rows = load_rows(path)
    assert [(r.text, r.label) for r in rows] == [("i feel great", 1), ("so scared", 4)]


@pytest.mark.parametrize(
    "content, problem",
    [
        (b'{"text": "", "label": 1}\n', "ok.jsonl:1: empty text"),
        (
            b'{"text": "fine", "label": 1}\n{"text": "x", "label": 9}\n',
            "ok.jsonl:2: label 9 out of range 0-5",
        ),
        (b'{"text": "x", "label": "boredom"}\n', "ok.jsonl:1: unknown label 'boredom'"),
        (b'{"label": 2}\n', "ok.jsonl:1: missing field 'text'"),
        (b'{"text": "x"}\n', "ok.jsonl:1: missing field 'label'"),
        (
            b'{"text": "ok", "label": 0}\n{"text": "bad \xff byte", "label": 0}\n',
            "ok.jsonl:2: invalid UTF-8 at byte",
        ),
        (b'{"text": "ok", "label": 0\n', "ok.jsonl:1: invalid JSON"),
        (b'{"text": 5, "label": 0}\n', "ok.jsonl:1: 'text' must be a string"),
        (b'{"text": "a", "label": true}\n', "ok.jsonl:1: label must be an integer"),
        (b'{"text": "a", "label": 0}\n\n', "ok.jsonl:2: blank line"),
    ],
)
def test_bad_jsonl_rows_name_file_line_and_problem(tmp_path, content, problem):
    with pytest.raises(DataError) as e:
        load_rows(write(tmp_path, "ok.jsonl", content))
    assert problem in str(e.value)


def test_csv_and_its_errors(tmp_path):
    rows = load_rows(write(tmp_path, "d.csv", b'text,label\n"i am, happy",joy\nsad day,0\n'))
    assert [(r.text, r.label) for r in rows] == [("i am, happy", 1), ("sad day", 0)]
    with pytest.raises(DataError, match=r"d2.csv:3: unknown label 'meh'"):
        load_rows(write(tmp_path, "d2.csv", b"text,label\nfine,1\nbad,meh\n"))
    with pytest.raises(DataError, match="header must name 'text' and 'label'"):
        load_rows(write(tmp_path, "d3.csv", b"sentence,label\nfine,1\n"))


def test_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"text": ["i love it", ""], "label": [2, 1]}), path)
    with pytest.raises(DataError, match=r"d.parquet:row 1: empty text"):
        load_rows(str(path))


def test_missing_file_and_unknown_type(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_rows(str(tmp_path / "nope.jsonl"))
    with pytest.raises(DataError, match="unsupported file type '.txt'"):
        load_rows(write(tmp_path, "x.txt", b"hi"))


def test_shared_emotion_data_loads(shared_data):
    rows = load_rows(str(shared_data / "emotion" / "validation.jsonl"))
    assert len(rows) == 2000
    assert json.dumps(sorted({r.label for r in rows})) == "[0, 1, 2, 3, 4, 5]"
