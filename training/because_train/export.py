"""Stage 4: export a trained classifier as a model package (docs/model-package.md).

The ONNX graph is traced once around `KVWrapper`; two parity checks then fail the export loudly:
ONNX against PyTorch logits (left-padded prefill and a decode step), and incremental decoding with
the KV cache against one full forward pass. The fused graphs (graphs.py) are written beside it and
the fused fp32 one checked against it (greedy tokens identical, logits within 1e-4); after the
validation evaluation the int8 one is measured against fp32 on every source, which sets
`default_graph`.
"""

import json
import logging
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from because_train.calibrate import calibrate
from because_train.config import Config, as_dict
from because_train.data import read_jsonl
from because_train.graphs import (
    PARITY_TEXTS,
    compare_graphs,
    fused_parity,
    record_decision,
    row_metrics,
    write_graphs,
)
from because_train.metrics import classification_metrics
from because_train.normalize import EMOJI_TABLE
from because_train.provenance import code_commit, sha256_file
from because_train.runtime import KVWrapper, empty_past, onnx_forward, onnx_session
from because_train.sequences import PromptSpec

log = logging.getLogger(__name__)

TOLERANCE = 1e-4
SLICE = 200  # float32 logits of order 10; ONNX Runtime fuses ops in another order than PyTorch


def export_onnx(model: Any, path: Path, opset: int) -> None:
    cfg = model.config
    layers, kv, hd = (
        cfg.num_hidden_layers,
        cfg.num_key_value_heads,
        cfg.hidden_size // cfg.num_attention_heads,
    )
    wrapper = KVWrapper(model, layers).eval()
    b, s, p = 2, 3, 4
    past = [torch.randn(b, kv, p, hd) for _ in range(2 * layers)]
    args = (
        torch.randint(5, cfg.vocab_size, (b, s)),
        torch.ones(b, p + s, dtype=torch.long),
        torch.arange(p, p + s).repeat(b, 1),
        *past,
    )
    past_names = [f"past_key_values.{i}.{t}" for i in range(layers) for t in ("key", "value")]
    present_names = [f"present.{i}.{t}" for i in range(layers) for t in ("key", "value")]
    axes: dict[str, dict[int, str]] = {
        "input_ids": {0: "batch", 1: "seq"},
        "attention_mask": {0: "batch", 1: "total"},
        "position_ids": {0: "batch", 1: "seq"},
        "logits": {0: "batch", 1: "seq"},
    }
    axes.update({n: {0: "batch", 2: "past"} for n in past_names})
    axes.update({n: {0: "batch", 2: "total"} for n in present_names})
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about python values in transformers' masks
        torch.onnx.export(
            wrapper,
            args,
            str(path),
            input_names=["input_ids", "attention_mask", "position_ids", *past_names],
            output_names=["logits", *present_names],
            dynamic_axes=axes,
            opset_version=opset,
            dynamo=False,
        )


