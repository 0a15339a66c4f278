"""Valence-arousal estimation and its agreement with labels: :func:`va_grid`, :func:`va_from_similarity` (a clip's
V-A point from its similarity to captions of known points), :func:`ccc`, :func:`pearson`.
"""
from __future__ import annotations

import numpy as np

from emorank.metrics.inputs import (
    MetricInputError,
    _as_matrix,
    _as_vector,
    _check_same_len,
)

# ----------------------------------------------------------------------------------------------------------------
# agreement of continuous predictions


def ccc(x: np.ndarray, y: np.ndarray) -> float:
    """Lin's concordance correlation coefficient 2 cov(x, y) / (var x + var y + (mean x - mean y)^2).

    Population (ddof=0) moments, as in Lin (1989) and the speech-emotion literature. When both inputs are
    constant and equal the ratio is 0/0; that is perfect agreement, so 1.0 is returned.
    """
    x = _as_vector(x, "x")
    y = _as_vector(y, "y")
    _check_same_len(x, y, "x", "y")
    mx, my = x.mean(), y.mean()
    cov = float(np.mean((x - mx) * (y - my)))
    denom = float(x.var() + y.var() + (mx - my) ** 2)
    return 1.0 if denom == 0.0 else 2.0 * cov / denom


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation; 0.0 where undefined (a constant input carries no linear association)."""
    x = _as_vector(x, "x", min_len=2)
    y = _as_vector(y, "y", min_len=2)
    _check_same_len(x, y, "x", "y")
    xc, yc = x - x.mean(), y - y.mean()
    denom = float(np.sqrt((xc @ xc) * (yc @ yc)))
    return 0.0 if denom == 0.0 else float(np.clip((xc @ yc) / denom, -1.0, 1.0))


def va_grid(step: float = 0.5, low: float = 1.0, high: float = 7.0) -> np.ndarray:
    """Grid points [G, 2] of (valence, arousal) over [low, high]^2 in steps of ``step`` (13 x 13 = 169 by default).

    Valence varies slowest: row index = i_valence * n + i_arousal.
    """
    if not step > 0.0:
        raise MetricInputError(f"step must be positive, got {step}")
    if not high > low:
        raise MetricInputError(f"high must exceed low, got low={low}, high={high}")
    axis = np.arange(low, high + step / 2.0, step)  # [n]
    valence, arousal = np.meshgrid(axis, axis, indexing="ij")
    return np.stack([valence.ravel(), arousal.ravel()], axis=1)


def va_from_similarity(sim: np.ndarray, grid_va: np.ndarray, temperature: float = 0.05) -> np.ndarray:
    """(valence, arousal) estimate per clip from its similarity to captions of known V-A grid points.

    Our interpretation (the paper does no V-A regression): softmax over the grid of sim / temperature, then
    the probability-weighted mean of the grid points. A small temperature approaches the arg-max grid point;
    a large one approaches the grid centre.

    Args:
        sim: [N, G] similarity of each of N clips to the caption of each of G grid points.
        grid_va: [G, 2] (valence, arousal) of the grid points, e.g. :func:`va_grid`.
        temperature: softmax temperature > 0.
    Returns:
        [N, 2] float64 estimates.
    """
    sim = _as_matrix(sim, "sim")
    grid_va = _as_matrix(grid_va, "grid_va")
    if grid_va.shape[0] != sim.shape[1]:
        raise MetricInputError(f"grid_va has {grid_va.shape[0]} points but sim has {sim.shape[1]} columns")
    if not (np.isfinite(temperature) and temperature > 0.0):
        raise MetricInputError(f"temperature must be a positive finite number, got {temperature}")
    logits = sim / temperature  # [N, G]
    logits -= logits.max(axis=1, keepdims=True)  # stable softmax
    weights = np.exp(logits)
    weights /= weights.sum(axis=1, keepdims=True)  # [N, G]
    return weights @ grid_va  # [N, 2]
