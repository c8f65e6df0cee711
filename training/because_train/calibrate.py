"""Score calibration: a temperature for the label logits, fitted on validation data.

The label scores are softmax(label logits / T). T is fitted by minimising the negative
log-likelihood of the gold labels, every source weighing alike (`metrics.fit_temperature`). The
expected calibration error (10 equal-width bins over the top score) is reported per source before
(T = 1) and after; and, since fitting and measuring on the same rows flatters the result, also
cross-fitted: each half of a source's rows (seeded) is scored with the T fitted on the other half.

With a registers prior (prior.py) the temperature is one per register, T(x) = sum_r g_r(x) T_r over
the gate's register probabilities g(x): one temperature could not be right on every register at once
(the model is as sure of itself on film dialogue, which it gets right about half of the time, as on
tweets). The T_r are fitted together by the same likelihood, every source weighing alike.
"""

from collections.abc import Sequence
from typing import Any

import numpy as np

from because_train.decode import label_scores
from because_train.metrics import expected_calibration_error, fit_temperature


def temperature_of(
    calibration: dict[str, Any] | None, registers: Sequence[str] | None, gate: Sequence[float] | None
) -> float:
    """The temperature of one text: the package's, or sum_r g_r T_r for a register temperature
    (registers in prior.json's order, sums in that order, as src/ does)."""
    if not calibration:
        return 1.0
    if calibration.get("method") != "register-temperature":
        return float(calibration.get("temperature", 1.0))
    if registers is None or gate is None:
        raise ValueError("calibration: a register temperature needs a registers prior")
    t = 0.0
    for g, r in zip(gate, registers, strict=True):
        t += g * float(calibration["temperatures"][r])
    return t


def ece_at(logits: np.ndarray, gold: np.ndarray, temperature: float | np.ndarray) -> float:
    """ECE of softmax(logits / T): one T, or one per row."""
    t = np.asarray(temperature, dtype=np.float64)
    p = label_scores(logits, t[:, None] if t.ndim == 1 else float(t))
    return expected_calibration_error(p.max(axis=1).tolist(), (p.argmax(axis=1) == gold).tolist())


def fit_register_temperatures(
    z: dict[str, np.ndarray], y: dict[str, np.ndarray], gates: dict[str, np.ndarray], start: float
) -> np.ndarray:
    """T_r (one per column of the gates) minimising the mean over sources of each source's negative
    log-likelihood of softmax(z / (gate . T)); Nelder-Mead over log T from `start` for each."""
    from scipy.optimize import minimize

    names = sorted(z)

    def nll(log_t: np.ndarray) -> float:
        out = []
        for n in names:
            s = z[n] / (gates[n] @ np.exp(log_t))[:, None]
            s = s - s.max(axis=1, keepdims=True)
            lp = s - np.log(np.exp(s).sum(axis=1, keepdims=True))
            out.append(-lp[np.arange(len(y[n])), y[n]].mean())
        return float(np.mean(out))

    k = next(iter(gates.values())).shape[1]
    res = minimize(
        nll,
        np.full(k, np.log(start)),
        method="Nelder-Mead",
        options={"xatol": 1e-6, "fatol": 1e-10, "maxiter": 4000},
    )
    return np.exp(res.x)