def _torch_logits(model: Any, ids: np.ndarray, mask: np.ndarray, pos: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        out = model(
            input_ids=torch.from_numpy(ids),
            attention_mask=torch.from_numpy(mask),
            position_ids=torch.from_numpy(pos),
        )
    return out.logits.numpy()


def parity_check(model: Any, onnx_path: Path, prompts: list[list[int]], pad: int) -> dict[str, float]:
    """Max |difference| of logits for each check; raises when one exceeds TOLERANCE."""
    cfg = model.config
    layers, kv, hd = (
        cfg.num_hidden_layers,
        cfg.num_key_value_heads,
        cfg.hidden_size // cfg.num_attention_heads,
    )
    session = onnx_session(onnx_path, threads=2)
    names = [o.name for o in session.get_outputs()]
    width = max(len(p) for p in prompts)
    ids = np.full((len(prompts), width), pad, dtype=np.int64)
    mask = np.zeros_like(ids)
    for r, p in enumerate(prompts):
        ids[r, width - len(p) :], mask[r, width - len(p) :] = p, 1
    pos = np.clip(np.cumsum(mask, 1) - 1, 0, None)
    feed: dict[str, np.ndarray] = {"input_ids": ids, "attention_mask": mask, "position_ids": pos}
    for i, t in enumerate(empty_past(len(prompts), layers, kv, hd)):
        feed[f"past_key_values.{i // 2}.{'key' if i % 2 == 0 else 'value'}"] = t
    outs = session.run(names, feed)
    real = mask.astype(bool)
    diffs = {
        "prefill_onnx_vs_torch": float(np.abs(outs[0] - _torch_logits(model, ids, mask, pos))[real].max())
    }

    # One decode step through ONNX with the present as past, against PyTorch on the whole sequence.
    nxt = np.argmax(outs[0][:, -1], axis=-1)[:, None].astype(np.int64)
    mask2 = np.concatenate([mask, np.ones_like(nxt)], 1)
    pos2 = pos[:, -1:] + 1
    feed = {"input_ids": nxt, "attention_mask": mask2, "position_ids": pos2}
    for i in range(layers):
        feed[f"past_key_values.{i}.key"], feed[f"past_key_values.{i}.value"] = (
            outs[1 + 2 * i],
            outs[2 + 2 * i],
        )
    step = session.run(names, feed)[0][:, -1]
    full = _torch_logits(model, np.concatenate([ids, nxt], 1), mask2, np.concatenate([pos, pos2], 1))[:, -1]
    diffs["decode_step_onnx_vs_full_torch"] = float(np.abs(step - full).max())

    # Incremental decoding (ONNX, row by row, no padding) against a full forward pass.
    forward = onnx_forward(session, layers, kv, hd)
    worst = 0.0
    for p in prompts[:4]:
        seq = np.array([p], dtype=np.int64)
        m = np.ones_like(seq)
        logits, past = forward(seq[:, :1], m[:, :1], np.zeros((1, 1), dtype=np.int64), None)
        inc = [logits[0]]
        for t in range(1, seq.shape[1]):
            logits, past = forward(seq[:, t : t + 1], m[:, : t + 1], np.array([[t]], dtype=np.int64), past)
            inc.append(logits[0])
        ref = _torch_logits(model, seq, m, np.arange(seq.shape[1])[None])[0]
        worst = max(worst, float(np.abs(np.stack(inc) - ref).max()))
    diffs["incremental_vs_full"] = worst
    bad = {k: v for k, v in diffs.items() if not v <= TOLERANCE}
    if bad:
        raise SystemExit(f"export parity check failed (tolerance {TOLERANCE}): {bad}")
    return diffs


def export(config: Config, kind: str) -> Path:
    """Writes the package of one trained kind into `models_dir`; returns its folder."""
    from because_train.train import load_trained

    if config.model.label_scores_at not in ("marker", "first_label_token"):
        raise SystemExit(
            f"model.label_scores_at: expected marker or first_label_token, got {config.model.label_scores_at!r}"
        )
    model, spec, ckpt = load_trained(config, kind)
    package_id = config.name.replace("{kind}", kind)
    out = config.models / package_id
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    parity = write_onnx(config, kind, model, spec, out)
    write_model_files(config, model, spec, out)
    try:
        graphs = write_graphs(out)
    except ValueError as e:  # a model the fused graph cannot express (e.g. scaled rotary): fp32 only
        log.warning(f"export {package_id}: no fused graphs: {e}")
        graphs = None
    if graphs:
        prompts = [spec.prompt_ids(spec.text_ids(t)) for t in PARITY_TEXTS]
        parity.update(fused_parity(out, prompts, spec.specials["pad"]))
    log.info(f"export {package_id}: parity {parity}")
    manifest = build_manifest(config, kind, package_id, model, spec, ckpt, parity)
    if graphs:
        manifest["graphs"] = graphs
    _write_manifest(out, manifest)
    if config.prior.enabled:
        add_prior(config, out, manifest)
    measure(config, kind, out, manifest)
    return out


def measure(config: Config, kind: str, out: Path, manifest: dict[str, Any]) -> None:
    """A written package's validation metrics, calibration, default graph and card, from the
    rows the data stage wrote (decoded as the service decodes, the package's prior included)."""
    from because_train.evaluate import confusion_png
    from because_train.package import load_package

    per_source, pooled_rows = evaluate_sources(config, load_package(out, graph="fp32"))
    pooled = add_metrics(config, manifest, per_source, pooled_rows)
    cal = add_calibration(config, manifest, per_source, pooled_rows)
    if manifest.get("graphs"):
        log.info(f"export {manifest['id']}: {choose_graph(config, out, manifest, pooled_rows)}")
    (config.run / kind).mkdir(parents=True, exist_ok=True)  # absent where the package came from elsewhere
    confusion_png(
        pooled,
        manifest["labels"],
        config.run / kind / "confusion-validation.png",
        f"{manifest['id']} on validation",
    )
    _write_card(config, out, manifest)
    summary = ", ".join(
        f"{n} {m['accuracy']:.4f} (quotes in input {m['quotes_grounded']:.3f}, ECE {m['ece']:.3f})"
        for n, m in per_source.items()
    )
    temps = cal.get("temperatures") or {"": cal["temperature"]}
    temperature = ", ".join(f"{k} {v:.3f}".strip() for k, v in temps.items())
    log.info(f"export {manifest['id']}: temperature {temperature}; {summary} -> {out}")


def add_prior(config: Config, out: Path, manifest: dict[str, Any]) -> None:
    """Fits the lexical prior on the run's training rows (each text as the package reads it),
    chooses its weight on the validation rows (prior.choose_weight, the package decoded without
    it), and writes prior.json and the manifest's `prior` entry into the package."""
    from because_train.evaluate import evaluate
    from because_train.package import load_package
    from because_train.prior import (
        FILE,
        LexicalPrior,
        choose_register_weights,
        choose_weight,
        fit_prior,
        fit_register_prior,
    )

    manifest.pop("prior", None)
    if (manifest.get("calibration") or {}).get("method") == "register-temperature":
        manifest.pop("calibration")  # it needs the registers prior; refitted by `measure`
    _write_manifest(out, manifest)
    pkg = load_package(out, graph="fp32")
    labels, spec = manifest["labels"], pkg.spec
    budget = manifest["limits"]["max_input_tokens"]

    def as_read(text: str) -> str:  # what the model reads: normalised, tokenized, the first window
        return spec.source_bytes(spec.text_ids(text)[:budget]).decode("utf-8", errors="replace")

    train_rows = read_jsonl(config.run / "data" / "train.jsonl")
    registers = [src.name for src in config.data.all_sources()] if config.prior.registers else None
    t0 = time.time()
    texts = [as_read(r["text"]) for r in train_rows]
    golds = [labels.index(r["label"]) for r in train_rows]
    c, min_df, seed, max_terms = config.prior.c, config.prior.min_df, config.seed, config.prior.max_terms
    if registers:
        sources = [r["source"] for r in train_rows]
        fitted = fit_register_prior(
            texts, golds, sources, labels, registers, c, min_df, seed, max_terms, config.prior.missing
        )
    else:
        fitted = fit_prior(texts, golds, labels, c, min_df, seed, max_terms)
    unit = LexicalPrior(fitted, 1.0)
    log.info(
        f"prior {pkg.id}: {unit.terms} terms fitted on {len(train_rows)} rows in {time.time() - t0:.0f} s"
    )
    logits, log_prior, gold, without = {}, {}, {}, {}
    for src in config.data.all_sources():
        data = str(config.run / "data" / f"validation-{src.name}.jsonl")
        metrics, predictions = evaluate(pkg, data, progress=False)
        logits[src.name] = np.asarray([p["label_logits"] for p in predictions], dtype=np.float64)
        log_prior[src.name] = np.asarray([unit.log_probs(as_read(p["text"])) for p in predictions])
        gold[src.name] = np.asarray([labels.index(p["label"]) for p in predictions])
        without[src.name] = {k: metrics[k] for k in ("n", "accuracy", "macro_f1")}
    (out / FILE).write_text(json.dumps(fitted, separators=(",", ":")) + "\n")
    common = {
        "file": FILE,
        "terms": unit.terms,
        "fitted_on": f"the run's {len(train_rows)} training rows, each text as the package reads it",
        "c": config.prior.c,
        "min_df": config.prior.min_df,
        "max_terms": config.prior.max_terms,
    }
    if registers:
        weights, by_register = choose_register_weights(logits, log_prior, gold)
        manifest["prior"] = {
            "method": "tfidf-logreg-registers",
            **common,
            "registers": registers,
            "missing": config.prior.missing,
            "weights": {r: weights[r] for r in registers},
            "weight_chosen_by": "per register: lowest log-loss on its own source's validation rows at its own temperature",
            "validation_log_loss_by_weight": by_register,
            "without_prior": without,
        }
        log.info(f"prior {pkg.id}: weights {manifest['prior']['weights']}")
    else:
        weight, losses = choose_weight(logits, log_prior, gold)
        manifest["prior"] = {
            "method": "tfidf-logreg",
            **common,
            "weight": weight,
            "weight_chosen_by": "lowest validation log-loss (each source alike) at its own temperature",
            "validation_log_loss_by_weight": losses,
            "without_prior": without,
        }
        log.info(
            f"prior {pkg.id}: weight {weight} (log-loss {losses[f'{weight:.1f}']:.4f}; 0: {losses['0.0']:.4f})"
        )
    _write_manifest(out, manifest)


def prior_stage(config: Config, kind: str) -> Path:
    """The `prior` stage: a lexical prior fitted into an exported package in place, then the
    package measured again (metrics, calibration, default graph, card)."""
    out = config.models / config.name.replace("{kind}", kind)
    manifest = json.loads((out / "manifest.json").read_text())
    add_prior(config, out, manifest)
    measure(config, kind, out, manifest)
    return out


def write_onnx(config: Config, kind: str, model: Any, spec: PromptSpec, out: Path) -> dict[str, float]:
    """model.onnx: traced into the run folder, checked against PyTorch, then copied into the package.
    Returns the parity check's differences."""
    traced = config.run / kind / "model.fp32.onnx"
    export_onnx(model, traced, config.export.opset)
    prompts = [
        spec.prompt_ids(spec.text_ids(t))
        for t in ("i feel so happy today", "i am scared", "why would he do that to me i am furious")
    ]
    parity = parity_check(model, traced, prompts, spec.specials["pad"])
    shutil.copy(traced, out / "model.onnx")
    return parity


def write_model_files(config: Config, model: Any, spec: PromptSpec, out: Path) -> None:
    """The files the service reads beside model.onnx: tokenizer, emoji table (natural-v1),
    config.json and generation_config.json."""
    tok_dir = config.run / "tokenizer"
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tok_dir / name, out / name)
    if spec.normalize == "natural-v1":
        shutil.copy(EMOJI_TABLE, out / "emoji.json")  # the service normalises with the same table
    cfg = model.config
    cfg.architectures = [type(model).__name__]
    cfg.use_cache = True
    cfg.save_pretrained(out)  # config.json
    gen = {
        "bos_token_id": spec.specials["bos"],
        "eos_token_id": spec.specials["eos"],
        "pad_token_id": spec.specials["pad"],
        "do_sample": False,
        "max_new_tokens": config.model.max_reasoning_tokens + 2,
    }
    (out / "generation_config.json").write_text(json.dumps(gen, indent=2) + "\n")


