"""Stage 3: train the Q->RA classifier (text -> reasoning, marker, label) or the Q->A baseline.

Both kinds share the tokenizer, architecture, data order and budget; only the target differs.
Training is resumable (last.pt after every epoch), early-stops on validation accuracy measured by
the same greedy decoding the service runs, and keeps the best epoch in best.pt.
"""

import json
import logging
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from because_train.averaging import WeightAverage
from because_train.config import Config, as_dict
from because_train.console import Progress
from because_train.data import read_jsonl
from because_train.decode import decode_batch
from because_train.metrics import classification_metrics
from because_train.modeling import (
    build_lora,
    build_scratch,
    cosine_lr,
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

log = logging.getLogger(__name__)


def build_tokenizer(config: Config, augmented: Path) -> Path:
    """The tokenizer both kinds share: a scratch one, trained once on the training texts and
    reasonings, or the hub model's own with the markers added."""
    out = config.run / "tokenizer"
    if (out / "tokenizer.json").exists():
        return out
    max_length = config.model.max_input_tokens + config.model.max_reasoning_tokens + 8
    if scratch_size(config.model.base) is None:
        prepare_hub_tokenizer(config.model.base, out, max_length)
        log.info(f"tokenizer: {config.model.base}'s own, markers added -> {out}")
        return out
    from because_train.normalize import normalize

    rows = read_jsonl(augmented / "train.jsonl")
    corpus = [normalize(r["text"], config.model.normalize) for r in rows] + [
        " " + r["reasoning"] for r in rows
    ]
    tok = train_bpe(corpus, config.model.vocab_size)
    save_hf_files(tok, out, max_length)
    log.info(f"tokenizer: {tok.get_vocab_size()} tokens -> {out}")
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
            labels=list(config.labels.names),
            # After the marker as in the reasoning, where every word follows a space (sequences.py).
            label_texts=[" " + t for t in config.labels.written],
            bos=specials["bos"],
            pad=specials["pad"],
        )
    except ValueError as e:
        raise SystemExit(f"{tokenizer_dir / 'tokenizer.json'}: labels.texts: {e}") from None


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
        try:
            label = spec.label_index(r["label"])
        except ValueError as e:
            raise SystemExit(
                f"train: {e} (labels.names); the run's data was made with another label set"
            ) from None
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


def evaluate_model(
    model: Any, spec: PromptSpec, examples: list[Example], kind: str, config: Config, device: torch.device
) -> dict[str, Any]:
    model.eval()
    forward = torch_forward(model, device)
    preds: list[int] = []
    forced = 0
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].prompt))
    by_index: dict[int, int] = {}
    meter = Progress(log, f"[{kind}] validation", len(examples), unit="row")
    for s in range(0, len(order), 128):
        idx = order[s : s + 128]
        out = decode_batch(
            forward,
            [examples[i].prompt for i in idx],
            kind=kind,
            marker=spec.specials["marker"],
            banned=spec.banned_in_reasoning,
            label_ids=spec.label_first_ids,
            max_reasoning=config.model.max_reasoning_tokens,
            pad=spec.specials["pad"],
        )
        for i, d in zip(idx, out, strict=True):
            by_index[i] = d.label
            forced += d.forced
        meter.update(len(by_index))
    meter.close()
    preds = [by_index[i] for i in range(len(examples))]
    model.train()
    metrics = classification_metrics([e.label for e in examples], preds, spec.labels)
    metrics["forced_marker"] = forced
    sources = sorted({e.source for e in examples})
    metrics["per_source"] = {
        src: classification_metrics(
            [e.label for e in examples if e.source == src],
            [p for e, p in zip(examples, preds, strict=True) if e.source == src],
            spec.labels,
        )
        for src in sources
    }
    # Model selection weighs every register alike: pooled accuracy would be mostly the largest set.
    metric = config.train.selection
    metrics["selection"] = float(np.mean([metrics["per_source"][s][metric] for s in sources]))
    return metrics


def load_examples(
    config: Config, spec: PromptSpec, kind: str, augmented: Path
) -> tuple[list[Example], list[Example]]:
    """Training and validation examples; validation cut to its first `train.eval_limit` rows where set."""
    train_rows = read_jsonl(augmented / "train.jsonl")
    val_rows = read_jsonl(augmented / "validation.jsonl")
    if config.train.eval_limit:
        val_rows = val_rows[: config.train.eval_limit]
    max_input = config.model.max_input_tokens
    return make_examples(spec, train_rows, kind, max_input), make_examples(spec, val_rows, kind, max_input)


