"""SRCC, PLCC and KRCC: SciPy's values through the project's checks."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats

from dgqa_ray.metrics import (
    ConstantInputWarning,
    correlations,
    krcc,
    logistic_fit,
    plcc,
    srcc,
)


def _pairs():
    rng = np.random.default_rng(7)
    cases = []
    for n in (2, 3, 10, 257, 3000):
        x = rng.normal(size=n)
        y = 0.7 * x + rng.normal(size=n)
        cases.append((f"continuous-{n}", x, y))
        # Heavy ties on both sides (coarse predictions, integer MOS): tie handling matters.
        cases.append((f"ties-{n}", np.round(x, 0), np.round(y * 2) / 2))
    cases.append(("anti", np.arange(20.0), -(np.arange(20.0) ** 3)))
    cases.append(("lists", [1, 2, 2, 3, 5], [2.0, 1.0, 4.0, 4.0, 9.0]))
    return [c for c in cases if np.ptp(c[1]) > 0 and np.ptp(c[2]) > 0]


PAIRS = _pairs()


@pytest.mark.parametrize(("name", "x", "y"), PAIRS, ids=[p[0] for p in PAIRS])
def test_match_scipy(name, x, y):
    assert srcc(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    assert plcc(x, y) == pytest.approx(stats.pearsonr(x, y).statistic, abs=1e-12)
    assert krcc(x, y) == pytest.approx(stats.kendalltau(x, y).statistic, abs=1e-12)


def test_values_worked_by_hand():
    # ranks of x: 1 2 3 4 5; of y (ties averaged): 1 2 3.5 5 3.5 -> d^2 sum = 3.5
    x, y = [1, 2, 3, 4, 5], [5, 6, 7, 8, 7]
    assert srcc(x, y) == pytest.approx(0.8207826816681233)
    # 10 pairs: 8 concordant, 1 discordant (4-5), 1 tied in y (3-5): (8-1)/sqrt(10*9)
    assert krcc(x, y) == pytest.approx(7 / np.sqrt(90))
    assert plcc([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert plcc([1, 2, 3], [6, 4, 2]) == pytest.approx(-1.0)


def test_krcc_is_fast_on_a_koniq_sized_set():
    rng = np.random.default_rng(0)
    x = rng.normal(size=10073)
    y = x + rng.normal(size=10073)
    assert krcc(x, y) == pytest.approx(stats.kendalltau(x, y).statistic, abs=1e-12)


def test_column_vectors_are_accepted():
    x = np.arange(6.0)
    assert srcc(x[:, None], x[None, :]) == pytest.approx(1.0)


@pytest.mark.parametrize("metric", [srcc, plcc, krcc])
def test_bad_input_errors(metric):
    with pytest.raises(ValueError, match=r"lengths differ \(3 vs 2\)"):
        metric([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="at least 2 items, got 1"):
        metric([1.0], [2.0])
    with pytest.raises(ValueError, match="pred: 1 non-finite values .* index 1"):
        metric([1.0, np.nan, 3.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="target: 1 non-finite"):
        metric([1.0, 2.0, 3.0], [1.0, np.inf, 3.0])
    with pytest.raises(ValueError, match="expected a 1-D sequence"):
        metric(np.ones((2, 2)), np.ones((2, 2)))


@pytest.mark.parametrize("metric", [srcc, plcc, krcc])
def test_constant_input_is_nan_with_warning(metric):
    with pytest.warns(ConstantInputWarning, match="pred is constant"):
        assert np.isnan(metric([2.0, 2.0, 2.0], [1.0, 2.0, 3.0]))
    with pytest.warns(ConstantInputWarning, match="target is constant"):
        assert np.isnan(metric([1.0, 2.0, 3.0], [5.0, 5.0, 5.0]))


def test_plcc_logistic_fit_linearises_a_monotonic_relation():
    rng = np.random.default_rng(1)
    x = rng.uniform(-3, 3, size=400)
    y = 5.0 / (1.0 + np.exp(-2.0 * x)) + rng.normal(scale=0.05, size=400)  # sigmoid-shaped
    plain = plcc(x, y)
    for fit in ("logistic4", "logistic5"):
        fitted = plcc(x, y, fit=fit)
        assert fitted > plain + 0.02 and fitted > 0.99
    # The fit is monotonic, so ranks are unchanged.
    assert srcc(logistic_fit(x, y, "logistic5"), y) == pytest.approx(srcc(x, y), abs=1e-3)
    with pytest.raises(ValueError, match="fit: invalid value 'cubic'"):
        plcc(x, y, fit="cubic")


def test_correlations_bundle():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    y = np.array([1.0, 3.0, 2.0, 4.0])
    out = correlations(x, y)
    assert out["n"] == 4
    assert out["srcc"] == pytest.approx(0.8) and out["krcc"] == pytest.approx(2 / 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning on ordinary input
        correlations(x, y)
