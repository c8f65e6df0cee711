"""The label set comes from the config (`[labels]`): validated at load, read by every stage, recorded
in the package, and read back from the package by `evaluate`. Made-up label sets, made-up rows."""

import json
import re
from pathlib import Path

import pytest
from test_pipeline import run_cli

from because_train.config import EMOTIONS, EvidenceConfig, load_config
from because_train.rgen import RgenItem
from because_train.rgen.evidence import NONE, EvidenceReasoningGenerator, render_none

TICKETS = ["question", "complaint", "praise"]
NOUNS = ["printer", "invoice", "app", "delivery", "screen", "account", "order", "manual", "parcel", "update"]
SHAPES = {
    "question": "how do i reset the {n} before {d}",
    "complaint": "the {n} is broken again and i am annoyed on {d}",
    "praise": "great {n} thank you so much for {d}",
    "neutral": "the {n} arrives on {d} at noon",
}
DAYS = ["monday", "tuesday", "friday"]


def ticket_rows(labels: list[str], per_label: int, offset: int = 0) -> list[dict[str, str]]:
    """`per_label` rows of each label, texts varied by noun and day."""
    rows = []
    for k in range(offset, offset + per_label):
        for label in labels:
            text = SHAPES[label].format(n=NOUNS[k % len(NOUNS)], d=DAYS[k % len(DAYS)])
            rows.append({"text": text, "label": label})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# --- the config ---------------------------------------------------------------------------------


def test_defaults_are_the_six_emotions_with_no_none_label() -> None:
    labels = load_config(None).labels
    assert labels.names == list(EMOTIONS) and labels.written == list(EMOTIONS) and labels.none == ""


