"""The lexical prior: TF-IDF (word 1-2 grams) + logistic regression over the input text, fused into
the label logits (docs/model-package.md, "Lexical prior").

The small model reads words in context but has seen little dialogue; a linear model over word
n-grams of the same training rows is wrong elsewhere (measured on the v3 Q->RA package's validation
rows: fusing the two lifted film dialogue from 0.533 to 0.566). While a sequence has not yet named a label,
`weight x log p(label | text)` is added to each label's first-token logit, so the greedy reasoning
names the fused choice and the scores are softmax(fused logits / temperature).

`LexicalPrior.log_probs` is the reference the service's `src/model/prior.ts` follows operation for
operation (float64, the same order of sums), so that both decode alike row for row. sklearn only
fits; the package's prior.json, not sklearn, is what both sides compute from.
"""

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "tfidf-logreg-v1"
REGISTERS_FORMAT = "tfidf-logreg-registers-v1"
FILE = "prior.json"
MISSING = ("zero", "abstain")  # a registers prior's rule for a label an expert lacks (docs/model-package.md)
FLOOR = 1e-12  # a registers prior's mixture probability is floored here, so its log stays finite
TOKEN_PATTERN = r"[a-z0-9]+|[!?]+"  # valid alike in Python's re and JavaScript's RegExp
WEIGHTS = tuple(round(0.1 * i, 1) for i in range(21))  # the fusion weights tried, 0 (none) to 2
REGISTER_WEIGHTS = tuple(round(0.1 * i, 1) for i in range(26))  # per register, 0 to 2.5


def _short(x: float) -> float:
    """Four significant digits (log-probabilities move by about 1e-3): prior.json stays under a MB,
    and both sides parse the same double."""
    return float(f"{x:.4g}")