def build_model(
    config: Config, spec: PromptSpec, tokenizer_dir: Path, max_len: int, device: torch.device
) -> tuple[Any, dict[str, Any] | None]:
    """The model to train, and for a hub base what `load_trained` needs to rebuild it (None: scratch)."""
    vocab = spec.tokenizer.get_vocab_size()
    size = scratch_size(config.model.base)
    if size is not None:
        return build_scratch(size, vocab, spec.specials, 2 * max(256, max_len)), None
    hub = {
        "base": config.model.base,
        "vocab_size": vocab,
        "lora_r": config.model.lora_r,
        "added_ids": load_specials(tokenizer_dir)["added_ids"],
    }
    model = build_lora(hub["base"], hub["lora_r"], weights_dtype(device), vocab, hub["added_ids"])
    return model, hub


def loss_weights(config: Config) -> dict[int, float]:
    """The loss weight of each token role (sequences.py); the prompt is never a target."""
    t = config.train
    return {
        PROMPT: 0.0,
        TEXT: t.text_loss_weight,
        REASONING: t.reasoning_loss_weight,
        LABEL: t.label_loss_weight,
    }


def make_optimizer(params: list[torch.nn.Parameter], config: Config) -> torch.optim.AdamW:
    """AdamW; weight decay on the matrices only, not on norms and biases."""
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": config.train.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=config.train.lr,
        betas=(0.9, 0.98),
    )


def resume(
    last: Path,
    model: Any,
    opt: torch.optim.Optimizer,
    average: WeightAverage | None,
    config: Config,
    kind: str,
    device: torch.device,
) -> tuple[dict[str, Any], np.random.Generator]:
    """The training state and data-order rng after the last finished epoch (last.pt), or fresh ones."""
    if not last.exists():
        state = {"epoch": 0, "step": 0, "best": -1.0, "best_epoch": 0, "history": []}
        return state, np.random.default_rng(config.seed)
    ckpt = torch.load(last, map_location=device, weights_only=False)
    load_trainable(model, ckpt["model"])
    opt.load_state_dict(ckpt["optimizer"])
    if average is not None:
        if ckpt.get("average") is None:
            raise SystemExit(f"{last} was trained without train.ema_decay; resume it with the same config")
        average.load_state_dict(ckpt["average"])
    state = ckpt["state"]
    log.info(
        f"[{kind}] resumed after epoch {state['epoch']} (best {state['best']:.4f} at epoch {state['best_epoch']})"
    )
    return state, np.random.default_rng(config.seed + state["epoch"])


def train_step(
    model: Any,
    opt: torch.optim.Optimizer,
    params: list[torch.nn.Parameter],
    ids: torch.Tensor,  # (B, T) token ids, right-padded
    mask: torch.Tensor,  # (B, T) 1 on real tokens
    w: torch.Tensor,  # (B, T) loss weight of each token as a target
    lr: float,
) -> float:
    """One optimiser step at learning rate `lr` on the weighted next-token loss; returns the loss."""
    for g in opt.param_groups:
        g["lr"] = lr
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]  # (B, T-1, vocab)
    ce = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(), ids[:, 1:].reshape(-1), reduction="none"
    )
    tw = w[:, 1:].reshape(-1)
    loss = (ce * tw).sum() / tw.sum()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    return loss.item()


def epoch_record(epoch: int, metrics: dict[str, Any], train_s: float, eval_s: float) -> dict[str, Any]:
    """One epoch's line of history.json (and of the manifest's training history)."""
    return {
        "epoch": epoch,
        "train_seconds": round(train_s, 1),
        "eval_seconds": round(eval_s, 1),
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "selection": metrics["selection"],
        "per_source": {
            src: {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "n": m["n"]}
            for src, m in metrics["per_source"].items()
        },
        "forced_marker": metrics["forced_marker"],
    }


def save_epoch(
    out: Path,
    model: Any,
    opt: torch.optim.Optimizer,
    average: WeightAverage | None,
    state: dict[str, Any],
    metrics: dict[str, Any],
    hub: dict[str, Any] | None,
) -> None:
    """best.pt when this epoch's selection score is the best so far (the averaged weights where training
    keeps an average: those are the ones evaluated); last.pt and history.json always."""
    weights_now = trainable_state(model)
    if metrics["selection"] > state["best"]:
        state["best"], state["best_epoch"] = metrics["selection"], state["epoch"]
        if average is None:
            evaluated = weights_now
        else:
            with average.applied():
                evaluated = trainable_state(model)
        torch.save(
            {
                "model": evaluated,
                "config": model.config.to_dict(),
                "hub": hub,
                "epoch": state["epoch"],
                "metrics": metrics,
            },
            out / "best.pt",
        )
    torch.save(
        {
            "model": weights_now,
            "optimizer": opt.state_dict(),
            "average": None if average is None else average.state_dict(),
            "state": state,
        },
        out / "last.pt",
    )
    (out / "history.json").write_text(json.dumps(state, indent=2) + "\n")


