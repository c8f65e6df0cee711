import json

import pytest

from because_train.config import EMOTIONS
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
    rows = load_rows(path, labels=EMOTIONS)
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
        load_rows(write(tmp_path, "ok.jsonl", content), labels=EMOTIONS)
    assert problem in str(e.value)


def test_csv_and_its_errors(tmp_path):
    rows = load_rows(write(tmp_path, "d.csv", b'text,label\n"i am, happy",joy\nsad day,0\n'), labels=EMOTIONS)
    assert [(r.text, r.label) for r in rows] == [("i am, happy", 1), ("sad day", 0)]
    with pytest.raises(DataError, match=r"d2.csv:3: unknown label 'meh'"):
        load_rows(write(tmp_path, "d2.csv", b"text,label\nfine,1\nbad,meh\n"), labels=EMOTIONS)
    with pytest.raises(DataError, match="header must name 'text' and 'label'"):
        load_rows(write(tmp_path, "d3.csv", b"sentence,label\nfine,1\n"), labels=EMOTIONS)


def test_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"text": ["i love it", ""], "label": [2, 1]}), path)
    with pytest.raises(DataError, match=r"d.parquet:row 1: empty text"):
        load_rows(str(path), labels=EMOTIONS)


def test_missing_file_and_unknown_type(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_rows(str(tmp_path / "nope.jsonl"), labels=EMOTIONS)
    with pytest.raises(DataError, match="unsupported file type '.txt'"):
        load_rows(write(tmp_path, "x.txt", b"hi"), labels=EMOTIONS)


def test_shared_emotion_data_loads(shared_data):
    path = shared_data / "emotion" / "validation.jsonl"
    rows = load_rows(str(path), labels=EMOTIONS)
    assert len(rows) == len(path.read_text(encoding="utf-8").splitlines())
    assert json.dumps(sorted({r.label for r in rows})) == "[0, 1, 2, 3, 4, 5]"


def test_null_labels_are_skipped_and_counted_and_mapping_fills_them(tmp_path):
    from because_train.data import load_labelled

    path = write(
        tmp_path,
        "g.jsonl",
        b'{"text": "yay", "emotions": ["joy"], "label": 1}\n'
        b'{"text": "lol", "emotions": ["amusement"], "label": null}\n'
        b'{"text": "hmm", "emotions": ["neutral"], "label": null}\n'
        b'{"text": "ugh no", "emotions": ["annoyance", "sadness"], "label": null}\n'
        b'{"text": "grr", "emotions": ["annoyance", "anger"], "label": null}\n',
    )
    rows, counts = load_labelled(path, labels=EMOTIONS)
    assert [r.text for r in rows] == ["yay"] and counts.no_label == 4
    mapping = {"amusement": "joy", "annoyance": "anger", "anger": "anger", "sadness": "sadness"}
    rows, counts = load_labelled(path, mapping=mapping, labels=EMOTIONS)
    assert [(r.text, r.label, r.mapped) for r in rows] == [
        ("yay", 1, False),
        ("lol", 1, True),
        ("grr", 3, True),
    ]
    assert (counts.labelled, counts.mapped, counts.unmapped, counts.conflicting) == (1, 2, 1, 1)
    with pytest.raises(DataError, match="'annoyance' -> 'rage', which is not a label"):
        load_labelled(path, mapping={"annoyance": "rage"}, labels=EMOTIONS)
    # Strict loading (training files of one source without a mapping) still refuses a null label.
    with pytest.raises(DataError, match="g.jsonl:2: missing field 'label'"):
        load_rows(path, labels=EMOTIONS)


def test_data_stage_reads_several_sources_with_a_seeded_split(tmp_path):
    from because_train.config import load_config
    from because_train.data import read_jsonl
    from because_train.stages import data

    a = write(
        tmp_path, "a.jsonl", b'{"text": "i feel great", "label": 1}\n{"text": "so scared", "label": 4}\n'
    )
    av = write(tmp_path, "av.jsonl", b'{"text": "happy", "label": 1}\n{"text": "x", "label": null}\n')
    lines = [f'{{"text": "Line {i} !", "emotions": ["disgust"], "label": null}}' for i in range(200)]
    lines += [f'{{"text": "What? {i % 7}", "emotions": ["fear"], "label": 4}}' for i in range(100)]
    b = write(tmp_path, "b.jsonl", ("\n".join(lines) + "\n").encode())
    toml = tmp_path / "c.toml"
    toml.write_text(f"""
run_dir = "{tmp_path / "run"}"
[[data.sources]]
name = "tweets"
train = "{a}"
validation = "{av}"
[[data.sources]]
name = "films"
train = "{b}"
validation_share = 0.3
weight = 0.5
[data.sources.mapping]
disgust = "anger"
fear = "fear"
""")
    config = load_config(str(toml))
    out = data(config)
    train, val = read_jsonl(out / "train.jsonl"), read_jsonl(out / "validation.jsonl")
    films_val = [r for r in val if r["source"] == "films"]
    films_train = [r for r in train if r["source"] == "films"]
    # Validation keeps rated labels only; a text never sits on both sides of the split.
    assert films_val and all(r["label"] == "fear" for r in films_val)
    assert not {r["text"] for r in films_val} & {r["text"] for r in films_train}
    assert {r["label"] for r in films_train} == {"anger", "fear"}
    assert all(r["weight"] == 0.5 for r in films_train)
    assert [r["text"] for r in val if r["source"] == "tweets"] == ["happy"]
    assert read_jsonl(out / "validation-films.jsonl") == [
        {"text": r["text"], "label": r["label"]} for r in films_val
    ]
    counts = json.loads((out / "provenance.json").read_text())["settings"]["counts"]
    assert counts["tweets"]["validation"]["no_label"] == 1
    # The same seed gives the same split.
    again = data(config)
    assert read_jsonl(again / "validation.jsonl") == val
