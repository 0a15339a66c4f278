"""Cross-modality emotion ordinality (the paper's Table 2): :func:`ordinality_grid`, :func:`ordinality_lists`,
:func:`greedy_unique_retrieval`, :func:`ordinal_retrieval_tau`, :func:`ordinality_test` (AOC / VOC, Kendall tau).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from emorank.metrics.inputs import (
    ORDINALITY_AXES,
    MetricInputError,
    _as_matrix,
    _as_vector,
)
from emorank.metrics.stats import mean_std


def ordinality_grid() -> np.ndarray:
    """The 14 attribute values of one ordinality list: 0.5, 1.0, ..., 7.0 (paper section 4.2.2).

    Note 0.5 lies below the 1..7 label scale; the grid is kept as the paper states it.
    """
    return np.arange(0.5, 7.01, 0.5)


def ordinality_lists(axis: str, n_lists: int = 100) -> np.ndarray:
    """(valence, arousal) targets of the paper's ordinality lists, shape [n_lists, 14, 2].

    For ``axis="valence"`` (VOC) list k fixes arousal at grid[k mod 14] (0.5, 1.0, ..., 7.0, then back to 0.5)
    and varies valence over the grid in increasing order; ``axis="arousal"`` (AOC) swaps the roles. Column 0 is
    valence, column 1 arousal. Captions are generated from these targets by a caption builder.
    """
    if axis not in ORDINALITY_AXES:
        raise MetricInputError(f"unknown ordinality axis {axis!r}; valid axes: {', '.join(ORDINALITY_AXES)}")
    if n_lists < 1:
        raise MetricInputError(f"n_lists must be >= 1, got {n_lists}")
    grid = ordinality_grid()  # [14]
    varied_col = ORDINALITY_AXES.index(axis)
    fixed = grid[np.arange(n_lists) % grid.size]  # [n_lists]
    lists = np.empty((n_lists, grid.size, 2))
    lists[:, :, varied_col] = grid[None, :]
    lists[:, :, 1 - varied_col] = fixed[:, None]
    return lists


def greedy_unique_retrieval(sim: np.ndarray) -> np.ndarray:
    """For each query row in order, the index of the most similar item not already taken by an earlier row.

    ``sim`` [L, M] with M >= L. Ties go to the lowest item index. Returns int64 [L] of distinct indices.
    This is the paper's "each item is retrieved only once" within one list.
    """
    sim = _as_matrix(sim, "sim")
    n_queries, n_items = sim.shape
    if n_items < n_queries:
        raise MetricInputError(
            f"sim has {n_queries} queries but only {n_items} items: retrieval without repeats needs "
            f"at least as many items (clips) as queries (captions)"
        )
    available = np.ones(n_items, dtype=bool)  # [M]
    chosen = np.empty(n_queries, dtype=np.int64)  # [L]
    for i in range(n_queries):
        row = np.where(available, sim[i], -np.inf)  # [M]
        j = int(np.argmax(row))
        chosen[i] = j
        available[j] = False
    return chosen


def _kendall_tau_b(a: np.ndarray, b: np.ndarray) -> float:
    """Kendall tau-b (scipy); 0.0 where it is undefined (a constant input), i.e. no ordinal information."""
    from scipy.stats import kendalltau

    tau = kendalltau(a, b, variant="b").statistic
    return 0.0 if not np.isfinite(tau) else float(tau)


def ordinal_retrieval_tau(sim: np.ndarray, clip_values: np.ndarray, query_values: np.ndarray) -> float:
    """Kendall tau of one ordinality list (paper section 4.2.2).

    The L captions of a list (in list order) retrieve clips greedily without repeats
    (:func:`greedy_unique_retrieval`); the result is Kendall's tau-b between the captions' varied attribute
    values and the retrieved clips' labels on that axis. When tau is undefined because either side is constant
    (e.g. every retrieved clip has the same label) the list carries no ordinal agreement and scores 0.0 (our
    choice, instead of a NaN that would poison the mean).

    Args:
        sim: [L, M] similarity of each caption of the list to each of the M clips (M >= L).
        clip_values: [M] label of each clip on the tested axis.
        query_values: [L] attribute value each caption was generated from.
    Returns:
        tau in [-1, 1].
    """
    sim = _as_matrix(sim, "sim")
    clip_values = _as_vector(clip_values, "clip_values")
    query_values = _as_vector(query_values, "query_values")
    if clip_values.shape[0] != sim.shape[1]:
        raise MetricInputError(f"clip_values has {clip_values.shape[0]} values but sim has {sim.shape[1]} columns")
    if query_values.shape[0] != sim.shape[0]:
        raise MetricInputError(f"query_values has {query_values.shape[0]} values but sim has {sim.shape[0]} rows")
    retrieved = greedy_unique_retrieval(sim)  # [L]
    return _kendall_tau_b(query_values, clip_values[retrieved])


def ordinality_test(
    sim_lists: np.ndarray | Sequence[np.ndarray],
    clip_values: np.ndarray,
    query_values: np.ndarray | None = None,
) -> dict:
    """Aggregate :func:`ordinal_retrieval_tau` over lists: {"mean", "std", "values"} (paper: 100 lists).

    Args:
        sim_lists: [n_lists, L, M] array, or a sequence of [L, M] arrays, caption-to-clip similarities per list.
        clip_values: [M] clip labels on the tested axis (valence for VOC, arousal for AOC).
        query_values: [L] values shared by every list, or [n_lists, L]; None -> :func:`ordinality_grid` (L = 14).
    Returns:
        {"mean", "std", "values"}: sample std (see :func:`mean_std`), one tau per list.
    """
    sims = [np.asarray(s) for s in sim_lists]
    if not sims:
        raise MetricInputError("sim_lists is empty: need at least one list of similarities")
    queries = ordinality_grid() if query_values is None else np.asarray(query_values, dtype=np.float64)
    if queries.ndim == 1:
        queries = np.broadcast_to(queries, (len(sims), queries.shape[0]))
    if queries.ndim != 2 or queries.shape[0] != len(sims):
        raise MetricInputError(
            f"query_values must be [L] or [n_lists={len(sims)}, L], got shape {np.shape(query_values)}"
        )
    values = [ordinal_retrieval_tau(s, clip_values, q) for s, q in zip(sims, queries)]
    return {**mean_std(values), "values": values}
