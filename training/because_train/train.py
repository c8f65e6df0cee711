"""Stage 3: train the Q->RA classifier (text -> reasoning, marker, label) or the Q->A baseline.

Both kinds share the tokenizer, architecture, data order and budget; only the target differs.
Training is resumable (last.pt after every epoch), early-stops on validation accuracy measured by
the same greedy decoding the service runs, and keeps the best epoch in best.pt.
"""

import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from because_train import LABELS
from because_train.config import Config, as_dict
from because_train.data import read_jsonl
from because_train.decode import decode_batch
from because_train.metrics import classification_metrics
from because_train.modeling import (
    build_lora,
    build_scratch,
    count_parameters,
    load_trainable,
    pick_device,
    scratch_size,
    trainable_state,
    weights_dtype,
)
from because_train.provenance import write_provenance
from because_train.runtime import torch_forward
from because_train.sequences import LABEL, PROMPT, REASONING, TEXT, PromptSpec
from because_train.tokenizer import (
    MARKER,
    SEP,
    SPECIALS,
    load_specials,
    prepare_hub_tokenizer,
    save_hf_files,
    train_bpe,
)

LABEL_TEXTS = [" " + label for label in LABELS]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def build_tokenizer(config: Config, augmented: Path) -> Path:
    """The tokenizer both kinds share: a scratch one, trained once on the training texts and
    reasonings, or the hub model's own with the markers added."""
    out = config.run / "tokenizer"
    if (out / "tokenizer.json").exists():
        return out
    max_length = config.model.max_input_tokens + config.model.max_reasoning_tokens + 8
    if scratch_size(config.model.base) is None:
        prepare_hub_tokenizer(config.model.base, out, max_length)
        log(f"tokenizer: {config.model.base}'s own, markers added -> {out}")
        return out
    from because_train.normalize import normalize

    rows = read_jsonl(augmented / "train.jsonl")
    corpus = [normalize(r["text"], config.model.normalize) for r in rows] + [
        " " + r["reasoning"] for r in rows
    ]
    tok = train_bpe(corpus, config.model.vocab_size)
    save_hf_files(tok, out, max_length)
    log(f"tokenizer: {tok.get_vocab_size()} tokens -> {out}")
    return out


def prompt_spec(config: Config, tokenizer_dir: Path) -> PromptSpec:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
    specials = load_specials(tokenizer_dir)
    try:
        return PromptSpec(
            tokenizer=tok,
            normalize=config.model.normalize,
            template=specials["bos"] + "{text}" + SEP,
            marker=MARKER,
            eos=specials["eos"],
            labels=list(LABELS),
            label_texts=LABEL_TEXTS,
            bos=specials["bos"],
            pad=specials["pad"],
        )
    except ValueError as e:
        raise SystemExit(f"{tokenizer_dir / 'tokenizer.json'}: {e}") from None


@dataclass
class Example:
    ids: list[int]
    roles: list[int]
    prompt: list[int]
    label: int
    source: str = "data"
    weight: float = 1.0  # draws per epoch (data.sources[].weight)


def make_examples(spec: PromptSpec, rows: list[dict[str, Any]], kind: str, max_input: int) -> list[Example]:
    out = []
    for r in rows:
        text_ids = spec.text_ids(r["text"])[:max_input]
        reasoning = spec.reasoning_ids(r["reasoning"]) if kind == "qra" else None
        label = LABELS.index(r["label"])
        ids, roles = spec.training_sequence(text_ids, reasoning, label)
        out.append(
            Example(
                ids,
                roles,
                spec.prompt_ids(text_ids),
                label,
                r.get("source", "data"),
                float(r.get("weight", 1.0)),
            )
        )
    return out


def epoch_draws(examples: list[Example], rng: np.random.Generator) -> np.ndarray:
    """Indices of one epoch's rows: a row of weight w is drawn floor(w) times, and once more with
    probability w - floor(w)."""
    w = np.array([e.weight for e in examples])
    whole = np.floor(w).astype(np.int64)
    extra = rng.random(len(examples)) < (w - whole)
    return np.repeat(np.arange(len(examples)), whole + extra)


def expected_draws(examples: list[Example]) -> int:
    return int(round(sum(e.weight for e in examples)))


def batches(examples: list[Example], batch_size: int, rng: np.random.Generator) -> list[list[int]]:
    """Length-bucketed batches in random order: little padding, still a random walk over the data."""
    draws = epoch_draws(examples, rng)
    order = draws[rng.permutation(len(draws))]
    chunk = batch_size * 50
    out: list[list[int]] = []
    for s in range(0, len(order), chunk):
        part = sorted(order[s : s + chunk], key=lambda i: len(examples[i].ids))
        out += [part[k : k + batch_size] for k in range(0, len(part), batch_size)]
    return [out[i] for i in rng.permutation(len(out))]