def train(config: Config, kind: str, augmented: Path) -> Path:
    """Trains one kind; returns its output folder holding best.pt and history.json."""
    assert kind in ("qra", "qa")
    t = config.train
    out = config.run / kind
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    if t.threads:
        torch.set_num_threads(t.threads)
    try:
        device = pick_device(t.device)
    except (ValueError, RuntimeError) as e:
        raise SystemExit(str(e)) from None
    tokenizer_dir = build_tokenizer(config, augmented)
    spec = prompt_spec(config, tokenizer_dir)
    train_ex, val_ex = load_examples(config, spec, kind, augmented)
    model, hub = build_model(config, spec, tokenizer_dir, max(len(e.ids) for e in train_ex), device)
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    log.info(
        f"[{kind}] {count_parameters(model) / 1e6:.2f}M parameters "
        f"({sum(p.numel() for p in params) / 1e6:.2f}M trained), "
        f"{len(train_ex)} train / {len(val_ex)} validation rows, "
        f"{sum(len(e.ids) for e in train_ex) / len(train_ex):.1f} tokens a row, device {device}"
    )
    weights = loss_weights(config)
    opt = make_optimizer(params, config)
    # Bucketing chunks are whole multiples of the batch size, so it adds no batches.
    steps_per_epoch = math.ceil(expected_draws(train_ex) / t.batch_size)
    total = steps_per_epoch * t.epochs
    average = WeightAverage(params, t.ema_decay) if t.ema_decay else None
    state, rng = resume(out / "last.pt", model, opt, average, config, kind, device)
    model.train()
    while state["epoch"] < t.epochs and state["epoch"] - state["best_epoch"] < t.patience + 1:
        epoch = state["epoch"] + 1
        plan = batches(train_ex, t.batch_size, rng)
        t0, tokens, loss_sum, loss_n = time.time(), 0, 0.0, 0
        meter = Progress(log, f"[{kind}] epoch {epoch}/{t.epochs}", len(plan), unit="step")
        for k, idx in enumerate(plan):
            ids, mask, w = (x.to(device) for x in collate(train_ex, idx, spec.specials["pad"], weights))
            lr = cosine_lr(state["step"], total, t.lr, t.min_lr, t.warmup_steps)
            loss = train_step(model, opt, params, ids, mask, w, lr)
            if average is not None:
                average.update()
            state["step"] += 1
            tokens += int(mask.sum())
            loss_sum, loss_n = loss_sum + loss, loss_n + 1
            el = time.time() - t0
            meter.update(
                k + 1, f"loss {loss_sum / loss_n:.4f} lr {lr:.2e} {tokens / max(el, 1e-9):,.0f} tok/s"
            )
            if (k + 1) % 50 == 0 or k + 1 == len(plan):
                meter.line(
                    f"[{kind}] epoch {epoch}/{t.epochs} step {k + 1}/{len(plan)} loss {loss_sum / loss_n:.4f} "
                    f"lr {lr:.2e} {tokens / el:,.0f} tok/s eta {el / (k + 1) * (len(plan) - k - 1):.0f}s"
                )
                loss_sum, loss_n = 0.0, 0
        meter.close()
        t1 = time.time()
        with average.applied() if average is not None else nullcontext():
            metrics = evaluate_model(model, spec, val_ex, kind, config, device)
        record = epoch_record(epoch, metrics, t1 - t0, time.time() - t1)
        state["history"].append(record)
        by_source = ", ".join(f"{src} {m['accuracy']:.4f}" for src, m in record["per_source"].items())
        log.info(
            f"[{kind}] epoch {epoch}: validation accuracy {metrics['accuracy']:.4f} macro-F1 {metrics['macro_f1']:.4f} "
            f"({by_source}; selection {metrics['selection']:.4f}) "
            f"(train {record['train_seconds']}s, eval {record['eval_seconds']}s)"
        )
        state["epoch"] = epoch
        save_epoch(out, model, opt, average, state, metrics, hub)
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
    log.info(
        f"[{kind}] best selection score (mean per-source {config.train.selection}) {state['best']:.4f} at epoch {state['best_epoch']}"
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
            hub["base"], hub["lora_r"], torch.float32, hub["vocab_size"], hub["added_ids"]
        )
        load_trainable(peft_model, ckpt["model"])
        model = peft_model.merge_and_unload()
    model.eval()
    return model, prompt_spec(config, config.run / "tokenizer"), ckpt


__all__ = ["train", "load_trained", "build_lora", "SEP", "SPECIALS"]
