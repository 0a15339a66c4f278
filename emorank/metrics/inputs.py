"""Input checks shared by the metrics: arrays of the right shape, size and contents, or a
:class:`MetricInputError` that names the argument.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

ORDINALITY_AXES = ("valence", "arousal")  # column 0 / column 1 of a (valence, arousal) pair
TIE_MODES = ("pessimistic", "expected", "optimistic")


class MetricInputError(ValueError):
    """An array passed to a metric has the wrong shape, size or contents (the message names the argument)."""


# ----------------------------------------------------------------------------------------------------------------
# input checks


def _as_matrix(a: np.ndarray, name: str) -> np.ndarray:
    """Return ``a`` as a finite float64 matrix [N, D] with N >= 1, or raise MetricInputError naming ``name``."""
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim != 2:
        raise MetricInputError(f"{name} must be a 2-D array [N, D], got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise MetricInputError(f"{name} must be non-empty, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise MetricInputError(f"{name} contains NaN or infinite values")
    return arr


def _as_vector(a: Sequence[float] | np.ndarray, name: str, min_len: int = 1) -> np.ndarray:
    """Return ``a`` as a finite float64 vector [N] with N >= ``min_len``, or raise MetricInputError."""
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim != 1:
        raise MetricInputError(f"{name} must be a 1-D array [N], got shape {arr.shape}")
    if arr.shape[0] < min_len:
        raise MetricInputError(f"{name} needs at least {min_len} value(s), got {arr.shape[0]}")
    if not np.all(np.isfinite(arr)):
        raise MetricInputError(f"{name} contains NaN or infinite values")
    return arr


def _check_same_dim(x: np.ndarray, y: np.ndarray, xname: str = "x", yname: str = "y") -> None:
    if x.shape[1] != y.shape[1]:
        raise MetricInputError(
            f"{xname} and {yname} must have the same embedding size, got {x.shape[1]} and {y.shape[1]}"
        )


def _check_same_len(a: np.ndarray, b: np.ndarray, aname: str, bname: str) -> None:
    if a.shape[0] != b.shape[0]:
        raise MetricInputError(f"{aname} and {bname} must have the same length, got {a.shape[0]} and {b.shape[0]}")


# ----------------------------------------------------------------------------------------------------------------
# cross-modal alignment: MMD and Wasserstein (Table 1)


def _subsample_rows(a: np.ndarray, k: int, seed: int) -> np.ndarray:
    """At most ``k`` rows of ``a`` chosen without replacement by a generator that depends only on ``seed``."""
    if a.shape[0] <= k:
        return a
    idx = np.random.default_rng(seed).choice(a.shape[0], size=k, replace=False)
    return a[np.sort(idx)]
