"""Correlation criteria of IQA: SRCC, PLCC and KRCC, thin wrappers over ``scipy.stats``.

- ``srcc``: Spearman's rank correlation (prediction monotonicity), ties get average ranks.
- ``plcc``: Pearson's linear correlation (prediction accuracy). By default on the raw
  predictions, as the paper and most deep BIQA code report it (no fit). ``fit="logistic4"`` or
  ``"logistic5"`` first maps predictions through the VQEG monotonic logistic fitted to the
  scores, the traditional protocol for models whose scale differs from the MOS scale.
- ``krcc``: Kendall's tau-b (the tie-corrected variant ``scipy.stats.kendalltau`` computes).

All three take two 1-D sequences of equal length (>= 2 finite values each) and raise
``ValueError`` naming the argument otherwise. A constant input has no defined correlation:
they return ``nan`` and emit a ``ConstantInputWarning`` (as SciPy does), so a collapsed model
shows up as nan in a report instead of stopping a pipeline.

What the wrappers add to ``spearmanr``/``pearsonr``/``kendalltau``: the input checks above
(SciPy silently propagates NaN), one warning class for constant inputs, and plain floats.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats

LOGISTIC_FITS = ("logistic4", "logistic5")


class ConstantInputWarning(RuntimeWarning):
    """An input is constant, so its correlation is undefined (the result is nan)."""


def _check_pair(pred, target) -> tuple[np.ndarray, np.ndarray]:
    arrays = []
    for name, values in (("pred", pred), ("target", target)):
        try:
            a = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{name}: expected numbers, got {type(values).__name__}") from e
        if a.ndim == 2 and 1 in a.shape:
            a = a.reshape(-1)  # (N, 1) or (1, N): a column or row of numbers
        if a.ndim != 1:
            raise ValueError(f"{name}: expected a 1-D sequence, got shape {a.shape}")
        bad = ~np.isfinite(a)
        if bad.any():
            raise ValueError(
                f"{name}: {int(bad.sum())} non-finite values (NaN/inf), first at index "
                f"{int(np.flatnonzero(bad)[0])}"
            )
        arrays.append(a)
    x, y = arrays
    if x.shape != y.shape:
        raise ValueError(f"pred and target: lengths differ ({x.size} vs {y.size})")
    if x.size < 2:
        raise ValueError(f"pred and target: need at least 2 items, got {x.size}")
    return x, y


def _constant(x: np.ndarray, y: np.ndarray, what: str) -> bool:
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        which = "pred" if np.ptp(x) == 0 else "target"
        warnings.warn(
            f"{what}: {which} is constant, the correlation is undefined; returning nan",
            ConstantInputWarning,
            stacklevel=3,
        )
        return True
    return False


def _clip(r: float) -> float:
    return max(-1.0, min(1.0, float(r)))  # rounding can step past +-1


def srcc(pred, target) -> float:
    """Spearman rank correlation: Pearson correlation of the (average-tie) ranks."""
    x, y = _check_pair(pred, target)
    if _constant(x, y, "srcc"):
        return float("nan")
    return _clip(stats.spearmanr(x, y).statistic)


def plcc(pred, target, fit: str | None = None) -> float:
    """Pearson linear correlation, on raw predictions by default.

    Args:
        pred: predicted scores (N,).
        target: subjective scores (N,).
        fit: None (plain Pearson, the default), ``"logistic4"`` or ``"logistic5"``: map
            ``pred`` through the 4/5-parameter logistic fitted to ``target`` first.
    """
    x, y = _check_pair(pred, target)
    if fit is not None and fit not in LOGISTIC_FITS:
        raise ValueError(f"fit: invalid value {fit!r}; allowed: None, {', '.join(LOGISTIC_FITS)}")
    if _constant(x, y, "plcc"):
        return float("nan")
    if fit is not None:
        x = logistic_fit(x, y, fit)
        if np.ptp(x) == 0:
            warnings.warn(
                "plcc: the logistic fit is flat; returning nan", ConstantInputWarning, stacklevel=2
            )
            return float("nan")
    return _clip(stats.pearsonr(x, y).statistic)


def _logistic4(x, b1, b2, b3, b4):
    # Monotonic sigmoid from b2 (low end) to b1 (high end), centre b3, width |b4|.
    return (b1 - b2) / (1.0 + np.exp(-(x - b3) / np.abs(b4))) + b2


def _logistic5(x, b1, b2, b3, b4, b5):
    # VQEG (2000) 5-parameter: a logistic plus a linear term.
    return b1 * (0.5 - 1.0 / (1.0 + np.exp(b2 * (x - b3)))) + b4 * x + b5


def logistic_fit(pred, target, kind: str = "logistic5") -> np.ndarray:
    """``pred`` mapped through the 4/5-parameter logistic least-squares fitted to ``target``."""
    from scipy.optimize import curve_fit

    x, y = _check_pair(pred, target)
    if kind == "logistic4":
        func = _logistic4
        p0 = [y.max(), y.min(), float(np.mean(x)), float(np.std(x)) or 1.0]
    elif kind == "logistic5":
        func = _logistic5
        p0 = [
            float(np.ptp(y)),
            1.0 / (float(np.std(x)) or 1.0),
            float(np.mean(x)),
            0.0,
            float(np.mean(y)),
        ]
    else:
        raise ValueError(f"kind: invalid value {kind!r}; allowed: {', '.join(LOGISTIC_FITS)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # overflow in exp while exploring parameters
        try:
            params, _ = curve_fit(func, x, y, p0=p0, maxfev=20000)
        except RuntimeError as e:
            raise ValueError(f"logistic_fit: the {kind} fit did not converge: {e}") from e
        return func(x, *params)


def krcc(pred, target) -> float:
    """Kendall's tau-b (``scipy.stats.kendalltau``'s default, tie-corrected)."""
    x, y = _check_pair(pred, target)
    if _constant(x, y, "krcc"):
        return float("nan")
    return _clip(stats.kendalltau(x, y).statistic)


def correlations(pred, target) -> dict[str, float]:
    """``{"srcc", "plcc", "krcc", "n"}`` of one prediction set (plain Pearson for PLCC)."""
    x, y = _check_pair(pred, target)
    return {"srcc": srcc(x, y), "plcc": plcc(x, y), "krcc": krcc(x, y), "n": int(x.size)}
