"""Calibration: the ECE as defined, a temperature that fixes an over-confident model, cross-fitting."""

import numpy as np
import pytest

from because_train.calibrate import calibrate
from because_train.decode import label_scores
from because_train.metrics import expected_calibration_error, fit_temperature


def test_ece_by_hand():
    # Bin [0.9, 1.0]: 2 rows, mean score 0.95, accuracy 0.5 -> 0.45 x 2/4; bin [0.6, 0.7): 2 rows,
    # mean 0.6, accuracy 1 -> 0.4 x 2/4.
    assert expected_calibration_error([0.9, 1.0, 0.6, 0.6], [True, False, True, True]) == pytest.approx(0.425)
    assert expected_calibration_error([0.75] * 4, [True, True, True, False]) == pytest.approx(0.0)


def synthetic(n: int, true_t: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits of a model whose confidence is right at temperature `true_t`: labels drawn from
    label_scores(z / true_t)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 6, size=(n, 6))
    p = label_scores(z, true_t)
    y = np.array([rng.choice(6, p=row) for row in p])
    return z, y


def test_fit_temperature_recovers_the_temperature_of_the_data():
    z, y = synthetic(4000, 3.0, 1)
    t = fit_temperature(list(z), list(y), ["a"] * len(y))
    assert 2.7 < t < 3.3


def test_calibrate_lowers_the_ece_of_an_overconfident_model_and_scores_still_sum_to_one():
    za, ya = synthetic(3000, 4.0, 2)
    zb, yb = synthetic(1000, 4.0, 3)
    cal = calibrate({"a": (za.tolist(), ya.tolist()), "b": (zb.tolist(), yb.tolist())}, seed=0)
    assert cal["method"] == "temperature" and 3.5 < cal["temperature"] < 4.5
    for name in ("a", "b"):
        s = cal["per_source"][name]
        assert s["ece_uncalibrated"] > 0.15
        assert s["ece"] < 0.05 and s["ece_cross_fitted"] < 0.06
        assert s["mean_top_score"] < s["mean_top_score_uncalibrated"]
    p = label_scores(za, cal["temperature"])
    assert np.allclose(p.sum(axis=1), 1) and (p.argmax(axis=1) == za.argmax(axis=1)).all()


def test_register_temperatures_follow_each_register_and_fit_on_leaves_a_source_out():
    # Two sources whose rows are right at temperatures 1 and 4; each row's gate is sure of its source.
    za, ya = synthetic(3000, 1.0, 2)
    zb, yb = synthetic(3000, 4.0, 3)
    gates = {"a": [[1.0, 0.0]] * 3000, "b": [[0.0, 1.0]] * 3000}
    cal = calibrate({"a": (za, ya), "b": (zb, yb)}, 0, gates, ["a", "b"])
    assert cal["method"] == "register-temperature"
    assert cal["temperatures"]["a"] == pytest.approx(1.0, rel=0.1)
    assert cal["temperatures"]["b"] == pytest.approx(4.0, rel=0.1)
    # One temperature for both lies between and is worse on each than its own.
    for n in ("a", "b"):
        assert cal["per_source"][n]["ece"] < cal["per_source"][n]["ece_one_temperature"]
    # Fitted on "a" alone, one temperature is a's, and b is still reported.
    only_a = calibrate({"a": (za, ya), "b": (zb, yb)}, 0, fit_on=["a"])
    assert only_a["temperature"] == pytest.approx(1.0, rel=0.1)
    assert "b" in only_a["per_source"] and only_a["fitted_on"].startswith("validation rows of a (")
