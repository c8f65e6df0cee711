"""The llm R-Gen backend end to end with a tiny random Llama on 100 CoS-E rows: train, generate, resume."""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from because_train.config import LlmConfig
from because_train.rgen import RgenItem
from because_train.rgen.llm import LlmReasoningGenerator, emotion_question
from because_train.rgen.triples import Triple

from conftest import shared_file

ITEMS = [
    RgenItem("train:0", "i feel so happy and carefree today", "joy"),
    RgenItem("train:1", "i am scared of what comes next", "fear"),
    RgenItem("train:2", "i feel so alone tonight", "sadness"),
    RgenItem("train:3", "i was amazed by the news", "surprise"),
    RgenItem("train:4", "i am furious at the delay", "anger"),
    RgenItem("train:5", "i adore my little sister", "love"),
]


def config(**overrides: Any) -> LlmConfig:
    values: dict[str, Any] = {
        "base": "scratch:micro",
        "data": str(shared_file("reasoning", "cose_train.jsonl")),
        "limit": 100,
        "epochs": 1,
        "batch_size": 16,
        "lr": 3e-3,
        "max_new_tokens": 12,
        "device": "cpu",
    }
    return LlmConfig(**(values | overrides))


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """A tiny model gains nothing from threads, and they thrash when the cores are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[LlmReasoningGenerator, Path]:
    work = tmp_path_factory.mktemp("rgen-llm")
    gen = LlmReasoningGenerator(config(), seed=3, work_dir=work)
    gen.prepare(progress=False)
    return gen, work


def test_prepare_trains_and_writes_a_reusable_model(trained: tuple[LlmReasoningGenerator, Path]) -> None:
    gen, work = trained
    assert gen.stats["train_rows"] == 100 and gen.stats["train_steps"] == 7  # ceil(100 / 16)
    assert gen.stats["final_loss"] < 7.0  # below chance for a 1024-token vocabulary (ln 1024 = 6.93)
    info = json.loads((work / "model" / "rgen.json").read_text())
    assert info["fingerprint"]["base"] == "scratch:micro" and info["fingerprint"]["data_sha256"]
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {
        p.name for p in (work / "model").iterdir()
    }
    provenance = json.loads((work / "provenance.json").read_text())
    assert provenance["stage"] == "rgen-llm" and provenance["inputs"]["triples"]["sha256"]
    assert not (work / "checkpoint.pt").exists()
    config_json = json.loads((work / "model" / "config.json").read_text())
    assert config_json["hidden_size"] == 64 and config_json["num_hidden_layers"] == 2
    assert config_json["num_key_value_heads"] == 1


def test_generate_one_nonempty_line_per_item(trained: tuple[LlmReasoningGenerator, Path]) -> None:
    gen, _ = trained
    out = gen.generate(ITEMS)
    assert len(out) == len(ITEMS)
    assert all(isinstance(r, str) and r and r == r.strip() and "\n" not in r for r in out)
    assert gen.stats["generated"] >= len(ITEMS)
    assert gen.generate(list(reversed(ITEMS))) == list(reversed(out))  # greedy: order-independent
    n_tokens = [len(gen.tokenizer(r, add_special_tokens=False)["input_ids"]) for r in out]
    assert max(n_tokens) <= 12 + 2  # at most max_new_tokens (re-tokenising may differ slightly)


def test_greedy_ignores_the_models_sampling_defaults(
    trained: tuple[LlmReasoningGenerator, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An instruct model's generation_config asks for sampling; greedy must stay greedy."""
    gen, _ = trained
    expected = gen.generate(ITEMS)
    for key, value in {"do_sample": True, "temperature": 0.6, "top_p": 0.9, "top_k": 5}.items():
        monkeypatch.setattr(gen.model.generation_config, key, value)
    torch.manual_seed(123)
    assert gen.generate(ITEMS) == expected


