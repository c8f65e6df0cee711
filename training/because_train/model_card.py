"""MODEL_CARD.md, written from the manifest so that the card and the package never disagree."""

from pathlib import Path
from typing import Any

WHAT = {
    "qra": "writes a short reasoning that quotes the phrases of the text carrying the label, then the label (Q->RA)",
    "qa": "writes the label alone (Q->A), the baseline of the same size, data and budget",
}

NORMALIZATION = {
    "lower-alnum-v1": "lower-case, apostrophes removed, everything but a-z0-9 to spaces",
    "natural-v1": (
        "lower-case, apostrophes removed, accents stripped; `!` and `?` kept as tokens; emoji and emoticons "
        'become their Unicode names (`emoji.json` in this package: 😊 -> "smiling face with smiling eyes", '
        '`:(` -> "slightly frowning face"); `[NAME]`/`[PERSON]` -> "name", links -> "url"; letters repeated '
        'three or more times shortened to two ("soooo" -> "soo"); double quotation marks removed'
    ),
    "none": "none",
}

DATA_NOTES = {
    "dair": "dair-ai/emotion (CARER, Saravia et al. 2018): lower-cased English tweets",
    "goemotions": "GoEmotions (Demszky et al. 2020): English Reddit comments, 27 emotions + neutral",
    "xed": "XED English (Öhman et al. 2020): film-subtitle lines, Plutchik's eight emotions",
}

LICENCES = """- dair-ai/emotion: for educational and research purposes only (the data set's own terms); cite Saravia et al.,
  "CARER: Contextualized Affect Representations for Emotion Recognition", EMNLP 2018. This model inherits that
  restriction.
- GoEmotions: Apache License 2.0; cite Demszky et al., "GoEmotions: A Dataset of Fine-Grained Emotions", ACL 2020.
- XED: CC BY 4.0; cite Öhman et al., "XED: A Multilingual Dataset for Sentiment Analysis and Emotion Detection",
  COLING 2020."""


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _source_table(m: dict[str, Any]) -> str:
    rows = []
    for name, s in m["metrics"]["per_source"].items():
        free = s["ungrounded"]
        quotes = f"{_pct(s['quotes_grounded'])} ({s['quotes']})" if s["quotes"] else "no quotes"
        unground = (
            f"{_pct(free['quotes_grounded'])}, accuracy {free['accuracy']:.4f}" if free["quotes"] else "-"
        )
        rows.append(
            f"| {name} | {s['n']} | **{s['accuracy']:.4f}** | {s['macro_f1']:.4f} | {quotes} | {unground} | "
            f"{s['ece_uncalibrated']:.3f} | **{s['ece']:.3f}** | {s['ece_cross_fitted']:.3f} | "
            f"{s['mean_top_score']:.3f} |"
        )
    return (
        "| source | rows | accuracy | macro-F1 | quotes found in the input (quotes) | without grounded decoding | "
        "ECE before | ECE after | ECE cross-fitted | mean top score |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows)
    )


def _selection(p: dict[str, Any]) -> str:
    """The metric whose per-source mean selected the epoch (train.selection; older packages: accuracy)."""
    metric = p.get("config", {}).get("train", {}).get("selection", "accuracy")
    return "macro-F1" if metric == "macro_f1" else "accuracy"


def _history(p: dict[str, Any]) -> str:
    sources = sorted(p["training_history"][0].get("per_source", {})) if p["training_history"] else []
    head = "| epoch | " + " | ".join(f"{s} accuracy" for s in sources) + " | all rows | train seconds |"
    sep = "|---|" + "---|" * len(sources) + "---|---|"
    lines = [
        f"| {h['epoch']} | "
        + " | ".join(f"{h['per_source'][s]['accuracy']:.4f}" for s in sources)
        + f" | {h['accuracy']:.4f} | {h['train_seconds']} |"
        for h in p["training_history"]
    ]
    return "\n".join([head, sep, *lines])