def build_manifest(
    config: Config,
    kind: str,
    package_id: str,
    model: Any,
    spec: PromptSpec,
    ckpt: dict[str, Any],
    parity: dict[str, float],
) -> dict[str, Any]:
    """manifest.json (docs/model-package.md) before the metrics, the calibration and the file hashes."""
    cfg = model.config
    return {
        "schema_version": 1,
        "id": package_id,
        "kind": kind,
        "labels": list(spec.labels),
        "label_texts": spec.label_texts,
        "label_token_ids": spec.label_ids,
        "prompt": {
            "normalize": spec.normalize,
            "template": spec.template,
            "marker": spec.marker,
            "eos": spec.eos,
        },
        "special_tokens": spec.specials,
        "label_scores_at": config.model.label_scores_at if kind == "qra" else "marker",
        "limits": {
            "max_input_tokens": config.model.max_input_tokens,
            "max_reasoning_tokens": config.model.max_reasoning_tokens,
        },
        "onnx": {
            "file": "model.onnx",
            "num_layers": cfg.num_hidden_layers,
            "num_attention_heads": cfg.num_attention_heads,
            "num_kv_heads": cfg.num_key_value_heads,
            "head_dim": cfg.hidden_size // cfg.num_attention_heads,
            "hidden_size": cfg.hidden_size,
            "vocab_size": cfg.vocab_size,
            "max_position_embeddings": cfg.max_position_embeddings,
            "parameters": int(sum(p.numel() for p in model.parameters())),
            "dtype": "float32",  # the only dtype the service loads
            "opset": config.export.opset,
        },
        "provenance": build_provenance(config, kind, ckpt, parity),
        "metrics": {},
        "files": {},
    }