def calibrate(
    by_source: dict[str, tuple[Sequence[Sequence[float]], Sequence[int]]],
    seed: int,
    gates: dict[str, Sequence[Sequence[float]]] | None = None,
    registers: Sequence[str] | None = None,
    fit_on: Sequence[str] = (),
) -> dict[str, Any]:
    """`by_source[name] = (label logits per row, gold label per row)` -> the calibration record
    for the manifest: the temperature and ECE per source before, after and cross-fitted. With
    `gates` (each row's register probabilities, columns in `registers` order): a register
    temperature. `fit_on`: the sources the temperatures are fitted on (empty: all); ECE is
    reported for every source."""
    names = sorted(by_source)
    fitted = [n for n in names if not fit_on or n in fit_on]
    z = {n: np.asarray(by_source[n][0], dtype=np.float64) for n in names}
    y = {n: np.asarray(by_source[n][1]) for n in names}
    if gates is not None:
        assert registers is not None
        return _calibrate_registers(
            z, y, {n: np.asarray(gates[n], dtype=np.float64) for n in names}, list(registers), seed, fitted
        )

    def fit(select: dict[str, np.ndarray]) -> float:
        logits = [row for n in fitted for row in z[n][select[n]]]
        gold = [int(g) for n in fitted for g in y[n][select[n]]]
        groups = [n for n in fitted for _ in range(int(select[n].sum()))]
        return fit_temperature(logits, gold, groups)

    everything = {n: np.ones(len(y[n]), dtype=bool) for n in names}
    temperature = fit(everything)
    rng = np.random.default_rng(seed)
    half = {n: rng.random(len(y[n])) < 0.5 for n in names}
    t_a = fit(half)  # fitted on the first halves, applied to the second
    t_b = fit({n: ~half[n] for n in names})
    per_source: dict[str, dict[str, float]] = {}
    for n in names:
        a, b = half[n], ~half[n]
        cross = (ece_at(z[n][b], y[n][b], t_a) * b.sum() + ece_at(z[n][a], y[n][a], t_b) * a.sum()) / len(
            y[n]
        )
        per_source[n] = {
            "n": int(len(y[n])),
            "ece_uncalibrated": ece_at(z[n], y[n], 1.0),
            "ece": ece_at(z[n], y[n], temperature),
            "ece_cross_fitted": float(cross),
            "mean_top_score_uncalibrated": float(label_scores(z[n], 1.0).max(axis=1).mean()),
            "mean_top_score": float(label_scores(z[n], temperature).max(axis=1).mean()),
        }
    return {
        "method": "temperature",
        "temperature": temperature,
        "fitted_on": _fitted_on(names, fitted),
        "bins": 10,
        "per_source": per_source,
        "cross_fitted_temperatures": [t_a, t_b],
    }


def _calibrate_registers(
    z: dict[str, np.ndarray],
    y: dict[str, np.ndarray],
    g: dict[str, np.ndarray],
    registers: list[str],
    seed: int,
    fitted: list[str],
) -> dict[str, Any]:
    names = sorted(z)
    single = calibrate({n: (z[n], y[n]) for n in names}, seed, fit_on=fitted)["temperature"]

    def fit(select: dict[str, np.ndarray]) -> np.ndarray:
        return fit_register_temperatures(
            {n: z[n][select[n]] for n in fitted},
            {n: y[n][select[n]] for n in fitted},
            {n: g[n][select[n]] for n in fitted},
            single,
        )

    temps = fit({n: np.ones(len(y[n]), dtype=bool) for n in names})
    rng = np.random.default_rng(seed)
    half = {n: rng.random(len(y[n])) < 0.5 for n in names}
    t_a, t_b = fit(half), fit({n: ~half[n] for n in names})
    per_source: dict[str, dict[str, float]] = {}
    for n in names:
        a, b = half[n], ~half[n]
        row_t = g[n] @ temps
        cross = (
            ece_at(z[n][b], y[n][b], g[n][b] @ t_a) * b.sum()
            + ece_at(z[n][a], y[n][a], g[n][a] @ t_b) * a.sum()
        ) / len(y[n])
        per_source[n] = {
            "n": int(len(y[n])),
            "ece_uncalibrated": ece_at(z[n], y[n], 1.0),
            "ece_one_temperature": ece_at(z[n], y[n], single),
            "ece": ece_at(z[n], y[n], row_t),
            "ece_cross_fitted": float(cross),
            "mean_top_score_uncalibrated": float(label_scores(z[n], 1.0).max(axis=1).mean()),
            "mean_top_score": float(label_scores(z[n], row_t[:, None]).max(axis=1).mean()),
        }
    return {
        "method": "register-temperature",
        "temperatures": {r: float(t) for r, t in zip(registers, temps, strict=True)},
        "one_temperature": single,
        "fitted_on": _fitted_on(names, fitted) + "; T(x) = sum_r p(register r | x) T_r",
        "bins": 10,
        "per_source": per_source,
        "cross_fitted_temperatures": [
            {r: float(t) for r, t in zip(registers, ts, strict=True)} for ts in (t_a, t_b)
        ],
    }


def _fitted_on(names: list[str], fitted: list[str]) -> str:
    if fitted == names:
        return "validation rows of every source, each source weighing alike"
    return f"validation rows of {', '.join(fitted)} (export.calibrate_on), each source weighing alike"