def test_a_label_set_with_texts_and_a_none_label_loads() -> None:
    labels = load_config(
        None,
        {
            "labels.names": ["Question", "complaint", "neutral"],
            "labels.texts": ["a question", "a complaint", "neutral"],
            "labels.none": "neutral",
        },
    ).labels
    assert labels.written == ["a question", "a complaint", "neutral"]
    assert labels.index("question") == 0 and labels.index("NEUTRAL") == 2


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"labels.names": ["only"]},
            r"config.labels.names: 1 label\(s\) given; a classifier needs at least 2",
        ),
        ({"labels.names": []}, r"config.labels.names: 0 label\(s\) given"),
        ({"labels.names": ["a", ""]}, r"config.labels.names: an empty label \(''\)"),
        ({"labels.names": ["a", "  "]}, r"config.labels.names: an empty label"),
        ({"labels.names": ["a", " b"]}, r"config.labels.names: ' b' begins or ends with white space"),
        ({"labels.names": ["Joy", "sad", "joy"]}, r"'Joy' and 'joy' are the same label case-insensitively"),
        ({"labels.names": ["a", 3]}, r"config.labels.names: expected strings, got int"),
        ({"labels.names": ["a", "2"]}, r"config.labels.names: '2' is a number; a name must contain a letter"),
        (
            {"labels.names": ['say "hi"', "b"]},
            r'config.labels.names: .* contains ", which in a reasoning opens a quote',
        ),
        ({"labels.names": "joy"}, r"config.labels.names: expected list, got str"),
        ({"labels.texts": ["sad"]}, r"config.labels.texts: 1 given for 6 names; give one text per name"),
        (
            {"labels.names": ["a", "b"], "labels.texts": ["x", "x"]},
            r"config.labels.texts: 'x' and 'x' are the same",
        ),
        ({"labels.names": ["a", "b"], "labels.texts": ["x", ""]}, r"config.labels.texts: an empty label"),
        (
            {"labels.none": "neutral"},
            r"config.labels.none: 'neutral' is not one of labels.names \(sadness, joy",
        ),
        (
            {"labels.names": ["a", "none"], "labels.none": "none", "rgen.evidence.none_reasoning": " "},
            r"config.rgen.evidence.none_reasoning: empty",
        ),
        (
            {
                "labels.names": ["a", "none"],
                "labels.none": "none",
                "rgen.evidence.none_reasoning": 'no "cue"',
            },
            r"config.rgen.evidence.none_reasoning: .* contains \"",
        ),
        ({"labels.colours": ["red"]}, r"config.labels: unknown key 'colours'; known: names, texts, none"),
    ],
)
def test_a_bad_label_set_is_refused_naming_the_key(values: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_config(None, values)


def test_package_paths_default_under_the_run_folder_unless_named(tmp_path: Path) -> None:
    config = load_config(None, {"run_dir": str(tmp_path / "run")})
    assert config.models == tmp_path / "run" / "models" and config.reports == tmp_path / "run" / "report"
    for name in ("emotion-natural", "emotion-tiny"):  # the project's own configs keep models/ and docs/
        project = load_config(str(Path(__file__).parents[1] / "configs" / f"{name}.toml"))
        assert (project.models.name, project.reports.name) == ("models", "docs"), name


# --- the data stage -----------------------------------------------------------------------------


def stage_config(tmp_path: Path, extra: str = "", labels: list[str] = TICKETS, none: str = "") -> Path:
    """A run over made-up ticket rows: JSONL training rows, CSV validation rows (names in any case,
    or indices)."""
    write_jsonl(tmp_path / "train.jsonl", ticket_rows(labels, 10))
    val = ticket_rows(labels, 3, offset=10)
    lines = ["text,label"] + [
        f"{r['text']},{r['label'].upper() if k % 2 else labels.index(r['label'])}" for k, r in enumerate(val)
    ]
    (tmp_path / "validation.csv").write_text("\n".join(lines) + "\n")
    config = tmp_path / "tickets.toml"
    config.write_text(f"""
name = "tickets-{{kind}}"
run_dir = "{tmp_path / "run"}"
seed = 11
[labels]
names = {json.dumps(labels)}
none = "{none}"
[[data.sources]]
name = "tickets"
train = "{tmp_path / "train.jsonl"}"
validation = "{tmp_path / "validation.csv"}"
{extra}
[rgen.evidence]
folds = 2
style = "lead"
[model]
base = "scratch:micro"
vocab_size = 600
max_reasoning_tokens = 24
[train]
epochs = 1
batch_size = 16
warmup_steps = 2
""")
    return config


def test_data_stage_reads_rows_of_a_three_label_set(tmp_path: Path) -> None:
    config = stage_config(tmp_path)
    result = run_cli("data", "--config", str(config))
    assert result.returncode == 0, result.stderr
    train = [
        json.loads(line) for line in (tmp_path / "run" / "data" / "train.jsonl").read_text().splitlines()
    ]
    val = [
        json.loads(line) for line in (tmp_path / "run" / "data" / "validation.jsonl").read_text().splitlines()
    ]
    assert len(train) == 30 and {r["label"] for r in train} == set(TICKETS)
    # Names in any case, and indices, all written as the configured name.
    assert [r["label"] for r in val] == [r["label"] for r in ticket_rows(TICKETS, 3, offset=10)]


def test_a_row_label_outside_the_set_stops_the_data_stage(tmp_path: Path) -> None:
    config = stage_config(tmp_path)
    with (tmp_path / "train.jsonl").open("a") as f:
        f.write(json.dumps({"text": "i feel so happy", "label": "joy"}) + "\n")
    result = run_cli("data", "--config", str(config))
    assert result.returncode != 0
    assert "train.jsonl:31: unknown label 'joy'; allowed: question, complaint, praise or 0-2" in result.stderr


def test_a_mapping_onto_no_label_names_the_source_and_the_key(tmp_path: Path) -> None:
    config = stage_config(tmp_path, '[data.sources.mapping]\ncurious = "question"\nrude = "anger"\n')
    result = run_cli("data", "--config", str(config))
    assert result.returncode != 0
    assert (
        "data.sources[0].mapping.rude (tickets): 'anger' is not one of labels.names "
        "(question, complaint, praise)" in result.stderr
    )


def test_rows_rated_with_a_labels_own_name_are_validation_rows_too(tmp_path: Path) -> None:
    from because_train.stages import data

    def rated(text: str, emotions: list[str]) -> dict:
        return {"text": text, "label": None, "emotions": emotions}

    train = ticket_rows(TICKETS, 2) + [
        rated("see you at noon", ["neutral"]),
        rated("why though", ["curiosity"]),
    ]
    val = [rated("the bus is late", ["neutral"]), rated("how come", ["curiosity"]), *ticket_rows(TICKETS, 1)]
    write_jsonl(tmp_path / "train.jsonl", train)
    write_jsonl(tmp_path / "validation.jsonl", val)
    config = load_config(
        None,
        {
            "run_dir": str(tmp_path / "run"),
            "labels.names": [*TICKETS, "neutral"],
            "labels.none": "neutral",
            "data.sources": [
                {
                    "name": "chat",
                    "train": str(tmp_path / "train.jsonl"),
                    "validation": str(tmp_path / "validation.jsonl"),
                    "mapping": {"neutral": "neutral", "curiosity": "question"},
                }
            ],
        },
    )
    out = data(config)
    train_rows = [json.loads(line) for line in (out / "train.jsonl").open()]
    val_rows = [json.loads(line) for line in (out / "validation.jsonl").open()]
    assert [r["label"] for r in train_rows[-2:]] == ["neutral", "question"]  # both kinds train
    # Validation takes the rating "neutral", not the guess curiosity -> question.
    assert [(r["text"], r["label"]) for r in val_rows][:1] == [("the bus is late", "neutral")]
    assert "how come" not in {r["text"] for r in val_rows} and len(val_rows) == 4
    counts = json.loads((out / "provenance.json").read_text())["settings"]["counts"]["chat"]
    assert (counts["train"]["labelled"], counts["train"]["mapped"]) == (7, 1)


def test_the_rgen_stage_writes_the_none_reasoning_for_the_none_label(tmp_path: Path) -> None:
    labels = [*TICKETS, "neutral"]
    config = stage_config(tmp_path, labels=labels, none="neutral")
    for stage in ("data", "rgen"):
        result = run_cli(stage, "--config", str(config))
        assert result.returncode == 0, result.stderr
    rows = {r["key"]: r for r in map(json.loads, (tmp_path / "run" / "data" / "train.jsonl").open())}
    for line in (tmp_path / "run" / "rgen" / "train.jsonl").open():
        r = json.loads(line)
        reasoning, label = r["reasoning"], rows[r["key"]]["label"]
        if label == "neutral":
            assert reasoning.startswith("neutral, because no phrase in it points to one of the others"), (
                reasoning
            )
        else:
            assert reasoning.split()[0].strip(",:;") in (label, "reads", "this"), reasoning
            assert "neutral" not in reasoning, reasoning  # the none label is never a cue of another row


# --- the evidence R-Gen's none reasoning ------------------------------------------------------------

NONE_LABELS = [*TICKETS, "neutral"]


@pytest.fixture(scope="module")
def none_items() -> list[RgenItem]:
    rows = ticket_rows(NONE_LABELS, 12)
    # A few "neutral" rows that say "great": the strongest cue for another label, and not enough.
    rows += [{"text": f"the great {n} arrives on friday", "label": "neutral"} for n in NOUNS[:3]]
    return [RgenItem(f"train:{i}", r["text"], r["label"]) for i, r in enumerate(rows)]


def none_generator(items: list[RgenItem], style: str, **kw: object) -> EvidenceReasoningGenerator:
    cfg = EvidenceConfig(folds=2, style=style, contrary_margin=0.05, **kw)  # type: ignore[arg-type]
    gen = EvidenceReasoningGenerator(cfg, seed=3, labels=NONE_LABELS, none="neutral")
    gen.fit(items)
    return gen


@pytest.mark.parametrize("style", ["gold", "lead", "survey"])
def test_a_none_row_says_nothing_carries_another_label_in_every_style(none_items, style: str) -> None:
    gen = none_generator(none_items, style)
    sentence = EvidenceConfig().none_reasoning
    frame = NONE[style].format(reason=sentence, label="neutral").removesuffix(".")
    for it, reasoning in zip(none_items, gen.generate(none_items), strict=True):
        if it.label != "neutral":
            assert "neutral" not in reasoning, reasoning
            continue
        assert reasoning.startswith(frame), reasoning
        # No invented cue: at most the strongest cue for another label, quoted from the text, after the label.
        rest = reasoning[len(frame) :]
        assert rest == "." or re.fullmatch(
            r'; at most "([a-z ]+)" leans to (question|complaint|praise)\.', rest
        )
        for quote in re.findall(r'"([^"]+)"', reasoning):
            assert f" {quote} " in f" {it.text} ", (quote, it.text)
    if style == "lead":
        assert all(
            r.startswith("neutral, because ")
            for r in gen.generate([i for i in none_items if i.label == "neutral"])
        )


def test_the_none_sentence_comes_from_the_config_and_a_weak_cue_follows_the_label(none_items) -> None:
    gen = none_generator(
        none_items, "lead", none_reasoning="nothing here is a request, a complaint or praise"
    )
    [plain] = gen.generate([RgenItem("validation:0", "the parcel arrives on monday at noon", "neutral")])
    assert plain.startswith("neutral, because nothing here is a request, a complaint or praise")
    [cued] = gen.generate([RgenItem("validation:1", "the parcel is great", "neutral")])
    assert cued.endswith('; at most "great" leans to praise.'), cued
    assert render_none("it says nothing", "none", "gold", ("wow", 0), ["wow-label", "none"]) == (
        'it says nothing, so it reads as none; at most "wow" leans to wow-label.'
    )


def test_a_none_label_outside_the_set_is_refused() -> None:
    with pytest.raises(ValueError, match="labels.none: 'other' is not one of the labels"):
        EvidenceReasoningGenerator(EvidenceConfig(), seed=1, labels=TICKETS, none="other")


def test_two_labels_get_their_own_evidence() -> None:
    rows = ticket_rows(["question", "praise"], 8)
    items = [RgenItem(f"train:{i}", r["text"], r["label"]) for i, r in enumerate(rows)]
    gen = EvidenceReasoningGenerator(
        EvidenceConfig(folds=2, style="lead"), seed=1, labels=["question", "praise"]
    )
    gen.fit(items)
    for it, reasoning in zip(items, gen.generate(items), strict=True):
        assert reasoning.split()[0].strip(",:;") in (it.label, "reads", "this") and it.label in reasoning
        assert '"' in reasoning, reasoning  # a quoted cue, not "no single phrase stands out"
    # sklearn keeps one row of coefficients for two classes: both labels get theirs from it.
    assert gen.full is not None and (gen.full.relative[0] == -gen.full.relative[1]).all()


def test_a_label_without_rows_in_a_fold_contributes_nothing_and_shifts_no_other() -> None:
    from because_train.rgen.evidence import Teacher

    rows = ticket_rows(["question", "praise"], 8)
    teacher = Teacher(seed=1, n_labels=3).fit(
        [r["text"] for r in rows], [0 if r["label"] == "question" else 2 for r in rows]
    )
    assert teacher.relative.shape[0] == 3 and not teacher.relative[1].any()
    assert teacher.evidence("great app thank you", 2, 3, 0.5).spans  # praise is still row 2


# --- tokens of the label texts --------------------------------------------------------------------


def test_label_texts_must_begin_with_different_tokens() -> None:
    from because_train.sequences import PromptSpec
    from because_train.tokenizer import MARKER, train_bpe

    corpus = [" very good indeed", " very bad indeed", " so so"] * 50
    tok = train_bpe(corpus, 400)

    def spec(texts: list[str]) -> PromptSpec:
        return PromptSpec(
            tokenizer=tok,
            normalize="lower-alnum-v1",
            template="<|bos|>{text}<|sep|>",
            marker=MARKER,
            eos="<|eos|>",
            labels=["good", "bad", "meh"],
            label_texts=texts,
        )

    ok = spec([" very good", " bad", " so so"])  # several tokens each is fine: scored at the first
    assert len(ok.label_ids[0]) >= 2 and len(set(ok.label_first_ids)) == 3
    with pytest.raises(ValueError, match="' very good' and ' very bad' begin with the same token"):
        spec([" very good", " very bad", " so so"])


# --- a package of a three-label set, end to end -----------------------------------------------------


@pytest.fixture(scope="module")
def ticket_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The whole pipeline on 60 ticket rows, no models_dir or report_dir named: seconds, not minutes."""
    tmp = tmp_path_factory.mktemp("tickets")
    config = stage_config(tmp, extra="")
    text = config.read_text().replace("[labels]\n", '[labels]\ntexts = ["asks", "complains", "praises"]\n')
    config.write_text(text)
    write_jsonl(tmp / "train.jsonl", ticket_rows(TICKETS, 20))
    result = run_cli("pipeline", "--config", str(config))
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp


def test_the_package_records_the_configured_labels_and_their_texts(ticket_run: Path) -> None:
    from because_train.package import load_package

    for kind in ("qra", "qa"):
        pkg = load_package(ticket_run / "run" / "models" / f"tickets-{kind}")
        m = pkg.manifest
        assert m["labels"] == TICKETS and m["label_texts"] == [" asks", " complains", " praises"]
        assert [ids[0] for ids in m["label_token_ids"]] == pkg.spec.label_first_ids
        assert len(set(pkg.spec.label_first_ids)) == 3
        assert list(m["metrics"]["validation"]["per_class"]) == TICKETS
        assert (
            "Three labels only"
            in (ticket_run / "run" / "models" / f"tickets-{kind}" / "MODEL_CARD.md").read_text()
        )
    reasonings = (ticket_run / "run" / "rgen" / "train.jsonl").read_text()
    assert "asks" in reasonings and "question" not in reasonings  # the reasoning writes labels.texts


def test_evaluate_reads_the_labels_from_the_package(ticket_run: Path, tmp_path: Path) -> None:
    preds = tmp_path / "preds.jsonl"
    result = run_cli(
        "evaluate",
        "--model",
        str(ticket_run / "run" / "models" / "tickets-qra"),
        "--data",
        str(ticket_run / "validation.csv"),
        "--predictions-out",
        str(preds),
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["n"] == 9 and summary["skipped"] == 0
    assert re.search(r"^complaint +\d", result.stdout, re.M)  # the per-class table, by the package's names
    rows = [json.loads(line) for line in preds.read_text().splitlines()]
    assert all(set(r["scores"]) == set(TICKETS) and r["label"] in TICKETS for r in rows)


def test_the_report_lands_under_the_run_with_the_labels_as_columns(ticket_run: Path) -> None:
    report = (ticket_run / "run" / "report" / "report.md").read_text()
    assert "| model | question | complaint | praise | best epoch |" in report
    assert (ticket_run / "run" / "report" / "report.png").is_file()
