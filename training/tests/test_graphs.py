"""A package's graphs (because_train/graphs.py): the `graphs` stage on a copy of the embedded
package (the embedded one is only read), evaluate through each graph, the gqa forward against the
optimum one, and the rule that picks the default graph."""

import json
import shutil

import numpy as np
import onnx
import pytest
from test_pipeline import run_cli

from because_train.evaluate import evaluate
from because_train.graphs import ACCURACY_MARGIN, choose_default_graph, parse_data
from because_train.package import PackageError, load_package, verify_files
from because_train.provenance import sha256_file

from conftest import REPO_ROOT, shared_file

QRA = REPO_ROOT / "models" / "emotion-qra-natural"
ROWS = 100
CHANGED = {"graphs", "default_graph", "files", "metrics", "provenance"}


def copy_without_graphs(src, dst):
    """A copy of package `src` as export wrote packages before graphs existed: model.onnx only, no
    `graphs`, `default_graph`, graph metrics or parity, and no Graphs section in the card."""
    shutil.copytree(src, dst)
    m = json.loads((dst / "manifest.json").read_text())
    for name in ("model.fused.onnx", "model.fused-int8.onnx"):
        (dst / name).unlink(missing_ok=True)
        m["files"].pop(name, None)
    m.pop("graphs", None)
    m.pop("default_graph", None)
    m.get("metrics", {}).pop("graphs", None)
    m.get("provenance", {}).get("parity", {}).pop("fused_fp32_vs_reference", None)
    card = (dst / "MODEL_CARD.md").read_text()
    if "## Graphs\n" in card:
        card = card[: card.index("## Graphs\n")] + card[card.index("## How it was trained") :]
        (dst / "MODEL_CARD.md").write_text(card)
        if "MODEL_CARD.md" in m["files"]:
            m["files"]["MODEL_CARD.md"] = sha256_file(dst / "MODEL_CARD.md")
    (dst / "manifest.json").write_text(json.dumps(m, indent=2) + "\n")
    return dst


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    """(copy of emotion-qra-natural after `graphs --package --data`, the manifest before, the data file)."""
    tmp = tmp_path_factory.mktemp("graphs")
    before_hash = sha256_file(QRA / "manifest.json")
    pkg = copy_without_graphs(QRA, tmp / "emotion-qra-natural")
    data = tmp / "validation-dair.jsonl"
    lines = shared_file("emotion", "validation.jsonl").read_text(encoding="utf-8").splitlines()
    data.write_text("\n".join(lines[:ROWS]) + "\n", encoding="utf-8")
    before = json.loads((pkg / "manifest.json").read_text())
    card_before = (pkg / "MODEL_CARD.md").read_text()
    result = run_cli("graphs", "--package", str(pkg), "--data", str(data))
    assert result.returncode == 0, result.stderr[-3000:]
    assert sha256_file(QRA / "manifest.json") == before_hash  # the embedded package is untouched
    return pkg, before, card_before, data


def test_stage_writes_the_graphs_and_a_valid_manifest(staged):
    pkg, before, _, _ = staged
    m = json.loads((pkg / "manifest.json").read_text())
    assert m["graphs"] == {
        "fp32": {"file": "model.onnx", "layout": "optimum", "dtype": "float32"},
        "fused-fp32": {"file": "model.fused.onnx", "layout": "gqa", "dtype": "float32"},
        "fused-int8": {"file": "model.fused-int8.onnx", "layout": "gqa", "dtype": "int8"},
    }
    # every file of the folder listed, with its right sha256
    assert set(m["files"]) == {f.name for f in pkg.iterdir() if f.name != "manifest.json"}
    verify_files(pkg, m)
    assert all(m["files"][g["file"]] == sha256_file(pkg / g["file"]) for g in m["graphs"].values())
    # everything else of the manifest kept
    assert {k: v for k, v in m.items() if k not in CHANGED} == {
        k: v for k, v in before.items() if k not in CHANGED
    }
    assert {k: v for k, v in m["metrics"].items() if k != "graphs"} == before["metrics"]
    parity = m["provenance"]["parity"].pop("fused_fp32_vs_reference")
    assert 0 <= parity <= 1e-4
    assert m["provenance"] == before["provenance"]
    # the decision and its numbers
    g = m["metrics"]["graphs"]
    assert m["default_graph"] == g["default"] and g["default"] in ("fused-int8", "fused-fp32")
    assert set(g["per_source"]) == {"dair"}
    for graph in ("fp32", "fused-fp32", "fused-int8"):
        x = g["per_source"]["dair"][graph]
        assert x["n"] == ROWS and 0 <= x["accuracy"] <= 1 and 0 <= x["macro_f1"] <= 1 and 0 <= x["ece"] <= 1
    print("graphs on", ROWS, "dair rows:", json.dumps(g["per_source"]), g["reason"])