def _sources(p: dict[str, Any]) -> str:
    counts = p.get("data_counts", {})
    out = []
    for src in p.get("sources", []):
        c = counts.get(src["name"], {})
        tr, va = c.get("train", {}), c.get("validation", {})
        mapping = src.get("mapping") or {}
        groups: dict[str, list[str]] = {}
        for fine, label in mapping.items():
            groups.setdefault(label, []).append(fine)
        mapped = "; ".join(f"{label} <- {', '.join(sorted(f))}" for label, f in groups.items())
        line = (
            f"- **{src['name']}** ({DATA_NOTES.get(src['name'], 'user data')}): {tr.get('kept', '?')} training rows "
            f"({tr.get('labelled', '?')} rated with one of the labels, {tr.get('mapped', 0)} through the mapping; the file's "
            f"rows left out: {tr.get('unmapped', 0)} with an emotion outside the mapping, {tr.get('conflicting', 0)} whose "
            f"emotions map to two labels, {tr.get('no_label', 0)} without any), drawn {src['weight']}x per epoch; validation: "
            f"{src['validation']} ({va.get('kept', '?')} rows with a label)."
        )
        if mapped:
            line += f" Mapping: {mapped}."
        out.append(line)
    return "\n".join(out)


NUMBERS = (
    "no",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
)


def _labels_limit(m: dict[str, Any]) -> str:
    """The Limits line on the label set: whether a text that fits none of the labels has an answer."""
    labels = m["labels"]
    n = len(labels)
    count = NUMBERS[n] if n < len(NUMBERS) else str(n)
    none = m["provenance"].get("config", {}).get("labels", {}).get("none", "")
    if none:
        return (
            f"- {count.capitalize()} labels; `{none}` is the answer for a text that carries none of the others, as "
            "far as the training rows labelled so taught it."
        )
    return (
        f'- {count.capitalize()} labels only, none of them meaning "none of these": every input gets one of the '
        f'{count}, and a text that fits none of them gets a low top score rather than a "none" answer.'
    )


def prior_section(m: dict[str, Any]) -> str:
    """The card's Lexical prior section: what it is, its weight, and each source with and without it
    (empty for a package without `prior`)."""
    prior = m.get("prior")
    if not prior:
        return ""
    per_source = m["metrics"]["per_source"]
    lines = [
        f"| {name} | {w['accuracy']:.4f} | {per_source[name]['accuracy']:.4f} | {w['macro_f1']:.4f} | "
        f"{per_source[name]['macro_f1']:.4f} |"
        for name, w in prior.get("without_prior", {}).items()
        if name in per_source
    ]
    losses = prior.get("validation_log_loss_by_weight", {})
    kept = (
        ", the weightiest of a first fit on every term seen twice, fitted again on those"
        if prior.get("max_terms") and prior["terms"] >= prior["max_terms"]
        else ""
    )
    table = (
        "\n\n| source | accuracy without | with | macro-F1 without | with |\n|---|---|---|---|---|\n"
        + "\n".join(lines)
        if lines
        else ""
    )
    if prior.get("method") == "tfidf-logreg-registers":
        return _registers_prior_section(prior, losses, table)
    return f"""## Lexical prior

`{prior["file"]}`: TF-IDF over word 1-2 grams ({prior["terms"]} terms{kept}) and logistic regression (C={prior.get("c", "?")}),
fitted on {prior.get("fitted_on", "the training rows")}. Until the reasoning names a label, {prior["weight"]:g} x its
log-probability of each label is added to that label's first-token logit, so the reasoning names the fused
choice and the label is the one it names; the scores are the softmax of the fused logits over the temperature.
The weight had the lowest validation log-loss of 0 to 2 in steps of 0.1 (every source alike, each weight at its
own temperature: {losses.get("0.0", float("nan")):.4f} at 0, {losses.get(f"{prior['weight']:.1f}", float("nan")):.4f} at {prior["weight"]:g}).
Without and with it, the same validation rows (the reference graph, grounded; without: before the prior was fitted,
at the package's earlier temperature, which does not move the label):{table}

"""