def build_provenance(
    config: Config, kind: str, ckpt: dict[str, Any], parity: dict[str, float]
) -> dict[str, Any]:
    """The manifest's `provenance`: data files and their hashes, sources, R-Gen, training history, config."""
    rgen_prov = json.loads((config.run / "rgen" / "provenance.json").read_text())
    data_prov = json.loads((config.run / "data" / "provenance.json").read_text())
    return {
        "data": {
            (split if src.name == "data" else f"{src.name}_{split}"): {
                "path": getattr(src, split),
                "sha256": sha256_file(config.path(getattr(src, split))),
            }
            for src in config.data.all_sources()
            for split in ("train", "validation")
            if getattr(src, split) and not getattr(src, split).startswith("hub:")
        },
        "sources": [
            {
                "name": src.name,
                "weight": src.weight,
                "validation": src.validation or f"{src.validation_share:.0%} of train, seeded hash",
                "mapping": src.mapping,
            }
            for src in config.data.all_sources()
        ],
        "data_counts": data_prov["settings"].get("counts", {}),
        "rgen": {
            "backend": rgen_prov["settings"]["backend"],
            "stats": rgen_prov["settings"].get("stats", {}),
        },
        "base_model": config.model.base,
        "seed": config.seed,
        "code_commit": code_commit(),
        "best_epoch": ckpt["epoch"],
        "training_history": json.loads((config.run / kind / "history.json").read_text())["history"],
        "parity": parity,
        "config": as_dict(config),
    }


