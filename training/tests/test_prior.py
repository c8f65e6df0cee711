"""The lexical prior: its arithmetic against sklearn's, its weight choice, and where decoding adds it."""

import json
import math

import numpy as np
import pytest

from because_train.decode import decode_batch
from because_train.prior import FLOOR, WEIGHTS, LexicalPrior, choose_weight, fit_prior, fit_register_prior

NAMES = ["sad", "happy", "angry"]
TEXTS = [
    "i am so sad today",
    "this is sad news",
    "sad and lonely again",
    "i am happy !",
    "what a happy day",
    "happy happy joy",
    "i am angry !!",
    "this makes me angry",
    "angry at the world ?!",
]
LABELS = [0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_log_probs_follow_sklearn_within_the_stored_rounding():
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    spec = fit_prior(TEXTS, LABELS, NAMES, c=10.0, min_df=1, seed=0)
    prior = LexicalPrior(spec, 1.0)
    vec = TfidfVectorizer(
        ngram_range=(1, 2), token_pattern=spec["token_pattern"], sublinear_tf=True, min_df=1
    )
    clf = LogisticRegression(C=10.0, max_iter=2000, random_state=0).fit(vec.fit_transform(TEXTS), LABELS)
    probes = ["I am SAD, so sad!", "Happy day", "nothing known here", "", "angry angry angry ?"]
    want = clf.predict_log_proba(vec.transform(probes))
    got = np.asarray([prior.log_probs(t) for t in probes])
    np.testing.assert_allclose(got, want, atol=5e-3)
    # Capitals are lowered, so a shouted text reads as the quiet one.
    assert prior.log_probs("I AM SO SAD") == prior.log_probs("i am so sad")
    # No known term: the intercept alone decides.
    z = np.asarray(spec["intercept"])
    np.testing.assert_allclose(prior.log_probs("zzz"), z - np.log(np.exp(z).sum()), atol=1e-12)
    assert spec["labels"] == NAMES and len(spec["coef"]) == len(spec["vocabulary"]) == len(spec["idf"])


def test_for_source_scales_by_the_weight_and_reads_invalid_utf8():
    spec = fit_prior(TEXTS, LABELS, NAMES, c=10.0, min_df=1, seed=0)
    half = LexicalPrior(spec, 0.5).for_source(b"so sad")
    np.testing.assert_allclose(half, 0.5 * np.asarray(LexicalPrior(spec, 1.0).log_probs("so sad")))
    assert LexicalPrior(spec, 1.0).for_source(b"sad \xff\xfe").shape == (3,)


def test_a_prior_with_other_labels_or_format_is_refused(tmp_path):
    spec = fit_prior(TEXTS, LABELS, NAMES, c=10.0, min_df=1, seed=0)
    with pytest.raises(ValueError, match="format"):
        LexicalPrior({**spec, "format": "other"}, 1.0)
    (tmp_path / "prior.json").write_text(__import__("json").dumps(spec))
    manifest = {"labels": ["a", "b", "c"], "prior": {"file": "prior.json", "weight": 1.0}}
    with pytest.raises(ValueError, match="labels"):
        LexicalPrior.load(tmp_path, manifest)
    assert LexicalPrior.load(tmp_path, {"labels": NAMES}) is None


def test_choose_weight_takes_the_prior_where_it_knows_better():
    rng = np.random.default_rng(0)
    gold = {s: rng.integers(0, 3, 300) for s in ("a", "b")}
    # The model is right half the time; the prior knows the gold label.
    logits = {
        s: np.where(rng.random((300, 1)) < 0.5, 4.0 * np.eye(3)[g], rng.normal(0, 2, (300, 3)))
        for s, g in gold.items()
    }
    right = {s: np.log(np.where(np.eye(3)[g] > 0, 0.9, 0.05)) for s, g in gold.items()}
    w, losses = choose_weight(logits, right, gold)
    assert w > 0 and set(losses) == {f"{x:.1f}" for x in WEIGHTS}
    # A prior that knows nothing gets less weight than one that knows the label.
    noise = {s: np.log(rng.dirichlet(np.ones(3), 300)) for s in gold}
    w_noise, _ = choose_weight(logits, noise, gold)
    assert w_noise < w


def _fake(vocab: int, plan: list[int]):
    def forward(ids, mask, pos, past):
        step = 0 if past is None else past + 1
        logits = np.zeros((ids.shape[0], vocab), dtype=np.float32)
        logits[:, plan[min(step, len(plan) - 1)]] = 5.0
        logits[:, 3] += 4.0  # "happy" is the second choice everywhere
        return logits, step

    return forward


def test_decoding_adds_the_prior_until_a_label_is_named_then_never():
    # ids: 0 pad, 1 marker, 2 "sad", 3 "happy", 4 "angry", 5 ","
    plan = [2, 5, 4, 1]  # the model would write: sad , angry <marker>
    common = dict(kind="qra", marker=1, banned=[0], label_ids=[2, 3, 4], max_reasoning=8, pad=0)
    plain = decode_batch(_fake(6, plan), [[5]], scores_at_first_label=True, **common)[0]
    assert plain.reasoning_ids == [2, 5, 4] and plain.label == 0
    # A prior for "happy" of +2 outweighs the model's 1-point preference for "sad": the reasoning
    # names happy first and the label is happy; the later "angry" is not pushed (named already).
    prior = [np.array([0.0, 2.0, 0.0])]
    fused = decode_batch(_fake(6, plan), [[5]], scores_at_first_label=True, priors=prior, **common)[0]
    assert fused.reasoning_ids[0] == 3 and fused.label == 1
    np.testing.assert_allclose(fused.label_logits, [5.0, 6.0, 0.0])
    assert fused.reasoning_ids[2] == 4
    # qa: added at the marker.
    qa = decode_batch(_fake(6, plan), [[5]], **{**common, "kind": "qa"}, priors=prior)[0]
    np.testing.assert_allclose(qa.label_logits, [5.0, 6.0, 0.0])


def test_max_terms_keeps_the_weightiest_terms_and_fits_again():
    spec = fit_prior(TEXTS, LABELS, NAMES, c=10.0, min_df=1, seed=0, max_terms=4)
    assert len(spec["vocabulary"]) == len(spec["idf"]) == len(spec["coef"]) == 4
    assert spec["vocabulary"] == sorted(spec["vocabulary"])
    # The label words decide this data: they are what is kept.
    assert {"sad", "happy", "angry"} <= set(spec["vocabulary"])
    prior = LexicalPrior(spec, 1.0)
    assert int(np.argmax(prior.log_probs("So ANGRY"))) == 2


def _linear(
    labels: list[str], vocabulary: list[str], coef: list[list[float]], intercept: list[float]
) -> dict:
    """A tfidf-logreg-v1 object with idf 1 everywhere, small enough to work out by hand."""
    return {
        "format": "tfidf-logreg-v1",
        "labels": labels,
        "lowercase": True,
        "token_pattern": "[a-z0-9]+|[!?]+",
        "ngram_range": [1, 1],
        "sublinear_tf": True,
        "vocabulary": vocabulary,
        "idf": [1.0] * len(vocabulary),
        "coef": coef,
        "intercept": intercept,
    }


# Two registers. The gate reads "lol" as chat: for "lol" (one known term, x = 1) its logits are
# tweet 0, chat ln 3, so g = [1/4, 3/4]. The tweet expert knows all three labels and says
# [1/2, 1/4, 1/4] for any text (intercepts only); the chat expert lacks "love" and says [1/3, 2/3].
REGISTERS_SPEC = {
    "format": "tfidf-logreg-registers-v1",
    "labels": ["sad", "happy", "love"],
    "registers": ["tweet", "chat"],
    "gate": _linear(["tweet", "chat"], ["lol"], [[0.0, math.log(3)]], [0.0, 0.0]),
    "experts": [
        _linear(["sad", "happy", "love"], ["lol"], [[0.0, 0.0, 0.0]], [math.log(2), 0.0, 0.0]),
        _linear(["sad", "happy"], ["lol"], [[0.0, 0.0]], [0.0, math.log(2)]),
    ],
}


def test_a_registers_prior_mixes_its_experts_by_the_gate():
    prior = LexicalPrior(REGISTERS_SPEC, weights=[2.0, 0.4])
    np.testing.assert_allclose(prior.gate_probs("LOL"), [0.25, 0.75], atol=1e-12)
    # p = g_tweet x tweet + g_chat x chat, the chat expert adding nothing to "love".
    want = [0.25 * 0.5 + 0.75 / 3, 0.25 * 0.25 + 0.75 * 2 / 3, 0.25 * 0.25]
    np.testing.assert_allclose(prior.log_probs("lol"), np.log(want), atol=1e-12)
    # The weight is the gate's mix of the registers' weights: 0.25 x 2 + 0.75 x 0.4 = 0.8.
    np.testing.assert_allclose(prior.for_source(b"lol"), 0.8 * np.log(want), atol=1e-12)
    # No known term: the gate is even, as are its weight and the mixture's halves.
    np.testing.assert_allclose(prior.gate_probs("hello"), [0.5, 0.5], atol=1e-12)
    np.testing.assert_allclose(prior.weight_for(prior.gate_probs("hello")), 1.2, atol=1e-12)
    assert prior.terms == 3


def test_a_label_no_expert_knows_is_floored_not_minus_infinity():
    spec = json.loads(json.dumps(REGISTERS_SPEC))
    spec["experts"][0] = _linear(["sad", "happy"], ["lol"], [[0.0, 0.0]], [0.0, 0.0])
    lp = LexicalPrior(spec, weights=[1.0, 1.0]).log_probs("lol")
    assert lp[2] == pytest.approx(math.log(FLOOR))


def test_a_registers_prior_is_refused_when_its_parts_disagree(tmp_path):
    bad_gate = {**REGISTERS_SPEC, "gate": {**REGISTERS_SPEC["gate"], "labels": ["chat", "tweet"]}}
    with pytest.raises(ValueError, match="gate"):
        LexicalPrior(bad_gate)
    with pytest.raises(ValueError, match="experts"):
        LexicalPrior({**REGISTERS_SPEC, "experts": REGISTERS_SPEC["experts"][:1]})
    unordered = json.loads(json.dumps(REGISTERS_SPEC))
    unordered["experts"][1]["labels"] = ["happy", "sad"]
    with pytest.raises(ValueError, match="in order"):
        LexicalPrior(unordered)
    (tmp_path / "prior.json").write_text(json.dumps(REGISTERS_SPEC))
    manifest = {
        "labels": REGISTERS_SPEC["labels"],
        "prior": {"file": "prior.json", "weights": {"tweet": 1.0}},
    }
    with pytest.raises(ValueError, match="weights"):
        LexicalPrior.load(tmp_path, manifest)
    manifest["prior"]["weights"] = {"chat": 0.5, "tweet": 1.5}
    loaded = LexicalPrior.load(tmp_path, manifest)
    assert loaded is not None and loaded.weights == [1.5, 0.5]  # prior.json's order, not the manifest's


def test_fit_register_prior_gives_each_register_its_own_labels():
    sources = ["a"] * 5 + ["b"] * 3 + ["a"]  # register b: one happy row and two angry ones
    spec = fit_register_prior(TEXTS, LABELS, sources, NAMES, ["a", "b"], c=10.0, min_df=1, seed=0)
    assert spec["registers"] == ["a", "b"] and spec["gate"]["labels"] == ["a", "b"]
    assert spec["experts"][0]["labels"] == NAMES and spec["experts"][1]["labels"] == ["happy", "angry"]
    prior = LexicalPrior(spec, weights=[1.0, 1.0])
    assert prior.columns == [[0, 1, 2], [1, 2]]
    assert np.argmax(prior.log_probs("so angry !!")) == 2


def test_abstain_leaves_a_label_to_the_experts_that_know_it():
    # "lol": g = [1/4, 3/4]; the chat expert lacks "love", so love is the tweet expert's alone (1/4),
    # while sad and happy mix as with "zero".
    prior = LexicalPrior({**REGISTERS_SPEC, "missing": "abstain"}, weights=[1.0, 1.0])
    want = [0.25 * 0.5 + 0.75 / 3, 0.25 * 0.25 + 0.75 * 2 / 3, 0.25]
    np.testing.assert_allclose(prior.log_probs("lol"), np.log(want), atol=1e-12)
    with pytest.raises(ValueError, match="missing"):
        LexicalPrior({**REGISTERS_SPEC, "missing": "ignore"})