def collate(
    examples: list[Example], idx: list[int], pad: int, weights: dict[int, float]
) -> tuple[torch.Tensor, ...]:
    width = max(len(examples[i].ids) for i in idx)
    ids = torch.full((len(idx), width), pad, dtype=torch.long)
    mask = torch.zeros((len(idx), width), dtype=torch.long)
    w = torch.zeros((len(idx), width), dtype=torch.float32)
    for row, i in enumerate(idx):
        ex = examples[i]
        ids[row, : len(ex.ids)] = torch.tensor(ex.ids)
        mask[row, : len(ex.ids)] = 1
        w[row, : len(ex.ids)] = torch.tensor([weights[r] for r in ex.roles])
    return ids, mask, w


def lr_at(step: int, total: int, config: Config) -> float:
    t = config.train
    if step < t.warmup_steps:
        return t.lr * (step + 1) / t.warmup_steps
    progress = min(1.0, (step - t.warmup_steps) / max(1, total - t.warmup_steps))
    return t.min_lr + 0.5 * (t.lr - t.min_lr) * (1 + math.cos(math.pi * progress))


def evaluate_model(
    model: Any, spec: PromptSpec, examples: list[Example], kind: str, config: Config, device: torch.device
) -> dict[str, Any]:
    model.eval()
    forward = torch_forward(model, device)
    preds: list[int] = []
    forced = 0
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].prompt))
    by_index: dict[int, int] = {}
    for s in range(0, len(order), 128):
        idx = order[s : s + 128]
        out = decode_batch(
            forward,
            [examples[i].prompt for i in idx],
            kind=kind,
            marker=spec.specials["marker"],
            banned=spec.banned_in_reasoning,
            label_ids=[ids[0] for ids in spec.label_ids],
            max_reasoning=config.model.max_reasoning_tokens,
            pad=spec.specials["pad"],
        )
        for i, d in zip(idx, out, strict=True):
            by_index[i] = d.label
            forced += d.forced
    preds = [by_index[i] for i in range(len(examples))]
    model.train()
    metrics = classification_metrics([e.label for e in examples], preds, list(LABELS))
    metrics["forced_marker"] = forced
    sources = sorted({e.source for e in examples})
    metrics["per_source"] = {
        src: classification_metrics(
            [e.label for e in examples if e.source == src],
            [p for e, p in zip(examples, preds, strict=True) if e.source == src],
            list(LABELS),
        )
        for src in sources
    }
    # Model selection weighs every register alike: pooled accuracy would be mostly the largest set.
    metrics["selection"] = float(np.mean([metrics["per_source"][s]["accuracy"] for s in sources]))
    return metrics