def fit_tfidf_logreg(
    texts: Sequence[str],
    labels: Sequence[int],
    c: float,
    min_df: int,
    seed: int,
    vocabulary: list[str] | None = None,
) -> tuple[Any, Any, Any]:
    """(vectorizer, classifier, training matrix): TF-IDF over word 1-2 grams (sublinear tf) and
    logistic regression, the prior's and the report's TF-IDF line alike. `vocabulary`: these terms
    only (min_df then does not apply)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    vec = TfidfVectorizer(
        ngram_range=(1, 2),
        token_pattern=TOKEN_PATTERN,
        sublinear_tf=True,
        min_df=min_df,
        vocabulary=vocabulary,
    )
    x = vec.fit_transform(texts)
    clf = LogisticRegression(C=c, max_iter=2000, random_state=seed)
    # One BLAS thread: with two, lbfgs stopped elsewhere and the line moved by up to 0.25 points
    # (dair 0.8425 against 0.8410 on the same rows, 2026-12-01).
    with threadpool_limits(limits=1):
        clf.fit(x, list(labels))
    return vec, clf, x


def fit_prior(
    texts: Sequence[str],
    labels: Sequence[int],
    names: Sequence[str],
    c: float,
    min_df: int,
    seed: int,
    max_terms: int = 0,
) -> dict[str, Any]:
    """prior.json's content: TF-IDF + logistic regression fitted on normalised `texts`. With
    `max_terms`, the terms that weigh most in a first fit (the spread of their coefficients over the
    labels times log(1 + their document count)) are kept and both are fitted again on those alone."""

    vec, clf, x = fit_tfidf_logreg(texts, labels, c, min_df, seed)
    if max_terms and len(vec.vocabulary_) > max_terms:
        # A package has about a MB to spare under its 50 MB (all 46401 terms of the v3 run: 4 MB).
        # Offline on the v3 Q->RA logits, 8000-14000 terms fused within a point of all of them.
        docs = np.asarray((x > 0).sum(axis=0)).ravel()
        first = np.vstack([np.zeros_like(clf.coef_), clf.coef_]) if len(names) == 2 else clf.coef_
        weight = (first.max(axis=0) - first.min(axis=0)) * np.log1p(docs)
        terms = vec.get_feature_names_out()
        kept = sorted(str(terms[i]) for i in np.argsort(-weight, kind="stable")[:max_terms])
        vec, clf, x = fit_tfidf_logreg(texts, labels, c, min_df, seed, kept)
    if list(clf.classes_) != list(range(len(names))):
        raise ValueError(f"the prior's training rows lack labels: saw {list(clf.classes_)} of {len(names)}")
    vocabulary = sorted(vec.vocabulary_, key=vec.vocabulary_.__getitem__)
    coef, intercept = clf.coef_, clf.intercept_
    if len(names) == 2:  # sklearn keeps one row for two classes: p(1) = sigmoid(z), i.e. softmax([0, z])
        coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.concatenate([[0.0], intercept])
    return {
        "format": FORMAT,
        "labels": list(names),
        "lowercase": True,
        "token_pattern": TOKEN_PATTERN,
        "ngram_range": [1, 2],
        "sublinear_tf": True,
        "vocabulary": vocabulary,
        "idf": [_short(v) for v in vec.idf_],
        "coef": [[_short(v) for v in row] for row in coef.T],
        "intercept": [_short(v) for v in intercept],
    }


def fit_register_prior(
    texts: Sequence[str],
    labels: Sequence[int],
    sources: Sequence[str],
    names: Sequence[str],
    registers: Sequence[str],
    c: float,
    min_df: int,
    seed: int,
    max_terms: int = 0,
    missing: str = "zero",
) -> dict[str, Any]:
    """A registers prior.json (docs/model-package.md): a gate, TF-IDF + logistic regression telling
    the registers (`sources` of the rows) apart, and one expert per register fitted on that
    register's rows alone, over the labels its rows have. Fitted on all rows at once, one model was
    6 points below the model on tweets; each register's own was stronger on it (the card)."""
    gate = fit_prior(texts, [registers.index(s) for s in sources], registers, c, min_df, seed, max_terms)
    experts = []
    for r in registers:
        rows = [i for i, s in enumerate(sources) if s == r]
        present = [n for k, n in enumerate(names) if any(labels[i] == k for i in rows)]
        experts.append(
            fit_prior(
                [texts[i] for i in rows],
                [present.index(names[labels[i]]) for i in rows],
                present,
                c,
                min_df,
                seed,
                max_terms,
            )
        )
    return {
        "format": REGISTERS_FORMAT,
        "labels": list(names),
        "registers": list(registers),
        "missing": missing,
        "gate": gate,
        "experts": experts,
    }


class Linear:
    """One `tfidf-logreg-v1` object: TF-IDF over word n-grams and a logistic regression."""

    def __init__(self, spec: dict[str, Any]) -> None:
        if spec.get("format") != FORMAT:
            raise ValueError(f"{FILE}: format {spec.get('format')!r}; expected {FORMAT!r}")
        self.spec = spec
        self.index = {t: j for j, t in enumerate(spec["vocabulary"])}
        self.pattern = re.compile(spec["token_pattern"])
        self.min_n, self.max_n = spec["ngram_range"]

    def log_probs(self, text: str) -> list[float]:
        """log p(label | text), in label order; `text` as the model reads it (normalised)."""
        s = self.spec
        if s["lowercase"]:
            text = text.lower()
        tokens = self.pattern.findall(text)
        counts: dict[int, int] = {}
        for n in range(self.min_n, self.max_n + 1):
            for i in range(len(tokens) - n + 1):
                j = self.index.get(" ".join(tokens[i : i + n]))
                if j is not None:
                    counts[j] = counts.get(j, 0) + 1
        found = sorted(counts)
        idf = s["idf"]
        x = {j: ((1 + math.log(counts[j])) if s["sublinear_tf"] else counts[j]) * idf[j] for j in found}
        ss = 0.0
        for j in found:
            ss += x[j] * x[j]
        norm = math.sqrt(ss)
        if norm > 0:
            for j in found:
                x[j] = x[j] / norm
        coef = s["coef"]
        z = []
        for k, b in enumerate(s["intercept"]):
            acc = 0.0
            for j in found:
                acc += x[j] * coef[j][k]
            z.append(acc + b)
        m = max(z)
        total = 0.0
        for v in z:
            total += math.exp(v - m)
        return [v - (m + math.log(total)) for v in z]


