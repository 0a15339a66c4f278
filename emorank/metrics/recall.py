"""Retrieval recall: :func:`recall_at_k` (pair-exact: the paired caption or clip) and :func:`label_match` +
:func:`label_recall_at_k` (label-level: any item with the query's category and intensity, or V-A point).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from emorank.metrics.inputs import TIE_MODES, MetricInputError, _as_matrix

# ----------------------------------------------------------------------------------------------------------------
# paired retrieval: recall@k and ranks


def _ground_truth_ranks(sim: np.ndarray, ties: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: the number of items scoring strictly above / exactly equal to the diagonal (ground truth)."""
    truth = np.diag(sim)[:, None]  # [N, 1]
    greater = (sim > truth).sum(axis=1)  # [N]
    tied = (sim == truth).sum(axis=1) - 1  # [N], other items tied with the ground truth
    if ties == "pessimistic":
        rank = 1.0 + greater + tied
    elif ties == "optimistic":
        rank = 1.0 + greater
    else:  # expected rank under a uniformly random order of the tied items
        rank = 1.0 + greater + tied / 2.0
    return rank, greater, tied


def _recall_from_counts(greater: np.ndarray, tied: np.ndarray, k: int, ties: str) -> float:
    if ties == "pessimistic":
        hit = (greater + tied < k).astype(np.float64)
    elif ties == "optimistic":
        hit = (greater < k).astype(np.float64)
    else:  # P(rank <= k) when the ground truth lands uniformly among its tied group
        hit = np.clip((k - greater) / (tied + 1.0), 0.0, 1.0)
    return float(hit.mean())


def recall_at_k(sim: np.ndarray, ks: Sequence[int] = (1, 5, 10), *, ties: str = "pessimistic") -> dict:
    """Recall@k and mean rank in both directions for a paired similarity matrix.

    ``sim[i, j]`` is the similarity of audio i and text j; the ground truth of row i (audio -> text, "a2t") and
    of column i (text -> audio, "t2a") is item i. Recall@k is the fraction (0..1) of queries whose ground truth
    ranks within the top k; ranks are 1-based.

    Ties with the ground truth (our interpretation; duplicate captions give exactly tied text embeddings):
    ``"pessimistic"`` (default) ranks every tied item above the ground truth, so a collapsed model whose
    embeddings are all equal scores rank N rather than a perfect recall; duplicate captions then count as misses,
    so deduplicate or group them first when that matters. ``"expected"`` gives the expectation under random
    tie-breaking, ``"optimistic"`` ranks the ground truth first among its ties.

    Returns:
        {"a2t_r@1", ..., "t2a_r@1", ..., "a2t_mean_rank", "t2a_mean_rank", "a2t_median_rank", "t2a_median_rank"}.
    """
    sim = _as_matrix(sim, "sim")
    if sim.shape[0] != sim.shape[1]:
        raise MetricInputError(f"sim must be square [N, N] with the ground truth on the diagonal, got {sim.shape}")
    if ties not in TIE_MODES:
        raise MetricInputError(f"unknown ties mode {ties!r}; valid modes: {', '.join(TIE_MODES)}")
    bad_ks = [k for k in ks if int(k) != k or k < 1]
    if bad_ks or len(ks) == 0:
        raise MetricInputError(f"ks must be a non-empty sequence of positive integers, got {list(ks)}")
    out: dict[str, float] = {}
    for direction, matrix in (("a2t", sim), ("t2a", sim.T)):
        rank, greater, tied = _ground_truth_ranks(matrix, ties)
        for k in ks:
            out[f"{direction}_r@{int(k)}"] = _recall_from_counts(greater, tied, int(k), ties)
        out[f"{direction}_mean_rank"] = float(rank.mean())
        out[f"{direction}_median_rank"] = float(np.median(rank))
    return out


CATEGORY_POINT_TOL = 1e-6  # labels closer than this on both axes are the same category x intensity point


