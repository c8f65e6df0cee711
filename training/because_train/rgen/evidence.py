"""The offline R-Gen: grounded rationales from a cross-fitted TF-IDF + logistic-regression teacher.

Three styles. `gold`: for a (text, gold label) pair it quotes the 1-3 phrases of the text that carry
the most evidence for the gold label, names the emotion, and then mentions the strongest cue for
another emotion where the text has one. `lead`: the same evidence, with the emotion named first.
`survey`: it quotes the 1-3 phrases that carry the most evidence for any emotion, chosen without
looking at the gold label, tags each with the emotion the teacher reads in it, and only then
concludes with the gold label. The rationale of a training row comes from a teacher fitted on the
other folds, so it never explains a row the teacher memorised; validation rows get the teacher
fitted on all of train.
Phrasings vary by row, chosen by a hash of (seed, row key): the same seed gives the same text.

Where the label set has a "none of the others" label (`labels.none`), a row of that label gets no
invented cue: its reasoning says that nothing in the text carries one of the other labels
(`rgen.evidence.none_reasoning`), framed by the style, and names the strongest cue for another label
as the most there is, where the teacher finds one above `contrary_margin`. That label is never a
contrary cue or a survey tag of another row: absence is not a cue.
"""

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from because_train.config import EvidenceConfig
from because_train.rgen import RgenItem

# Quote first, name the emotion last: the classifier then reads its evidence before it commits.
TEMPLATES = (
    "the {words} {quotes} {point} to {label}.",
    "{quotes} {express} {label}.",
    "key {cues}: {quotes}, suggesting {label}.",
    "the writer says {quotes}, which reads as {label}.",
)
# A contrary cue comes after the conclusion: named first, it would lead the classifier to the
# other emotion before it has read its own evidence (seen in an earlier run's errors).
CONTRARY = (
    ", though {quote} hints at {other}.",
    ", despite {quote} ({other}).",
)
NO_CUE = "no single phrase stands out; the overall tone suggests {label}."
# Survey style: the cues as the teacher reads them, then the conclusion as the last emotion named.
SURVEY = (
    "cues: {cues}; overall, {label}.",
    "the text has {cues}. taken together: {label}.",
    "{cues}; so the writer feels {label}.",
)
# Lead style: the same evidence as `gold`, the emotion named before it.
LEAD = (
    "reads as {label}: the {words} {quotes} {point} to it.",
    "{label}, because of {quotes}.",
    "this is {label}; key {cues}: {quotes}.",
)
LEAD_NO_CUE = "reads as {label}: no single phrase stands out, the overall tone does."
SURVEY_NO_CUE = "no phrase stands out; overall, {label}."
# A row of the none label (`labels.none`): `{reason}` is rgen.evidence.none_reasoning. Lead style names
# the label first, as every lead reasoning does: a qra package may score its labels there.
NONE = {
    "gold": "{reason}, so it reads as {label}.",
    "lead": "{label}, because {reason}.",
    "survey": "{reason}; overall, {label}.",
}
# After the label is named, like a contrary cue: the strongest cue for another label, as the most there is.
NONE_CUE = '; at most "{quote}" leans to {other}.'
# Words that occur in nearly every row of this data: quoting them explains nothing.
FILLER = frozenset(ENGLISH_STOP_WORDS) | {
    "feel",
    "feeling",
    "feels",
    "felt",
    "im",
    "ive",
    "m",
    "s",
    "t",
    "don",
    "didnt",
    "dont",
    "name",  # natural-v1's placeholders for masked names and links
    "url",
    "!",
    "?",
    "!!",
    "??",
    "?!",
    "!?",
}
WEAK = 0.2  # a phrase is quoted only if it carries at least this share of the strongest one's evidence


@dataclass
class Evidence:
    spans: list[str]  # quoted phrases, in text order
    contrary: tuple[str, str] | None  # (phrase, other label)