@dataclass
class LexicalPrior:
    """A loaded prior.json and its fusion weight from the manifest: `weight` for a single prior,
    `weights` (one per register, in prior.json's order) for a registers prior."""

    spec: dict[str, Any]
    weight: float = 1.0
    weights: list[float] | None = None

    def __post_init__(self) -> None:
        s = self.spec
        self.registers: list[str] | None = None
        if s.get("format") == REGISTERS_FORMAT:
            if s.get("missing", "zero") not in MISSING:
                raise ValueError(
                    f"{FILE}: missing {s.get('missing')!r}; expected one of {', '.join(MISSING)}"
                )
            labels = s["labels"]
            self.registers = list(s["registers"])
            self.gate = Linear(s["gate"])
            if self.gate.spec["labels"] != self.registers:
                raise ValueError(
                    f"{FILE}: the gate's labels {self.gate.spec['labels']} are not the registers"
                )
            if len(s["experts"]) != len(self.registers):
                raise ValueError(f"{FILE}: {len(s['experts'])} experts for {len(self.registers)} registers")
            self.experts = [Linear(e) for e in s["experts"]]
            self.columns = []
            for e in self.experts:
                cols = [labels.index(n) for n in e.spec["labels"] if n in labels]
                if len(cols) != len(e.spec["labels"]) or cols != sorted(cols):
                    raise ValueError(
                        f"{FILE}: expert labels {e.spec['labels']} are not the package's, in order"
                    )
                self.columns.append(cols)
            if self.weights is None:
                self.weights = [self.weight] * len(self.registers)
            if len(self.weights) != len(self.registers):
                raise ValueError(f"{FILE}: {len(self.weights)} weights for {len(self.registers)} registers")
        else:
            self.unit = Linear(s)

    @property
    def terms(self) -> int:
        if self.registers is None:
            return len(self.unit.index)
        return len(self.gate.index) + sum(len(e.index) for e in self.experts)

    @classmethod
    def load(cls, package: Path, manifest: dict[str, Any]) -> "LexicalPrior | None":
        entry = manifest.get("prior")
        if not entry:
            return None
        spec = json.loads((package / entry["file"]).read_text())
        if spec["labels"] != manifest["labels"]:
            raise ValueError(
                f"{package / entry['file']}: labels {spec['labels']} are not the package's {manifest['labels']}"
            )
        if spec.get("format") == REGISTERS_FORMAT:
            weights = entry.get("weights") or {}
            if sorted(weights) != sorted(spec["registers"]):
                raise ValueError(
                    f"{package / 'manifest.json'}: prior.weights names {sorted(weights)}, not the registers {spec['registers']}"
                )
            return cls(spec, weights=[float(weights[r]) for r in spec["registers"]])
        return cls(spec, float(entry["weight"]))

    def gate_probs(self, text: str) -> list[float] | None:
        """p(register | text), in the registers' order; None for a single prior."""
        if self.registers is None:
            return None
        return [math.exp(v) for v in self.gate.log_probs(text)]

    def log_probs(self, text: str, gate: list[float] | None = None) -> list[float]:
        """log p(label | text), in label order; `text` as the model reads it (normalised). A
        registers prior: the experts' probabilities mixed by the gate's (`gate`, when the caller
        already has them), floored at FLOOR."""
        if self.registers is None:
            return self.unit.log_probs(text)
        g = gate if gate is not None else self.gate_probs(text)
        assert g is not None
        p = [0.0] * len(self.spec["labels"])
        for r, expert in enumerate(self.experts):
            for k, v in zip(self.columns[r], expert.log_probs(text), strict=True):
                p[k] += g[r] * math.exp(v)
        if self.spec.get("missing", "zero") == "abstain":
            # A label's mixture over the experts that know it: the others have no say on it.
            for k in range(len(p)):
                known = 0.0
                for r in range(len(self.experts)):
                    if k in self.columns[r]:
                        known += g[r]
                p[k] = p[k] / known if known > 0 else 0.0
        return [math.log(max(v, FLOOR)) for v in p]

    def weight_for(self, gate: list[float] | None) -> float:
        """The fusion weight of a text whose register probabilities are `gate`."""
        if gate is None:
            return self.weight
        assert self.weights is not None
        w = 0.0
        for g, v in zip(gate, self.weights, strict=True):
            w += g * v
        return w

    def for_source(self, source: bytes, gate: list[float] | None = None) -> np.ndarray:
        """weight x log p over the labels for a sequence whose input bytes are `source` (what the
        model reads, as grounded quoting sees it): what is added to the label logits. `gate`: its
        register probabilities, when the caller already has them (`gate_probs` of the same text)."""
        text = source.decode("utf-8", errors="replace")
        g = gate if gate is not None else self.gate_probs(text)
        return np.asarray([self.weight_for(g) * v for v in self.log_probs(text, g)], dtype=np.float64)


