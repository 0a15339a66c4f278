"""Statistics between systems: :func:`paired_test` (``PAIRED_TESTS``), :func:`significantly_better`,
:func:`seed_test` over trained models (seeds are the unit, DESIGN.md §7.3) and :func:`mean_std`.
"""
from __future__ import annotations

import warnings
from typing import Callable, Sequence

import numpy as np

from emorank.metrics.inputs import MetricInputError, _as_vector, _check_same_len

# ----------------------------------------------------------------------------------------------------------------
# statistics over trials / lists


def _ttest(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    from scipy.stats import ttest_rel

    result = ttest_rel(a, b)
    return float(result.statistic), float(result.pvalue)


def _wilcoxon(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    from scipy.stats import wilcoxon

    result = wilcoxon(a, b)
    return float(result.statistic), float(result.pvalue)


PAIRED_TESTS: dict[str, Callable[[np.ndarray, np.ndarray], tuple[float, float]]] = {
    "ttest": _ttest,  # paired two-tailed Student t (scipy.stats.ttest_rel)
    "wilcoxon": _wilcoxon,  # Wilcoxon signed-rank, two-tailed (scipy.stats.wilcoxon)
}


def paired_test(a: np.ndarray, b: np.ndarray, test: str = "ttest") -> dict:
    """Two-tailed paired significance test between two systems' per-trial (or per-list) scores.

    ``a[i]`` and ``b[i]`` must come from the same trial / list. Degenerate cases, where scipy returns NaN:
    all differences zero -> statistic 0.0, p 1.0 (no evidence of a difference); for the t-test, a constant
    non-zero difference -> statistic +-inf, p 0.0 (a systematic difference with no variability).

    Returns:
        {"statistic": float, "p": float, "test": name}.
    """
    if test not in PAIRED_TESTS:
        raise MetricInputError(f"unknown paired test {test!r}; valid tests: {', '.join(PAIRED_TESTS)}")
    a = _as_vector(a, "a", min_len=2)
    b = _as_vector(b, "b", min_len=2)
    _check_same_len(a, b, "a", "b")
    diff = a - b  # [n]
    if np.all(diff == 0.0):
        return {"statistic": 0.0, "p": 1.0, "test": test}
    if test == "ttest" and np.all(diff == diff[0]):
        return {"statistic": float(np.copysign(np.inf, diff[0])), "p": 0.0, "test": test}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # small-sample / precision notes from scipy
        statistic, p = PAIRED_TESTS[test](a, b)
    return {"statistic": statistic, "p": p, "test": test}


def significantly_better(
    a: np.ndarray, b: np.ndarray, higher_is_better: bool, alpha: float = 0.05, test: str = "ttest"
) -> bool:
    """True when system ``a`` beats ``b`` in the right direction (mean) and the two-tailed paired test has p < alpha.

    This is the paper's "*" (two-tailed test, p < 0.05): use ``higher_is_better=False`` for MMD / Wasserstein and
    True for Kendall tau / recall.
    """
    if not 0.0 < alpha < 1.0:
        raise MetricInputError(f"alpha must lie in (0, 1), got {alpha}")
    result = paired_test(a, b, test)
    mean_diff = float(np.mean(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)))
    better = mean_diff > 0.0 if higher_is_better else mean_diff < 0.0
    return bool(better and result["p"] < alpha)


SEED_TESTS = ("welch", "paired")


def seed_test(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, test: str = "welch") -> dict:
    """Two-tailed test between two systems with the trained model (seed) as the unit: one score per seed each.

    ``"welch"`` (default): Welch's unequal-variance t-test (scipy.stats.ttest_ind, equal_var=False); the seeds
    of two systems are independent draws. ``"paired"``: paired t-test over seeds (a[k], b[k] trained with seed k
    on the same splits). Degenerate cases, where scipy returns NaN: no variation within either system and equal
    means -> p 1.0; no variation and different means -> p 0.0.

    Returns:
        {"statistic", "p", "test", "n_a", "n_b"}.
    """
    if test not in SEED_TESTS:
        raise MetricInputError(f"unknown seed test {test!r}; valid tests: {', '.join(SEED_TESTS)}")
    a = _as_vector(a, "a", min_len=2)
    b = _as_vector(b, "b", min_len=2)
    if test == "paired":
        _check_same_len(a, b, "a", "b")
        out = paired_test(a, b, "ttest")
    elif a.std() == 0.0 and b.std() == 0.0:
        same = a[0] == b[0]
        out = {"statistic": 0.0 if same else float(np.copysign(np.inf, a[0] - b[0])), "p": 1.0 if same else 0.0}
    else:
        from scipy.stats import ttest_ind

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            result = ttest_ind(a, b, equal_var=False)
        out = {"statistic": float(result.statistic), "p": float(result.pvalue)}
    return {**out, "test": test, "n_a": int(a.size), "n_b": int(b.size)}


def mean_std(values: Sequence[float] | np.ndarray) -> dict:
    """{"mean", "std"} of a sample; std is the sample standard deviation (ddof=1), 0.0 for a single value.

    Sample (not population) std because the trials / lists are a sample of the evaluation's randomness; the
    paper does not say which it uses.
    """
    arr = _as_vector(values, "values")
    std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    return {"mean": float(arr.mean()), "std": std}
