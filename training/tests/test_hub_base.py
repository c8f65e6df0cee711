"""A hub model as the classifier's base, trained with LoRA and merged before the export.

No hub weights can be fetched here, but `model.base` takes a local folder through the same
transformers code: a tiny random Llama with its own byte-level BPE tokenizer (bos `<s>`, eos `</s>`,
no pad, no markers), saved the way the hub serves models.
"""

import json
from pathlib import Path

import pytest
import torch
from test_pipeline import run_cli

from conftest import SHARED_DATA, shared_file

LABELS = ["sadness", "joy", "love", "anger", "fear", "surprise"]


def make_hub_folder(folder: Path, texts: list[str], tie: bool) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=700,
        special_tokens=["<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # The labels are frequent words of the corpus, so that each is one token, as in a real vocabulary.
    tok.train_from_iterator(texts + [" " + label for label in LABELS] * 1000, trainer)
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>").save_pretrained(folder)
    config = LlamaConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        tie_word_embeddings=tie,
        bos_token_id=0,
        eos_token_id=1,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)


@pytest.fixture(scope="module")
def hub_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    shared_file("emotion", "train.jsonl")
    shared_file("emotion", "validation.jsonl")
    tmp = tmp_path_factory.mktemp("hub")
    rows = [json.loads(line) for line in (SHARED_DATA / "emotion" / "train.jsonl").open()][:300]
    make_hub_folder(tmp / "base", [r["text"] for r in rows], tie=False)
    config = tmp / "hub.toml"
    config.write_text(f"""
name = "h-{{kind}}"
run_dir = "{tmp / "run"}"
models_dir = "{tmp / "models"}"
seed = 5
[data]
train = "{SHARED_DATA / "emotion" / "train.jsonl"}"
validation = "{SHARED_DATA / "emotion" / "validation.jsonl"}"
limit = 300
[rgen.evidence]
folds = 2
[model]
base = "{tmp / "base"}"
lora_r = 4
max_reasoning_tokens = 24
[train]
epochs = 1
batch_size = 32
warmup_steps = 5
lr = 5e-3
eval_limit = 64
""")
    for stage in (
        ("data",),
        ("rgen",),
        ("augment",),
        ("train", "--kind", "qra"),
        ("export", "--kind", "qra"),
    ):
        result = run_cli(stage[0], "--config", str(config), *stage[1:])
        assert result.returncode == 0, result.stderr[-3000:]
    return tmp, config


def test_tokenizer_is_the_bases_with_the_markers_added(hub_run: tuple[Path, Path]) -> None:
    from tokenizers import Tokenizer

    tmp, _ = hub_run
    base = Tokenizer.from_file(str(tmp / "base" / "tokenizer.json"))
    pkg = tmp / "models" / "h-qra"
    tok = Tokenizer.from_file(str(pkg / "tokenizer.json"))
    manifest = json.loads((pkg / "manifest.json").read_text())
    n = base.get_vocab_size()
    assert tok.get_vocab(with_added_tokens=False) == base.get_vocab(with_added_tokens=False)
    specials = manifest["special_tokens"]
    assert specials["bos"] == base.token_to_id("<s>") and specials["eos"] == base.token_to_id("</s>")
    # The base has no pad, separator or marker: those are new rows past its vocabulary.
    assert sorted([specials["pad"], specials["sep"], specials["marker"]]) == [n, n + 1, n + 2]
    assert manifest["prompt"]["template"] == "<s>{text}<|sep|>" and manifest["prompt"]["eos"] == "</s>"
    assert manifest["onnx"]["vocab_size"] == n + 3
    assert manifest["provenance"]["base_model"] == str(tmp / "base")
    assert all(v <= 1e-4 for v in manifest["provenance"]["parity"].values())


def test_checkpoint_holds_adapters_and_new_rows_only(hub_run: tuple[Path, Path]) -> None:
    tmp, _ = hub_run
    ckpt = torch.load(tmp / "run" / "qra" / "best.pt", map_location="cpu", weights_only=False)
    names = list(ckpt["model"])
    assert names and all("lora_" in n or "trainable_tokens" in n for n in names), names[:5]
    assert any("lm_head" in n for n in names)  # untied head: its marker row is trained too
    assert ckpt["hub"]["base"] == str(tmp / "base") and ckpt["hub"]["lora_r"] == 4


def test_merged_model_changes_projections_and_new_rows_only(hub_run: tuple[Path, Path]) -> None:
    from transformers import AutoModelForCausalLM

    from because_train.config import load_config
    from because_train.train import load_trained

    tmp, config_path = hub_run
    merged, spec, _ = load_trained(load_config(str(config_path)), "qra")
    base = AutoModelForCausalLM.from_pretrained(tmp / "base")
    n = base.config.vocab_size
    base_state, merged_state = base.state_dict(), merged.state_dict()
    assert set(base_state) == set(merged_state)
    changed = {
        k
        for k in base_state
        if base_state[k].shape != merged_state[k].shape or not torch.equal(base_state[k], merged_state[k])
    }
    rows = {"model.embed_tokens.weight", "lm_head.weight"}
    assert changed - rows and all("proj" in k for k in changed - rows)
    for k in rows:  # old rows as they were, the new ones appended
        assert torch.equal(merged_state[k][:n], base_state[k]) and merged_state[k].shape[0] == n + 3
    assert not torch.equal(
        merged_state["model.embed_tokens.weight"][spec.specials["marker"]],
        merged_state["model.embed_tokens.weight"][spec.specials["sep"]],
    )


def test_package_evaluates_like_any_other(hub_run: tuple[Path, Path]) -> None:
    tmp, _ = hub_run
    result = run_cli(
        "evaluate",
        "--model",
        str(tmp / "models" / "h-qra"),
        "--data",
        str(SHARED_DATA / "emotion" / "validation.jsonl"),
        "--limit",
        "200",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    card = json.loads((tmp / "models" / "h-qra" / "manifest.json").read_text())["metrics"]
    assert summary["n"] == 200 and summary["accuracy"] == pytest.approx(
        card["validation_first_rows"]["accuracy"]
    )


def test_training_resumes_with_the_adapters(hub_run: tuple[Path, Path]) -> None:
    tmp, config = hub_run
    result = run_cli("train", "--config", str(config), "--kind", "qra", "--set", "train.epochs=2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resumed after epoch 1" in result.stderr and "epoch 2: validation accuracy" in result.stderr


def test_a_tokenizer_the_service_cannot_stream_is_refused(tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from because_train.tokenizer import prepare_hub_tokenizer

    tok = Tokenizer(models.WordLevel({"<unk>": 0, "hello": 1}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>").save_pretrained(tmp_path / "wl")
    with pytest.raises(SystemExit, match="byte-level BPE only"):
        prepare_hub_tokenizer(str(tmp_path / "wl"), tmp_path / "out", 64)