class Teacher:
    """TF-IDF over word 1-2 grams with a multinomial logistic regression."""

    def __init__(self, seed: int, n_labels: int) -> None:
        self.n_labels = n_labels
        self.trained_keys: frozenset[str] = frozenset()
        self.vectorizer = TfidfVectorizer(
            # Words, and runs of ! and ?, which natural-v1 keeps as tokens of their own.
            ngram_range=(1, 2),
            token_pattern=r"[a-z0-9]+|[!?]+",
            sublinear_tf=True,
            min_df=2,
        )
        self.model = LogisticRegression(C=10.0, max_iter=2000, random_state=seed)

    def fit(self, texts: Sequence[str], labels: Sequence[int]) -> "Teacher":
        x = self.vectorizer.fit_transform(texts)
        self.model.fit(x, labels)
        # Contribution of a feature to label c, relative to the average label: only differences
        # between labels matter in a softmax.
        coef = self.model.coef_
        if coef.shape[0] == 1:  # two classes: one row, the second class against the first
            coef = np.vstack([-coef[0], coef[0]]) / 2
        relative = coef - coef.mean(axis=0, keepdims=True)
        # One row per label of the set: a label no training row of this fold has contributes nothing.
        self.relative = np.zeros((self.n_labels, relative.shape[1]))
        self.relative[self.model.classes_] = relative
        self.vocab = self.vectorizer.vocabulary_
        return self

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        return self.model.predict(self.vectorizer.transform(texts))

    def grams(self, text: str) -> tuple[list[str], list[tuple[float, int, int, int]]]:
        """The words of `text`, and (tf-idf value, start, end, feature) of every 1-2 gram of them
        the teacher knows that is not filler alone."""
        words = text.split()
        weights = self.vectorizer.transform([text])
        value = {j: v for j, v in zip(weights.indices, weights.data, strict=True)}
        grams: list[tuple[float, int, int, int]] = []
        for n in (1, 2):
            for i in range(len(words) - n + 1):
                gram = words[i : i + n]
                j = self.vocab.get(" ".join(gram))
                if j is not None and not all(w in FILLER for w in gram):
                    grams.append((float(value.get(j, 0.0)), i, i + n, j))
        return words, grams

    def evidence(self, text: str, label: int, max_phrases: int, margin: float, none: int = -1) -> Evidence:
        """The phrases with the most evidence for `label`, and the strongest cue (above `margin`) for
        another label outside them; `none` (the none label's index, -1: none) is never that cue."""
        words, grams = self.grams(text)
        chosen = [
            (i, e)
            for i, e, _ in strongest(
                [(v * self.relative[label, j], i, e, label) for v, i, e, j in grams], max_phrases
            )
        ]
        spans = [" ".join(words[i:e]) for i, e in merge_adjacent(chosen)]
        contrary = self.strongest_cue(words, grams, {label, none}, chosen, margin)
        return Evidence(spans=spans, contrary=contrary)

    def strongest_cue(
        self,
        words: list[str],
        grams: list[tuple[float, int, int, int]],
        skip: set[int],
        chosen: list[tuple[int, int]],
        margin: float,
    ) -> tuple[str, int] | None:
        """(phrase, label) of the gram with the most evidence, above `margin`, for a label not in
        `skip`, among those not overlapping a `chosen` span; the first such gram on a tie."""
        cue = None
        best = margin
        for v, i, e, j in grams:
            if any(i < ce and cs < e for cs, ce in chosen):
                continue
            for other in range(self.relative.shape[0]):
                s = v * self.relative[other, j]
                if other not in skip and s > best:
                    best, cue = s, (" ".join(words[i:e]), other)
        return cue

    def survey(self, text: str, max_phrases: int, none: int = -1) -> list[tuple[str, int]]:
        """The 1-`max_phrases` phrases with the most evidence for any label but `none`, each with
        that label, in text order; the gold label plays no part in the choice."""
        words, grams = self.grams(text)
        scored: list[tuple[float, int, int, int]] = []
        for v, i, e, j in grams:
            contrib = v * self.relative[:, j]
            if none >= 0:
                contrib[none] = -np.inf
            best = int(np.argmax(contrib))
            scored.append((float(contrib[best]), i, e, best))
        return [(" ".join(words[i:e]), label) for i, e, label in sorted(strongest(scored, max_phrases))]


def strongest(scored: list[tuple[float, int, int, int]], max_phrases: int) -> list[tuple[int, int, int]]:
    """(start, end, label) of the strongest non-overlapping spans among (score, start, end, label),
    strongest first: at most `max_phrases`, each positive and at least WEAK of the strongest."""
    ranked = sorted(scored, key=lambda g: (-g[0], g[1]))
    chosen: list[tuple[int, int, int]] = []
    for score, i, e, label in ranked:
        if score <= 0 or score < WEAK * ranked[0][0] or len(chosen) == max_phrases:
            break
        if any(i < ce and cs < e for cs, ce, _ in chosen):
            continue  # overlaps a stronger phrase already chosen
        chosen.append((i, e, label))
    return chosen