def choose_weight(
    logits: dict[str, np.ndarray], log_prior: dict[str, np.ndarray], gold: dict[str, np.ndarray]
) -> tuple[float, dict[str, float]]:
    """The fusion weight in WEIGHTS with the lowest validation log-loss, each at its own best
    temperature, every source weighing alike; and that loss per weight (for the manifest)."""
    from because_train.metrics import fit_temperature

    names = sorted(logits)
    losses: dict[str, float] = {}
    for w in WEIGHTS:
        fused = {n: logits[n] + w * log_prior[n] for n in names}
        rows = [r for n in names for r in fused[n]]
        ys = [int(g) for n in names for g in gold[n]]
        groups = [n for n in names for _ in gold[n]]
        t = fit_temperature(rows, ys, groups)
        per = []
        for n in names:
            s = fused[n] / t
            s = s - s.max(axis=1, keepdims=True)
            lp = s - np.log(np.exp(s).sum(axis=1, keepdims=True))
            per.append(float(-lp[np.arange(len(gold[n])), gold[n]].mean()))
        losses[f"{w:.1f}"] = float(np.mean(per))
    best = min(WEIGHTS, key=lambda w: (losses[f"{w:.1f}"], w))
    return best, losses


def choose_register_weights(
    logits: dict[str, np.ndarray], log_prior: dict[str, np.ndarray], gold: dict[str, np.ndarray]
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Per register (a source), the weight in REGISTER_WEIGHTS with the lowest log-loss on that
    source's validation rows at the source's own temperature; and that loss per weight."""
    from because_train.metrics import fit_temperature

    weights: dict[str, float] = {}
    losses: dict[str, dict[str, float]] = {}
    for n in sorted(logits):
        losses[n] = {}
        for w in REGISTER_WEIGHTS:
            fused = logits[n] + w * log_prior[n]
            t = fit_temperature(list(fused), [int(g) for g in gold[n]], [n] * len(gold[n]))
            s = fused / t
            s = s - s.max(axis=1, keepdims=True)
            lp = s - np.log(np.exp(s).sum(axis=1, keepdims=True))
            losses[n][f"{w:.1f}"] = float(-lp[np.arange(len(gold[n])), gold[n]].mean())
        weights[n] = min(REGISTER_WEIGHTS, key=lambda w, n=n: (losses[n][f"{w:.1f}"], w))
    return weights, losses