def add_metrics(
    config: Config,
    manifest: dict[str, Any],
    per_source: dict[str, dict[str, Any]],
    rows: list[dict[str, Any]],
) -> dict[str, Any]:
    """The manifest's validation metrics: pooled, per source, and on the first source's first rows.
    Returns the pooled ones."""
    labels = manifest["labels"]
    pooled = classification_metrics(
        [labels.index(r["label"]) for r in rows],
        [labels.index(r["pred"]) for r in rows],
        labels,
    )
    manifest["metrics"]["validation"] = {
        **{k: pooled[k] for k in ("n", "accuracy", "macro_f1", "per_class", "confusion")},
        "forced_marker": sum(m["forced_marker"] for m in per_source.values()),
        "sources": sorted(per_source),
    }
    manifest["metrics"]["per_source"] = per_source
    first_source = config.data.all_sources()[0]
    first = [r for r in rows if r["source"] == first_source.name][:SLICE]
    # The first rows of the same run: a test re-evaluates them (minutes cheaper than the whole split).
    manifest["metrics"]["validation_first_rows"] = {
        "n": len(first),
        "accuracy": sum(p["pred"] == p["label"] for p in first) / len(first),
        "source": first_source.name,
        "data": first_source.validation or str(config.run / "data" / f"validation-{first_source.name}.jsonl"),
    }
    return pooled