def merge_adjacent(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Touching word spans become one quote: "didnt feel" + "humiliated" -> "didnt feel humiliated"."""
    merged: list[tuple[int, int]] = []
    for i, e in sorted(spans):
        if merged and i <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(e, merged[-1][1]))
        else:
            merged.append((i, e))
    return merged


def _choice(seed: int, key: str, salt: str, n: int) -> int:
    digest = hashlib.sha256(f"{seed}:{salt}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % n


def render(
    evidence: Evidence, label: str, labels: Sequence[str], seed: int, key: str, lead: bool = False
) -> str:
    if not evidence.spans:
        return (LEAD_NO_CUE if lead else NO_CUE).format(label=label)
    quoted = [f'"{s}"' for s in evidence.spans]
    quotes = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]
    one = len(quoted) == 1
    templates = LEAD if lead else TEMPLATES
    body = templates[_choice(seed, key, "t", len(templates))].format(
        quotes=quotes,
        label=label,
        words="word" if one else "words",
        point="points" if one else "point",
        express="expresses" if one else "express",
        cues="cue" if one else "cues",
    )
    if evidence.contrary is None:
        return body
    phrase, other = evidence.contrary
    tail = CONTRARY[_choice(seed, key, "c", len(CONTRARY))].format(quote=f'"{phrase}"', other=labels[other])
    return body.removesuffix(".") + tail


def render_none(
    reason: str, label: str, style: str, cue: tuple[str, int] | None, labels: Sequence[str]
) -> str:
    """The reasoning of a row of the none label: why nothing in it carries another label."""
    body = NONE[style].format(reason=reason, label=label)
    if cue is None:
        return body
    return body.removesuffix(".") + NONE_CUE.format(quote=cue[0], other=labels[cue[1]])


def render_survey(cues: list[tuple[str, int]], label: str, labels: Sequence[str], seed: int, key: str) -> str:
    if not cues:
        return SURVEY_NO_CUE.format(label=label)
    listed = ", ".join(f'"{span}" ({labels[c]})' for span, c in cues)
    return SURVEY[_choice(seed, key, "s", len(SURVEY))].format(cues=listed, label=label)


class EvidenceReasoningGenerator:
    name = "evidence"

    def __init__(self, cfg: EvidenceConfig, seed: int, labels: Sequence[str], none: str = "") -> None:
        """`labels` as the reasoning writes them, in the order of the label set; `none` the one of
        them that means "none of the others" ("": the set has none)."""
        if cfg.style not in ("gold", "lead", "survey"):
            raise ValueError(f"rgen.evidence.style must be gold, lead or survey, got {cfg.style!r}")
        if none and none not in labels:
            raise ValueError(f"labels.none: {none!r} is not one of the labels ({', '.join(labels)})")
        self.cfg, self.seed, self.labels = cfg, seed, list(labels)
        self.none = self.labels.index(none) if none else -1
        self.teachers: list[Teacher] = []
        self.full: Teacher | None = None
        self.fold_of: dict[str, int] = {}
        self.stats: dict[str, float] = {}

    def fit(self, train: Sequence[RgenItem]) -> None:
        """Fit one teacher per fold (each without that fold) and one on all rows."""
        texts = [it.text for it in train]
        y = np.array([self.labels.index(it.label) for it in train])
        order = np.random.default_rng(self.seed).permutation(len(train))
        folds = np.array_split(order, self.cfg.folds)
        held_out_correct = 0
        for k, idx in enumerate(folds):
            mask = np.ones(len(train), dtype=bool)
            mask[idx] = False
            teacher = Teacher(self.seed, len(self.labels)).fit(
                [texts[i] for i in np.flatnonzero(mask)], y[mask]
            )
            teacher.trained_keys = frozenset(train[i].key for i in np.flatnonzero(mask))
            held_out_correct += int((teacher.predict([texts[i] for i in idx]) == y[idx]).sum())
            self.teachers.append(teacher)
            for i in idx:
                self.fold_of[train[i].key] = k
        self.full = Teacher(self.seed, len(self.labels)).fit(texts, y)
        self.full.trained_keys = frozenset(it.key for it in train)
        self.stats["teacher_cross_fit_accuracy"] = held_out_correct / len(train)

    def teacher_for(self, key: str) -> Teacher:
        """The fold's teacher for a training row; the all-rows teacher for any other row."""
        assert self.full is not None, "fit() first"
        fold = self.fold_of.get(key)
        return self.full if fold is None else self.teachers[fold]

    def generate(self, items: Sequence[RgenItem]) -> list[str]:
        out = []
        for it in items:
            teacher = self.teacher_for(it.key)
            label = self.labels.index(it.label)
            if label == self.none:
                out.append(self.none_reasoning(teacher, it.text))
                continue
            if self.cfg.style == "survey":
                cues = teacher.survey(it.text, self.cfg.max_phrases, self.none)
                out.append(render_survey(cues, it.label, self.labels, self.seed, it.key))
                continue
            ev = teacher.evidence(it.text, label, self.cfg.max_phrases, self.cfg.contrary_margin, self.none)
            out.append(render(ev, it.label, self.labels, self.seed, it.key, lead=self.cfg.style == "lead"))
        return out

    def none_reasoning(self, teacher: Teacher, text: str) -> str:
        """A row of the none label: the configured sentence, and the strongest cue for another label
        where one clears `contrary_margin` (the most the text has, and not enough)."""
        words, grams = teacher.grams(text)
        cue = teacher.strongest_cue(words, grams, {self.none}, [], self.cfg.contrary_margin)
        label = self.labels[self.none]
        return render_none(self.cfg.none_reasoning, label, self.cfg.style, cue, self.labels)