def test_card_gains_the_graphs_section_and_keeps_the_rest(staged):
    pkg, _, card_before, _ = staged
    card = (pkg / "MODEL_CARD.md").read_text()
    m = json.loads((pkg / "manifest.json").read_text())
    start = card.index("## Graphs\n")
    end = card.index("## How it was trained")
    section = card[start:end]
    assert m["metrics"]["graphs"]["reason"] in section
    assert "| dair | fused-int8 | 100 |" in section
    assert card[:start] + card[end:] == card_before


def test_every_graph_loads_and_a_wrong_one_names_them(staged):
    pkg, *_ = staged
    assert load_package(pkg).graph == json.loads((pkg / "manifest.json").read_text())["default_graph"]
    for name, layout in (("fp32", "optimum"), ("fused-fp32", "gqa"), ("fused-int8", "gqa")):
        p = load_package(pkg, threads=1, graph=name)
        assert (p.graph, p.layout) == (name, layout)
    with pytest.raises(PackageError, match="no graph 'int4'; the package has fp32, fused-fp32, fused-int8"):
        load_package(pkg, graph="int4")
    bare = copy_without_graphs(QRA, pkg.parent / "bare")
    assert load_package(bare).graph == "fp32"  # a package without `graphs`


def test_gqa_forward_matches_the_optimum_forward(staged):
    """Package.forward of both layouts, fed as decode.decode_batch feeds them (left-padded prompts of
    different lengths with masks and positions, then one token per row per step)."""
    pkg, *_ = staged
    ref, fused = load_package(pkg, 1, "fp32"), load_package(pkg, 1, "fused-fp32")
    spec = ref.spec
    texts = ["i am scared", "why would he do that to me i am furious", "so happy :)", "i miss her so much"]
    prompts = [spec.prompt_ids(spec.text_ids(t)) for t in texts]
    b, width, steps = len(prompts), max(map(len, prompts)), 10
    ids = np.full((b, width), spec.specials["pad"], dtype=np.int64)
    mask = np.zeros_like(ids)
    for r, p in enumerate(prompts):
        ids[r, width - len(p) :], mask[r, width - len(p) :] = p, 1
    pos = np.clip(np.cumsum(mask, 1) - 1, 0, None)
    f_ref, f_fused = ref.forward(), fused.forward(capacity=width + steps + 2)
    want, past_ref = f_ref(ids, mask, pos, None)
    got, past_fused = f_fused(ids, mask, pos, None)
    worst = float(np.abs(got - want).max())
    for _ in range(steps):
        tok = np.argmax(want, -1)
        assert (np.argmax(got, -1) == tok).all()
        mask = np.concatenate([mask, np.ones((b, 1), dtype=np.int64)], 1)
        pos = pos[:, -1:] + 1
        want, past_ref = f_ref(tok[:, None].astype(np.int64), mask, pos, past_ref)
        got, past_fused = f_fused(tok[:, None].astype(np.int64), mask, pos, past_fused)
        worst = max(worst, float(np.abs(got - want).max()))
    print(f"max |gqa - optimum| over a prefill and {steps} steps: {worst:.2e}")
    assert worst <= 1e-4


def test_evaluate_on_the_fused_graphs_gives_the_fp32_answers(staged):
    pkg, _, _, data = staged
    runs = {}
    for graph in ("fp32", "fused-fp32", "fused-int8"):
        metrics, rows = evaluate(load_package(pkg, graph=graph), str(data), progress=False)
        assert metrics["graph"] == graph and metrics["n"] == ROWS
        runs[graph] = rows
    fp32, fused, int8 = runs["fp32"], runs["fused-fp32"], runs["fused-int8"]
    assert [(r["reasoning"], r["pred"]) for r in fused] == [(r["reasoning"], r["pred"]) for r in fp32]
    same_label = sum(a["pred"] == b["pred"] for a, b in zip(int8, fp32, strict=True))
    same_reasoning = sum(a["reasoning"] == b["reasoning"] for a, b in zip(int8, fp32, strict=True))
    print(f"int8: the fp32 label on {same_label}/{ROWS} rows, the same reasoning on {same_reasoning}")
    assert same_label >= 0.95 * ROWS