def add_calibration(
    config: Config,
    manifest: dict[str, Any],
    per_source: dict[str, dict[str, Any]],
    rows: list[dict[str, Any]],
) -> dict[str, Any]:
    """A temperature fitted on the validation rows (every source weighing alike) into the manifest,
    and each source's calibration error before and after it into its metrics. Returns the calibration."""
    labels = manifest["labels"]
    by_source = _by_source(rows)
    registers = (manifest.get("prior") or {}).get("registers")
    cal = calibrate(
        {
            name: ([r["label_logits"] for r in src_rows], [labels.index(r["label"]) for r in src_rows])
            for name, src_rows in by_source.items()
        },
        config.seed,
        {name: [r["registers"] for r in src_rows] for name, src_rows in by_source.items()}
        if registers
        else None,
        registers,
        config.export.calibrate_on,
    )
    manifest["calibration"] = cal
    for name, c in cal["per_source"].items():
        per_source[name].update(
            ece=c["ece"],
            ece_uncalibrated=c["ece_uncalibrated"],
            ece_cross_fitted=c["ece_cross_fitted"],
            mean_top_score=c["mean_top_score"],
            mean_top_score_uncalibrated=c["mean_top_score_uncalibrated"],
        )
    return cal


def choose_graph(config: Config, out: Path, manifest: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """The int8 graph (and the fused fp32 one) evaluated on each source's validation rows against the
    fp32 numbers already measured (`rows`, at the calibrated temperature): `default_graph` and
    `metrics.graphs` into the manifest. Returns the reason for the default."""
    _write_manifest(out, manifest)  # the calibration, which the graphs are evaluated at
    known = {
        name: {"fp32": row_metrics(src_rows, manifest["labels"], manifest)}
        for name, src_rows in _by_source(rows).items()
    }
    data = {
        src.name: str(config.run / "data" / f"validation-{src.name}.jsonl")
        for src in config.data.all_sources()
    }
    return record_decision(manifest, compare_graphs(out, data, known))


def _by_source(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r["source"], []).append(r)
    return out


def evaluate_sources(config: Config, pkg: Any) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Per-source metrics of a package on the validation rows the data stage wrote, grounded (as
    served) and, for comparison, without grounding; and every grounded prediction, tagged."""
    from because_train.evaluate import evaluate

    per_source: dict[str, dict[str, Any]] = {}
    rows: list[dict[str, Any]] = []
    for src in config.data.all_sources():
        data = str(config.run / "data" / f"validation-{src.name}.jsonl")
        metrics, predictions = evaluate(pkg, data, progress=False)
        free, _ = evaluate(pkg, data, progress=False, grounded=False)
        per_source[src.name] = {
            **{
                k: metrics[k]
                for k in (
                    "n",
                    "accuracy",
                    "macro_f1",
                    "per_class",
                    "confusion",
                    "forced_marker",
                    "quotes",
                    "quotes_grounded",
                )
            },
            "ungrounded": {k: free[k] for k in ("accuracy", "macro_f1", "quotes", "quotes_grounded")},
        }
        rows += [{**p, "source": src.name} for p in predictions]
        log.info(
            f"export {pkg.id}: {src.name}: accuracy {metrics['accuracy']:.4f} (ungrounded {free['accuracy']:.4f}), "
            f"quotes in input {metrics['quotes_grounded']:.4f} (ungrounded {free['quotes_grounded']:.4f})"
        )
    return per_source, rows


def rewrite_card(config: Config, kind: str) -> Path:
    """MODEL_CARD.md again from the package's manifest and `card_notes` (the notes change after a
    run more often than the model does); the manifest's file hashes follow."""
    out = config.models / config.name.replace("{kind}", kind)
    _write_card(config, out, json.loads((out / "manifest.json").read_text()))
    log.info(f"card: {out / 'MODEL_CARD.md'}")
    return out


def _write_card(config: Config, out: Path, manifest: dict[str, Any]) -> None:
    """MODEL_CARD.md from the manifest and the config's `card_notes`, then the manifest with every
    file's hash (the card's included)."""
    from because_train.model_card import write_model_card

    notes = config.path(config.card_notes).read_text() if config.card_notes else ""
    write_model_card(out, manifest, notes)
    _write_manifest(out, manifest)


def _write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    manifest["files"] = {
        f.name: sha256_file(f) for f in sorted(out.iterdir()) if f.is_file() and f.name != "manifest.json"
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