def test_finished_model_is_reused(
    trained: tuple[LlmReasoningGenerator, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    gen, work = trained
    expected = gen.generate(ITEMS)

    def no_training(*args: Any) -> None:
        raise AssertionError("a finished model was trained again")

    monkeypatch.setattr(LlmReasoningGenerator, "_train", no_training)
    again = LlmReasoningGenerator(config(), seed=3, work_dir=work)
    again.prepare(progress=False)
    assert again.stats["train_steps"] == 7
    assert again.generate(ITEMS) == expected


def test_interrupted_training_resumes_from_checkpoint(
    trained: tuple[LlmReasoningGenerator, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after 5 of 7 steps, with a checkpoint at step 4: the rerun does the last 3 and ends where
    the uninterrupted run ends."""
    cfg = config()
    straight, _ = trained

    original = LlmReasoningGenerator._train_step
    calls: list[int] = []

    def dies_after_five(self: LlmReasoningGenerator, batch: Any, opt: Any) -> float:
        if len(calls) == 5:
            raise KeyboardInterrupt
        calls.append(1)
        return original(self, batch, opt)

    work = tmp_path / "resumed"
    monkeypatch.setattr(LlmReasoningGenerator, "_train_step", dies_after_five)
    with pytest.raises(KeyboardInterrupt):
        LlmReasoningGenerator(cfg, seed=3, work_dir=work, checkpoint_every=2).prepare(progress=False)
    assert (work / "checkpoint.pt").is_file() and not (work / "model").exists()
    assert torch.load(work / "checkpoint.pt", weights_only=True)["step"] == 4

    calls.clear()
    resumed = LlmReasoningGenerator(cfg, seed=3, work_dir=work, checkpoint_every=2)
    resumed.prepare(progress=False)
    assert len(calls) == 3
    assert not (work / "checkpoint.pt").exists()
    for (name, a), (_, b) in zip(
        straight.model.state_dict().items(), resumed.model.state_dict().items(), strict=True
    ):
        assert torch.allclose(a, b, atol=1e-6), name


def test_changed_settings_train_anew(trained: tuple[LlmReasoningGenerator, Path], tmp_path: Path) -> None:
    _, work = trained
    other = tmp_path / "other"
    other.mkdir()
    for p in (work / "model").iterdir():  # a finished model from other settings
        (other / "model").mkdir(exist_ok=True)
        (other / "model" / p.name).write_bytes(p.read_bytes())
    gen = LlmReasoningGenerator(config(limit=48), seed=3, work_dir=other)
    gen.prepare(progress=False)
    assert gen.stats["train_rows"] == 48 and gen.stats["train_steps"] == 3


def test_loss_covers_only_the_reasoning(trained: tuple[LlmReasoningGenerator, Path]) -> None:
    gen, _ = trained
    triple = Triple("Where is milk kept?\nChoices: A) fridge, B) oven", "fridge", "milk  must stay\ncold")
    ids, start = gen.encode_example(triple)
    _, attention, labels = gen._collate([(ids, start), (ids[:-3], start)])
    target = [t for t in labels[0].tolist() if t != -100]
    assert gen.tokenizer.decode(target) == " milk must stay cold<|eos|>"
    assert gen.tokenizer.decode(ids[:start]).startswith("<|bos|>Question: Where is milk kept?")
    assert gen.tokenizer.decode(ids[:start]).endswith("\nAnswer: fridge\nReasoning:")
    assert attention[1].sum() == len(ids) - 3 and (labels[1, len(ids) - 3 :] == -100).all()
    long_reasoning = Triple("q", "a", " ".join(["word"] * 50))
    ids, start = gen.encode_example(long_reasoning)
    assert len(ids) - start == 12 and gen.tokenizer.eos_token_id not in ids  # cut, so no end of sequence


def test_emotion_prompt_and_stops(trained: tuple[LlmReasoningGenerator, Path]) -> None:
    gen, _ = trained
    assert emotion_question("i feel ok") == 'What emotion does this text express? "i feel ok"'
    prompt = gen.tokenizer.decode(gen.encode_prompt(emotion_question("i feel ok"), "joy"))
    assert (
        prompt == '<|bos|>Question: What emotion does this text express? "i feel ok"\nAnswer: joy\nReasoning:'
    )
    assert gen.tokenizer.eos_token_id in gen._stop_ids
    assert all(i == gen.tokenizer.eos_token_id or "\n" in gen.tokenizer.decode([i]) for i in gen._stop_ids)
    assert len(gen._stop_ids) >= 2  # eos and at least the newline byte


def test_empty_generation_falls_back_and_is_counted(
    trained: tuple[LlmReasoningGenerator, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    gen, _ = trained
    monkeypatch.setattr(gen, "_generate_batch", lambda prompts: [("", True)] * len(prompts))
    before = gen.stats["fallback"]
    out = gen.generate(ITEMS[:2])
    assert out == ["The words of the text suggest joy.", "The words of the text suggest fear."]
    assert gen.stats["fallback"] == before + 2


def test_seeded_sampling_is_reproducible(trained: tuple[LlmReasoningGenerator, Path]) -> None:
    _, work = trained
    a = LlmReasoningGenerator(config(), seed=3, work_dir=work, temperature=1.0)
    b = LlmReasoningGenerator(config(), seed=3, work_dir=work, temperature=1.0)
    a.prepare(progress=False)
    b.prepare(progress=False)
    out = a.generate(ITEMS)
    assert out == b.generate(ITEMS) and all(out)


def test_bad_settings(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="rgen.llm.base: unknown scratch size 'huge'"):
        LlmReasoningGenerator(config(base="scratch:huge"), seed=1, work_dir=tmp_path).prepare(progress=False)
    with pytest.raises(ValueError, match="R-Gen trains scratch:micro or scratch:tiny only"):
        LlmReasoningGenerator(config(base="scratch:small"), seed=1, work_dir=tmp_path).prepare(progress=False)
    with pytest.raises(ValueError, match="must be auto, cpu or cuda"):
        LlmReasoningGenerator(config(device="tpu"), seed=1, work_dir=tmp_path)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA device"):
            LlmReasoningGenerator(config(device="cuda"), seed=1, work_dir=tmp_path)


def test_lora_path_on_a_local_base_model(
    trained: tuple[LlmReasoningGenerator, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A base that is not scratch:<size> is loaded with transformers and trained with LoRA. A hub name
    cannot be fetched here, but a local folder goes through the same code: the tiny model from above."""
    _, work = trained
    base = str(work / "model")
    cfg = config(base=base, lora_r=4, lr=1e-2)
    gen = LlmReasoningGenerator(cfg, seed=3, work_dir=tmp_path)
    gen.prepare(progress=False)
    saved = {p.name for p in (tmp_path / "model").iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors"} <= saved and "model.safetensors" not in saved
    assert json.loads((tmp_path / "model" / "adapter_config.json").read_text())["r"] == 4
    out = gen.generate(ITEMS)
    assert len(out) == len(ITEMS) and all(out)

    monkeypatch.setattr(LlmReasoningGenerator, "_train", lambda *a: pytest.fail("trained again"))
    again = LlmReasoningGenerator(cfg, seed=3, work_dir=tmp_path)
    again.prepare(progress=False)
    assert again.generate(ITEMS) == out  # base + saved adapter, merged, gives the same model
    base_weights = LlmReasoningGenerator(config(), seed=3, work_dir=work)
    base_weights.prepare(progress=False)
    changed = [
        name
        for (name, a), (_, b) in zip(
            base_weights.model.state_dict().items(), again.model.state_dict().items(), strict=True
        )
        if not torch.equal(a, b)
    ]
    assert changed and all("proj" in name for name in changed)  # LoRA touched the linear layers only
