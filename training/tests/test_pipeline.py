"""A tiny end-to-end run through every stage, the way a user runs it: the command line."""

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO_ROOT, SHARED_DATA, TRAINING, labelled_count, shared_file


def run_cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(TRAINING))
    return subprocess.run(
        [sys.executable, "-m", "because_train", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, request):
    shared_file("emotion", "train.jsonl")
    shared_file("emotion", "validation.jsonl")
    tmp = tmp_path_factory.mktemp("pipeline")
    config = tmp / "tiny.toml"
    config.write_text(f"""
name = "t-{{kind}}"
run_dir = "{tmp / "run"}"
models_dir = "{tmp / "models"}"
report_dir = "{tmp / "report"}"
seed = 3
[data]
train = "{SHARED_DATA / "emotion" / "train.jsonl"}"
validation = "{SHARED_DATA / "emotion" / "validation.jsonl"}"
limit = 300
[rgen.evidence]
folds = 2
[model]
base = "scratch:micro"
vocab_size = 600
max_reasoning_tokens = 24
[train]
epochs = 1
batch_size = 32
warmup_steps = 5
eval_limit = 64
ema_decay = 0.9
""")
    result = run_cli("pipeline", "--config", str(config))
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp, config, result


def test_every_stage_writes_its_output_with_provenance(tiny_run):
    tmp, _, _ = tiny_run
    run = tmp / "run"
    for stage in ("data", "rgen", "augmented", "qra", "qa"):
        prov = json.loads((run / stage / "provenance.json").read_text())
        assert prov["code_commit"] and prov["inputs"], stage
        for item in prov["inputs"].values():
            assert len(item["sha256"]) == 64
    rows = [json.loads(line) for line in (run / "augmented" / "train.jsonl").read_text().splitlines()]
    assert len(rows) == 300 and all(r["reasoning"] and r["label"] for r in rows)


def test_packages_are_complete_and_verified(tiny_run):
    from because_train.package import load_package

    tmp, _, _ = tiny_run
    for kind in ("qra", "qa"):
        pkg = load_package(tmp / "models" / f"t-{kind}")
        m = pkg.manifest
        assert m["kind"] == kind and m["labels"] == ["sadness", "joy", "love", "anger", "fear", "surprise"]
        assert set(m["files"]) == {
            "model.onnx",
            "tokenizer.json",
            "tokenizer_config.json",
            "config.json",
            "generation_config.json",
            "MODEL_CARD.md",
            "model.fused.onnx",
            "model.fused-int8.onnx",
        }
        assert set(m["graphs"]) == {"fp32", "fused-fp32", "fused-int8"}
        assert m["default_graph"] in ("fused-fp32", "fused-int8")
        assert m["default_graph"] == m["metrics"]["graphs"]["default"]
        assert set(m["metrics"]["graphs"]["per_source"]["data"]) == {"fp32", "fused-fp32", "fused-int8"}
        assert "fused_fp32_vs_reference" in m["provenance"]["parity"]
        assert all(v <= 1e-4 for v in m["provenance"]["parity"].values())
        assert m["metrics"]["validation"]["n"] == labelled_count(SHARED_DATA / "emotion" / "validation.jsonl")
        assert (
            f"{m['metrics']['validation']['accuracy']:.4f}"
            in (tmp / "models" / f"t-{kind}" / "MODEL_CARD.md").read_text()
        )


def test_evaluate_command_prints_summary_and_json_last_line(tiny_run, tmp_path):
    tmp, _, _ = tiny_run
    preds = tmp_path / "preds.jsonl"
    result = run_cli(
        "evaluate",
        "--model",
        str(tmp / "models" / "t-qra"),
        "--data",
        str(SHARED_DATA / "emotion" / "validation.jsonl"),
        "--limit",
        "40",
        "--predictions-out",
        str(preds),
        "--confusion-png",
        str(tmp_path / "cm.png"),
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("model t-qra (qra, graph ")
    summary = json.loads(lines[-1])
    manifest = json.loads((tmp / "models" / "t-qra" / "manifest.json").read_text())
    assert summary["graph"] == manifest["default_graph"]
    assert (
        summary["n"] == 40
        and summary["model"] == "t-qra"
        and 0 <= summary["accuracy"] <= 1
        and "macro_f1" in summary
    )
    assert summary["quotes_grounded"] == 1.0 and 0 <= summary["ece"] <= 1 and summary["skipped"] == 0
    rows = [json.loads(line) for line in preds.read_text().splitlines()]
    assert len(rows) == 40
    assert abs(sum(rows[0]["scores"].values()) - 1) < 1e-6
    assert sum(r["pred"] == r["label"] for r in rows) / 40 == pytest.approx(summary["accuracy"])
    assert (tmp_path / "cm.png").read_bytes()[:4] == b"\x89PNG"


def test_evaluate_graph_flag_picks_a_graph_and_names_the_graphs_on_a_wrong_one(tiny_run):
    tmp, _, _ = tiny_run
    args = [
        "evaluate",
        "--model",
        str(tmp / "models" / "t-qa"),
        "--data",
        str(SHARED_DATA / "emotion" / "validation.jsonl"),
    ]
    result = run_cli(*args, "--limit", "10", "--graph", "fp32")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["graph"] == "fp32"
    result = run_cli(*args, "--graph", "fused-int4")
    assert result.returncode == 1
    assert "no graph 'fused-int4'; the package has fp32, fused-fp32, fused-int8" in result.stderr


def test_graphs_stage_redoes_the_graphs_of_the_config_packages(tiny_run):
    tmp, config, _ = tiny_run
    pkg = tmp / "models" / "t-qa"
    before = json.loads((pkg / "manifest.json").read_text())
    result = run_cli("graphs", "--config", str(config), "--kind", "qa")
    assert result.returncode == 0, result.stderr[-3000:]
    after = json.loads((pkg / "manifest.json").read_text())
    assert after == before  # deterministic: the same graphs, numbers and decision again
    assert "## Graphs" in (pkg / "MODEL_CARD.md").read_text()


def test_evaluate_skips_and_counts_rows_without_a_label(tiny_run):
    tmp, _, _ = tiny_run
    data = shared_file("goemotions", "validation.jsonl")
    result = run_cli(
        "evaluate", "--model", str(tmp / "models" / "t-qa"), "--data", str(data), "--limit", "30"
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    rows = len(data.read_text(encoding="utf-8").splitlines())
    assert summary["n"] == 30 and summary["skipped"] == rows - labelled_count(data)


def test_report_puts_both_kinds_side_by_side(tiny_run):
    tmp, _, _ = tiny_run
    text = (tmp / "report" / "report.md").read_text()
    assert "| `t-qa` (Q->A) |" in text and "| `t-qra` (Q->RA) |" in text
    # the one source of this run, with its TF-IDF line beside it
    assert f"| data | {labelled_count(SHARED_DATA / 'emotion' / 'validation.jsonl')} |" in text
    assert (tmp / "report" / "report.png").read_bytes()[:4] == b"\x89PNG"


def test_stages_resume_instead_of_redoing(tiny_run):
    tmp, config, _ = tiny_run
    before = (tmp / "run" / "qra" / "best.pt").stat().st_mtime_ns
    result = run_cli("train", "--config", str(config), "--kind", "qra")
    assert result.returncode == 0, result.stderr
    assert "resumed after epoch 1" in result.stderr
    assert (tmp / "run" / "qra" / "best.pt").stat().st_mtime_ns == before
    result = run_cli("rgen", "--config", str(config))
    assert "outputs exist, skipping" in result.stderr


def test_bad_config_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nepochz = 3\n")
    result = run_cli("data", "--config", str(bad))
    assert result.returncode != 0
    assert "config.train: unknown key 'epochz'" in result.stderr


def test_prior_stage_fits_a_lexical_prior_into_a_package_and_measures_it_again(tiny_run, tmp_path):
    tmp, config, _ = tiny_run
    pkg = tmp / "models" / "t-qa"
    result = run_cli("prior", "--config", str(config), "--kind", "qa", "--set", "prior.max_terms=200")
    assert result.returncode == 0, result.stderr[-3000:]
    m = json.loads((pkg / "manifest.json").read_text())
    prior = m["prior"]
    assert prior["method"] == "tfidf-logreg" and prior["file"] == "prior.json" and "prior.json" in m["files"]
    assert prior["terms"] == 200 and 0 <= prior["weight"] <= 2
    assert set(prior["validation_log_loss_by_weight"]) >= {"0.0", "1.0", "2.0"}
    assert set(prior["without_prior"]) == set(m["metrics"]["per_source"])
    assert "## Lexical prior" in (pkg / "MODEL_CARD.md").read_text()
    data = str(SHARED_DATA / "emotion" / "validation.jsonl")
    runs = {}
    for flags in ((), ("--no-prior",)):
        out = run_cli("evaluate", "--model", str(pkg), "--data", data, "--limit", "64", *flags)
        assert out.returncode == 0, out.stderr[-3000:]
        runs[flags] = json.loads(out.stdout.strip().splitlines()[-1])
    assert runs[()]["prior_weight"] == prior["weight"] and runs[("--no-prior",)]["prior_weight"] is None


def test_prior_stage_with_registers_fits_a_gate_and_an_expert_per_source(tiny_run, tmp_path):
    # The tiny package, re-measured under a two-source config: tweets and Reddit comments.
    import shutil

    tmp, _, _ = tiny_run
    shared_file("goemotions", "train.jsonl")
    shutil.copytree(tmp / "models" / "t-qa", tmp_path / "models" / "t-qa")
    config = tmp_path / "registers.toml"
    config.write_text(f"""
name = "t-{{kind}}"
run_dir = "{tmp_path / "run"}"
models_dir = "{tmp_path / "models"}"
report_dir = "{tmp_path / "report"}"
seed = 3
[[data.sources]]
name = "tweets"
train = "{SHARED_DATA / "emotion" / "train.jsonl"}"
validation = "{SHARED_DATA / "emotion" / "validation.jsonl"}"
limit = 300
[[data.sources]]
name = "reddit"
train = "{SHARED_DATA / "goemotions" / "train.jsonl"}"
validation = "{SHARED_DATA / "goemotions" / "validation.jsonl"}"
limit = 3000
[export]
calibrate_on = ["reddit", "tweets"]
[prior]
registers = true
missing = "abstain"
max_terms = 200
""")
    assert run_cli("data", "--config", str(config)).returncode == 0
    result = run_cli("prior", "--config", str(config), "--kind", "qa")
    assert result.returncode == 0, result.stderr[-3000:]
    pkg = tmp_path / "models" / "t-qa"
    m = json.loads((pkg / "manifest.json").read_text())
    spec = json.loads((pkg / "prior.json").read_text())
    assert m["prior"]["method"] == "tfidf-logreg-registers" and m["prior"]["registers"] == [
        "tweets",
        "reddit",
    ]
    assert (
        spec["registers"] == ["tweets", "reddit"]
        and spec["missing"] == "abstain"
        and len(spec["experts"]) == 2
    )
    assert set(m["prior"]["weights"]) == {"tweets", "reddit"} and all(
        0 <= w <= 2.5 for w in m["prior"]["weights"].values()
    )
    assert m["calibration"]["method"] == "register-temperature"
    assert list(m["calibration"]["temperatures"]) == ["tweets", "reddit"]
    assert "## Lexical prior (one per register)" in (pkg / "MODEL_CARD.md").read_text()
    data = str(SHARED_DATA / "emotion" / "validation.jsonl")
    for flags in ((), ("--no-prior",)):
        out = run_cli("evaluate", "--model", str(pkg), "--data", data, "--limit", "32", *flags)
        assert out.returncode == 0, out.stderr[-3000:]
