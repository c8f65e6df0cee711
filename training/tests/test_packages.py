"""The committed model packages: they load, their hashes verify, and `evaluate` reproduces their card."""

import json
import re
import shutil

import pytest

from because_train.evaluate import evaluate
from because_train.package import PackageError, load_package

from conftest import REPO_ROOT, SHARED_DATA

PACKAGES = ["emotion-qra-tiny", "emotion-qa-tiny"]


@pytest.mark.parametrize("name", PACKAGES)
def test_package_loads_and_every_hash_verifies(name):
    pkg = load_package(REPO_ROOT / "models" / name)
    m = pkg.manifest
    assert m["id"] == name and m["kind"] == name.split("-")[1]
    assert set(m["files"]) >= {"model.onnx", "tokenizer.json", "config.json", "MODEL_CARD.md"}
    size = sum(f.stat().st_size for f in (REPO_ROOT / "models" / name).iterdir())
    assert size <= 30 * 1024 * 1024
    assert len(m["provenance"]["data"]["train"]["sha256"]) == 64


@pytest.mark.parametrize("damage", ["tamper", "truncate", "remove"])
def test_changed_file_is_refused(tmp_path, damage):
    copy = tmp_path / "pkg"
    shutil.copytree(REPO_ROOT / "models" / "emotion-qa-tiny", copy)
    target = copy / "tokenizer.json"
    if damage == "tamper":
        target.write_text(target.read_text().replace('"<|eos|>"', '"<|EOS|>"', 1))
    elif damage == "truncate":
        target.write_bytes(target.read_bytes()[:100])
    else:
        target.unlink()
    with pytest.raises(PackageError, match="tokenizer.json"):
        load_package(copy)


@pytest.mark.parametrize("name", PACKAGES)
def test_evaluate_reproduces_the_model_card(name):
    if not (SHARED_DATA / "emotion" / "validation.jsonl").exists():
        pytest.skip("shared emotion data missing")
    pkg = load_package(REPO_ROOT / "models" / name)
    recorded = pkg.manifest["metrics"]["validation_first_rows"]
    metrics, _ = evaluate(
        pkg, str(SHARED_DATA / "emotion" / "validation.jsonl"), limit=recorded["n"], progress=False
    )
    # Other batch neighbours change logits by ~1e-6: at most one greedy tie could flip.
    assert abs(metrics["accuracy"] - recorded["accuracy"]) <= 1 / recorded["n"] + 1e-9
    card = (REPO_ROOT / "models" / name / "MODEL_CARD.md").read_text()
    full = pkg.manifest["metrics"]["validation"]
    assert re.search(rf"accuracy \*\*{full['accuracy']:.4f}\*\*", card)
    assert json.dumps(full["n"]) == "2000"


def test_natural_text_gets_the_answer_of_its_plain_form():
    pkg = load_package(REPO_ROOT / "models" / "emotion-qra-tiny")
    plain = [
        "i didnt feel humiliated",
        "im so happy for you",
        "i feel scared of the dark",
        "i cant believe it",
    ]
    natural = [
        "I didn't feel HUMILIATED!!",
        "I'm SO happy for you 😊",
        "I feel scared... of the DARK?",
        "I can’t believe it!",
    ]
    from because_train.evaluate import predict, reasoning_text

    a = predict(pkg, plain)
    b = predict(pkg, natural)
    for (x, _), (y, _) in zip(a, b, strict=True):
        assert x.label == y.label and reasoning_text(pkg, x) == reasoning_text(pkg, y)
        assert abs(x.scores - y.scores).max() < 1e-5