def train(config: Config, kind: str, augmented: Path) -> Path:
    """Trains one kind; returns its output folder holding best.pt and history.json."""
    assert kind in ("qra", "qa")
    out = config.run / kind
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    try:
        device = pick_device(config.train.device)
    except (ValueError, RuntimeError) as e:
        raise SystemExit(str(e)) from None
    size = scratch_size(config.model.base)
    tokenizer_dir = build_tokenizer(config, augmented)
    spec = prompt_spec(config, tokenizer_dir)
    train_rows = read_jsonl(augmented / "train.jsonl")
    val_rows = read_jsonl(augmented / "validation.jsonl")
    if config.train.eval_limit:
        val_rows = val_rows[: config.train.eval_limit]
    train_ex = make_examples(spec, train_rows, kind, config.model.max_input_tokens)
    val_ex = make_examples(spec, val_rows, kind, config.model.max_input_tokens)
    max_len = max(len(e.ids) for e in train_ex)
    vocab = spec.tokenizer.get_vocab_size()
    if size is not None:
        model = build_scratch(size, vocab, spec.specials, 2 * max(256, max_len))
        hub: dict[str, Any] | None = None
    else:
        hub = {
            "base": config.model.base,
            "vocab_size": vocab,
            "lora_r": config.model.lora_r,
            "added_ids": load_specials(tokenizer_dir)["added_ids"],
        }
        model = build_lora(hub["base"], vocab, hub["lora_r"], weights_dtype(device), hub["added_ids"])
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    log(
        f"[{kind}] {count_parameters(model) / 1e6:.2f}M parameters "
        f"({sum(p.numel() for p in params) / 1e6:.2f}M trained), "
        f"{len(train_ex)} train / {len(val_ex)} validation rows, "
        f"{sum(len(e.ids) for e in train_ex) / len(train_ex):.1f} tokens a row, device {device}"
    )
    weights = {
        PROMPT: 0.0,
        TEXT: config.train.text_loss_weight,
        REASONING: config.train.reasoning_loss_weight,
        LABEL: config.train.label_loss_weight,
    }
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": config.train.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=config.train.lr,
        betas=(0.9, 0.98),
    )
    rng = np.random.default_rng(config.seed)
    # Bucketing chunks are whole multiples of the batch size, so it adds no batches.
    steps_per_epoch = math.ceil(expected_draws(train_ex) / config.train.batch_size)
    total = steps_per_epoch * config.train.epochs
    state = {"epoch": 0, "step": 0, "best": -1.0, "best_epoch": 0, "history": []}
    last = out / "last.pt"
    if last.exists():
        ckpt = torch.load(last, map_location=device, weights_only=False)
        load_trainable(model, ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        state = ckpt["state"]
        rng = np.random.default_rng(config.seed + state["epoch"])
        log(
            f"[{kind}] resumed after epoch {state['epoch']} (best {state['best']:.4f} at epoch {state['best_epoch']})"
        )
    model.train()
    while (
        state["epoch"] < config.train.epochs
        and state["epoch"] - state["best_epoch"] < config.train.patience + 1
    ):
        epoch = state["epoch"] + 1
        plan = batches(train_ex, config.train.batch_size, rng)
        t0, tokens, loss_sum, loss_n = time.time(), 0, 0.0, 0
        for k, idx in enumerate(plan):
            ids, mask, w = collate(train_ex, idx, spec.specials["pad"], weights)
            ids, mask, w = ids.to(device), mask.to(device), w.to(device)
            lr = lr_at(state["step"], total, config)
            for g in opt.param_groups:
                g["lr"] = lr
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
            ce = F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]).float(), ids[:, 1:].reshape(-1), reduction="none"
            )
            tw = w[:, 1:].reshape(-1)
            loss = (ce * tw).sum() / tw.sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            state["step"] += 1
            tokens += int(mask.sum())
            loss_sum, loss_n = loss_sum + loss.item(), loss_n + 1
            if (k + 1) % 50 == 0 or k + 1 == len(plan):
                el = time.time() - t0
                log(
                    f"[{kind}] epoch {epoch}/{config.train.epochs} step {k + 1}/{len(plan)} loss {loss_sum / loss_n:.4f} "
                    f"lr {lr:.2e} {tokens / el:,.0f} tok/s eta {el / (k + 1) * (len(plan) - k - 1):.0f}s"
                )
                loss_sum, loss_n = 0.0, 0
        t1 = time.time()
        metrics = evaluate_model(model, spec, val_ex, kind, config, device)
        record = {
            "epoch": epoch,
            "train_seconds": round(t1 - t0, 1),
            "eval_seconds": round(time.time() - t1, 1),
            "accuracy": metrics["accuracy"],
            "macro_f1": metrics["macro_f1"],
            "selection": metrics["selection"],
            "per_source": {
                src: {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "n": m["n"]}
                for src, m in metrics["per_source"].items()
            },
            "forced_marker": metrics["forced_marker"],
        }
        state["history"].append(record)
        by_source = ", ".join(f"{src} {m['accuracy']:.4f}" for src, m in record["per_source"].items())
        log(
            f"[{kind}] epoch {epoch}: validation accuracy {metrics['accuracy']:.4f} macro-F1 {metrics['macro_f1']:.4f} "
            f"({by_source}; selection {metrics['selection']:.4f}) "
            f"(train {record['train_seconds']}s, eval {record['eval_seconds']}s)"
        )
        state["epoch"] = epoch
        weights_now = trainable_state(model)
        if metrics["selection"] > state["best"]:
            state["best"], state["best_epoch"] = metrics["selection"], epoch
            torch.save(
                {
                    "model": weights_now,
                    "config": model.config.to_dict(),
                    "hub": hub,
                    "epoch": epoch,
                    "metrics": metrics,
                },
                out / "best.pt",
            )
        torch.save({"model": weights_now, "optimizer": opt.state_dict(), "state": state}, last)
        (out / "history.json").write_text(json.dumps(state, indent=2) + "\n")
    write_provenance(
        out / "provenance.json",
        f"train-{kind}",
        {"train": augmented / "train.jsonl", "validation": augmented / "validation.jsonl"},
        {
            "config": as_dict(config),
            "kind": kind,
            "best_epoch": state["best_epoch"],
            "best_accuracy": state["best"],
        },
    )
    log(
        f"[{kind}] best selection score (mean per-source accuracy) {state['best']:.4f} at epoch {state['best_epoch']}"
    )
    return out


def load_trained(config: Config, kind: str) -> tuple[Any, PromptSpec, dict[str, Any]]:
    from transformers import LlamaConfig, LlamaForCausalLM

    ckpt = torch.load(config.run / kind / "best.pt", map_location="cpu", weights_only=False)
    hub = ckpt.get("hub")
    if hub is None:
        model = LlamaForCausalLM(LlamaConfig.from_dict(ckpt["config"]))
        load_trainable(model, ckpt["model"])
    else:
        # The base again, the trained adapters on it, then merged: a plain model for the export.
        peft_model = build_lora(
            hub["base"], hub["vocab_size"], hub["lora_r"], torch.float32, hub["added_ids"]
        )
        load_trainable(peft_model, ckpt["model"])
        model = peft_model.merge_and_unload()
    model.eval()
    return model, prompt_spec(config, config.run / "tokenizer"), ckpt


__all__ = ["train", "load_trained", "build_lora", "SEP", "SPECIALS"]