def _registers_prior_section(prior: dict[str, Any], losses: dict[str, Any], table: str) -> str:
    weights = prior["weights"]
    chosen = "; ".join(
        f"{r} {w:g} (log-loss {losses.get(r, {}).get('0.0', float('nan')):.4f} at 0, "
        f"{losses.get(r, {}).get(f'{w:.1f}', float('nan')):.4f} at {w:g})"
        for r, w in weights.items()
    )
    return f"""## Lexical prior (one per register)

`{prior["file"]}`: a gate and one expert per register ({", ".join(prior["registers"])}), each TF-IDF over word
1-2 grams and logistic regression (C={prior.get("c", "?")}, at most {prior.get("max_terms", "?")} terms each, {prior["terms"]} in all),
fitted on {prior.get("fitted_on", "the training rows")}: the gate on which register a row came from, each
expert on its register's rows alone. For a text, the experts' label probabilities are mixed by the gate's
register probabilities; until the reasoning names a label, w x the mixture's log-probability of each label is
added to that label's first-token logit, with w the gate's mix of the per-register weights. The scores are the
softmax of the fused logits over the gate's mix of the per-register temperatures (Calibration). Each weight had
the lowest log-loss on its own register's validation rows, 0 to 2.5 in steps of 0.1, at that register's own
temperature: {chosen}.
Without and with it, the same validation rows (the reference graph, grounded; without: before the prior was fitted,
at the package's earlier temperature, which does not move the label):{table}

"""


def graphs_section(m: dict[str, Any]) -> str:
    """The card's Graphs section: the graphs, which one the service runs by default and why, and
    each graph's numbers per validation source (empty for a package without `graphs`)."""
    graphs = m.get("graphs")
    if not graphs:
        return ""
    listed = ", ".join(
        f"`{n}` (`{g['file']}`, {g['layout']} layout, {g['dtype']})" for n, g in graphs.items()
    )
    decided = m.get("metrics", {}).get("graphs")
    default = m.get("default_graph")
    if decided and decided.get("default") == default:
        why = decided["reason"] + "."
    elif default:
        why = f"{default} is the default (not measured against fp32 here)."
    else:
        why = "No default graph was decided (no validation data to compare int8 with fp32 on): the service runs fp32."
    parity = m.get("provenance", {}).get("parity", {}).get("fused_fp32_vs_reference")
    check = (
        f" The fused fp32 graph was checked against `{m['onnx']['file']}` when written: greedy tokens identical, "
        f"max |logit difference| {parity:.2e}."
        if parity is not None
        else ""
    )
    table = ""
    if decided:
        lines = [
            f"| {source} | {graph} | {x['n']} | {x['accuracy']:.4f} | {x['macro_f1']:.4f} | {x['ece']:.3f} |"
            for source, by_graph in decided["per_source"].items()
            for graph, x in by_graph.items()
        ]
        table = (
            "\n\nPer validation source, decoded (grounded) through each graph, the calibrated scores:\n\n"
            "| source | graph | rows | accuracy | macro-F1 | ECE |\n|---|---|---|---|---|---|\n"
            + "\n".join(lines)
        )
    return f"""## Graphs

{why}

The package offers {len(graphs)} graphs of the same model: {listed}; the service runs one per package
(`--graph`, else `default_graph`).{check}{table}

"""


def update_graphs_section(card: str, m: dict[str, Any]) -> str:
    """`card` (a MODEL_CARD.md) with its Graphs section replaced by the manifest's, or inserted
    before "## How it was trained" (at the end when there is none)."""
    section = graphs_section(m)
    head = "## Graphs\n"
    if head in card:
        start = card.index(head)
        end = card.find("\n## ", start + len(head))
        return card[:start] + section + (card[end + 1 :] if end >= 0 else "")
    at = card.find("## How it was trained")
    if at < 0:
        return card.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n"
    return card[:at] + section + card[at:]


