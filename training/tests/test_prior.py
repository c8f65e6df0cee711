"""The lexical prior: its arithmetic against sklearn's, its weight choice, and where decoding adds it."""

import numpy as np
import pytest

from because_train.decode import decode_batch
from because_train.prior import WEIGHTS, LexicalPrior, choose_weight, fit_prior

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