def test_int8_answers_do_not_depend_on_the_batch(staged):
    """A text's logits alone and among other prompts, bit for bit, over a prefill and greedy steps:
    per-row activation scales (int8_rows.py)."""
    from because_train.fused_graph import FusedRunner, LlamaShape

    pkg, *_ = staged
    package = load_package(pkg, threads=1, graph="fused-int8")
    ops = {n.op_type for n in onnx.load(str(pkg / "model.fused-int8.onnx")).graph.node}
    assert "MatMulInteger" in ops and "MatMul" not in ops and "DynamicQuantizeMatMul" not in ops
    spec = package.spec
    texts = ["i feel so happy today", "I can't believe they cancelled my flight again!", "why", "ok :( fine"]
    prompts = [spec.prompt_ids(spec.text_ids(t)) for t in texts]
    shape = LlamaShape.from_config(json.loads((pkg / "config.json").read_text()))
    capacity = max(map(len, prompts)) + 8
    batched = FusedRunner(package.session, shape, capacity)
    together = [batched.prefill(prompts)]
    for _ in range(5):
        together.append(batched.step(np.argmax(together[-1], -1)))
    for i, p in enumerate(prompts):
        alone = FusedRunner(package.session, shape, capacity)
        logits = alone.prefill([p])
        for step in range(6):
            assert np.array_equal(logits[0], together[step][i]), (texts[i], step)
            if step < 5:
                logits = alone.step([int(np.argmax(together[step][i]))])


def test_stage_without_data_writes_the_graphs_and_decides_nothing(tmp_path):
    pkg = copy_without_graphs(QRA, tmp_path / "p")
    result = run_cli("graphs", "--package", str(pkg))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "default_graph not decided" in result.stderr
    m = json.loads((pkg / "manifest.json").read_text())
    assert set(m["graphs"]) == {"fp32", "fused-fp32", "fused-int8"} and "default_graph" not in m
    assert "graphs" not in m["metrics"]
    verify_files(pkg, m)
    assert "No default graph was decided" in (pkg / "MODEL_CARD.md").read_text()
    assert load_package(pkg).graph == "fp32"


def _numbers(**drops: float) -> dict:
    """Made-up per-source numbers: fp32 at 0.80, int8 `drop` below it."""
    return {
        s: {
            "fp32": {"accuracy": 0.80, "macro_f1": 0.7, "ece": 0.05},
            "fused-fp32": {"accuracy": 0.80, "macro_f1": 0.7, "ece": 0.05},
            "fused-int8": {"accuracy": 0.80 - d, "macro_f1": 0.7, "ece": 0.05},
        }
        for s, d in drops.items()
    }


@pytest.mark.parametrize(
    ("drops", "default"),
    [
        ({"dair": 0.0, "goemotions": 0.0}, "fused-int8"),
        ({"dair": -0.02, "goemotions": 0.003}, "fused-int8"),  # better on one, a little worse on another
        ({"dair": 0.005, "goemotions": 0.005}, "fused-int8"),  # exactly 0.5 points: still within
        ({"dair": 0.0, "goemotions": 0.006}, "fused-fp32"),  # one source over the margin is enough
        ({"xed": 0.02}, "fused-fp32"),
    ],
)
def test_default_graph_rule(drops, default):
    name, reason = choose_default_graph(_numbers(**drops), int8_batch_invariant=True)
    assert name == default
    assert reason.startswith(f"{default} is the default")
    if default == "fused-fp32":
        worst = max(drops, key=lambda s: drops[s])
        assert worst in reason and f"{100 * drops[worst]:.2f} points" in reason
    assert ACCURACY_MARGIN == 0.005


def test_int8_is_never_the_default_while_its_answers_depend_on_the_batch():
    name, reason = choose_default_graph(_numbers(dair=0.0, goemotions=-0.01), int8_batch_invariant=False)
    assert name == "fused-fp32"
    assert "batched beside it" in reason and "0.00 points on dair" in reason


def test_default_graph_rule_needs_a_source():
    with pytest.raises(ValueError, match="no validation source"):
        choose_default_graph({})


def test_data_arguments_name_their_sources():
    assert parse_data(["run/data/validation-xed.jsonl", "go=g.jsonl"]) == {
        "xed": "run/data/validation-xed.jsonl",
        "go": "g.jsonl",
    }
    with pytest.raises(ValueError, match="given twice"):
        parse_data(["a/validation-x.jsonl", "b/x.jsonl"])