def label_match(va: np.ndarray, categories: Sequence[str] | None = None, tol: float | str = "auto") -> np.ndarray:
    """Which items carry the same label as which: [N, 2] (valence, arousal) (+ N categories) -> [N, N] bool.

    Two labels match when they lie within ``tol`` of each other on both axes and, where both items name a
    category, the categories are equal. ``tol="auto"`` (our interpretation of "the same label"): on a categorical
    corpus whose V-A points are category x intensity proxies (every item has a category and there are at most four
    distinct points per category) the points must coincide (same category and intensity); otherwise 0.5 on the
    1..7 scale, one caption level of the V-A caption builder.
    """
    va = _as_matrix(va, "va")
    n = va.shape[0]
    cats = None if categories is None else np.asarray([str(c) for c in categories], dtype=object)
    if cats is not None and cats.shape != (n,):
        raise MetricInputError(f"categories must have one entry per label row ({n}), got {cats.shape[0]}")
    if tol == "auto":
        categorical = cats is not None and all(cats) and (
            len(np.unique(np.round(va, 6), axis=0)) <= 4 * len(set(cats.tolist())))
        tol = CATEGORY_POINT_TOL if categorical else 0.5
    if isinstance(tol, str) or not (float(tol) >= 0):
        raise MetricInputError(f"tol must be a number >= 0 or 'auto', got {tol!r}")
    match = np.all(np.abs(va[:, None, :] - va[None, :, :]) <= float(tol), axis=-1)  # [N, N]
    if cats is not None:
        known = cats != ""
        match &= (cats[:, None] == cats[None, :]) | ~(known[:, None] & known[None, :])
    return match


def _label_hits(sim: np.ndarray, match: np.ndarray, k: int) -> np.ndarray:
    """Per query row: does a top-k item (by similarity) match its label? Ties at the k-th score are broken
    against the query (tied non-matching items fill the last slots first)."""
    k = min(k, sim.shape[1])
    kth = np.partition(sim, sim.shape[1] - k, axis=1)[:, sim.shape[1] - k][:, None]  # [Q, 1] k-th largest
    above, at = sim > kth, sim == kth  # [Q, I]
    slots = k - above.sum(axis=1)  # [Q], >= 1
    hit_above = (above & match).any(axis=1)
    hit_at = ((at & match).sum(axis=1) > 0) & ((at & ~match).sum(axis=1) < slots)
    return hit_above | hit_at


def label_recall_at_k(sim: np.ndarray, match: np.ndarray, ks: Sequence[int] = (1, 5, 10)) -> dict:
    """Label-level recall@k in both directions for a paired similarity matrix.

    ``sim[i, j]`` = similarity of audio i and text j (text j describes clip j); ``match[i, j]`` = whether clip j's
    label equals clip i's (see :func:`label_match`). A query scores a hit at k when any of its top-k retrieved
    items carries the query's label, so corpora where many clips share a label point (RAVDESS: 15 points) are
    measured on what a caption can say, unlike the pair-exact :func:`recall_at_k`.

    Returns:
        {"a2t_label_r@1", ..., "t2a_label_r@1", ...} as fractions in 0..1.
    """
    sim = _as_matrix(sim, "sim")
    match = np.asarray(match, dtype=bool)
    if sim.shape[0] != sim.shape[1] or match.shape != sim.shape:
        raise MetricInputError(f"sim and match must both be square and of the same shape, got {sim.shape} and "
                               f"{match.shape}")
    bad_ks = [k for k in ks if int(k) != k or k < 1]
    if bad_ks or len(ks) == 0:
        raise MetricInputError(f"ks must be a non-empty sequence of positive integers, got {list(ks)}")
    out: dict[str, float] = {}
    for direction, matrix, m in (("a2t", sim, match), ("t2a", sim.T, match.T)):
        for k in ks:
            out[f"{direction}_label_r@{int(k)}"] = float(_label_hits(matrix, m, int(k)).mean())
    return out