def write_model_card(out: Path, m: dict[str, Any], notes: str = "") -> None:
    o, p, v = m["onnx"], m["provenance"], m["metrics"]["validation"]
    cal = m.get("calibration", {})
    rows = "\n".join(
        f"| {name} | {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} | {c['support']} |"
        for name, c in v["per_class"].items()
    )
    tried = f"## What was tried\n\n{notes.strip()}\n\n" if notes else ""
    data = "\n".join(f"- `{k}`: `{d['path']}` (sha256 `{d['sha256']}`)" for k, d in p["data"].items())
    text = f"""# {m["id"]}

A {o["parameters"] / 1e6:.1f}M-parameter Llama-architecture decoder trained from scratch (`{p["base_model"]}`) that reads
an English text and {WHAT[m["kind"]]}. Labels: {", ".join(m["labels"])}. Served by because
(`src/`); built by `training/` (`python -m because_train pipeline`), the method of arXiv 2507.00214.

## Metrics per source (validation rows with a label, decoded from this package's ONNX file as the service decodes)

accuracy **{v["accuracy"]:.4f}** on all {v["n"]} rows, macro-F1 **{v["macro_f1"]:.4f}**; reasoning budget exhausted (marker forced) on {v["forced_marker"]} rows.

{_source_table(m)}

Quotes: the share of quoted phrases in the reasoning that occur in the normalised input. The service decodes
with grounded quoting (inside a quotation only continuations that keep it a span of the input are allowed),
so it is 100% by construction; the column beside it shows what the same model writes without that rule.
ECE: expected calibration error, 10 equal-width bins over the top score; before is the raw softmax, after
divides the label logits by {_temperature_words(cal)} (fitted on these validation rows, every source
weighing alike); cross-fitted scores each half of a source with the temperature fitted on the other half.

Pooled over the sources:

| label | precision | recall | F1 | support |
|---|---|---|---|---|
{rows}

Training (validation accuracy after each epoch, greedy and ungrounded; the best epoch by mean per-source
{_selection(p)}, {p["best_epoch"]}, is the one exported):

{_history(p)}

The test splits (dair-ai, GoEmotions) are held out and were not used for any choice.

{prior_section(m)}{graphs_section(m)}## How it was trained

{_sources(p)}
{data}
- Reasoning generator (stage 1): `{p["rgen"]["backend"]}`. The offline `evidence` generator quotes the 1-3 phrases with the
  most evidence for the gold label under a TF-IDF + logistic-regression teacher fitted with 5-fold cross-fitting (a row's
  rationale never comes from a teacher that saw that row), names the label, and mentions a strong contrary cue.
  Teacher accuracy on held-out folds: {p["rgen"]["stats"].get("teacher_cross_fit_accuracy", float("nan")):.4f}.
- Input handling: `{m["prompt"]["normalize"]}` ({NORMALIZATION.get(m["prompt"]["normalize"], "")}), the same in training,
  evaluation and the service; template `{m["prompt"]["template"]}`, marker `{m["prompt"]["marker"]}`.
- Architecture: {o["num_layers"]} layers, hidden {o["hidden_size"]}, {o["num_attention_heads"]} heads, {o["num_kv_heads"]} KV heads,
  vocabulary {o["vocab_size"]} (byte-level BPE trained on the normalised training texts and reasonings), tied embeddings.
- Seed {p["seed"]}, code commit `{p["code_commit"]}`; the full configuration is in `manifest.json` (`provenance.config`).
- Export: ONNX opset {o["opset"]}, {o["dtype"]}, KV cache in optimum names; parity with PyTorch (max |logit difference|): {p["parity"]}.

{tried}## Limits

- English only. It has seen tweets, Reddit comments and film dialogue; long paragraphs, sarcasm and irony are
  mostly beyond a model of this size.
{_labels_limit(m)}
- Quotes come from the input by construction, but a quoted phrase can still be one that does not decide
  the label; the label is scored after the reasoning and follows the label the reasoning names.
{_calibration_limit(cal)}
- At most {m["limits"]["max_input_tokens"]} input tokens and {m["limits"]["max_reasoning_tokens"]} reasoning tokens.

## Licence of the data

{LICENCES}
"""
    (out / "MODEL_CARD.md").write_text(text)


def _temperature_words(cal: dict[str, Any]) -> str:
    if cal.get("method") == "register-temperature":
        temps = ", ".join(f"{r} {t:.3f}" for r, t in cal["temperatures"].items())
        return (
            f"a temperature per register ({temps}; one temperature for all would be "
            f"{cal.get('one_temperature', float('nan')):.3f}), mixed by the prior's gate for each text"
        )
    return f"the temperature {cal.get('temperature', 1.0):.3f}"


def _calibration_limit(cal: dict[str, Any]) -> str:
    if cal.get("method") == "register-temperature":
        return (
            "- Calibration is a temperature per register, mixed by how much a text looks like each: on a register\n"
            "  it has not seen, the scores can still be over-confident."
        )
    return (
        "- Calibration is one temperature for all registers: on a register it has not seen, the scores can still\n"
        "  be over-confident."
    )
