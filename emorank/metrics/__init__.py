"""Evaluation metrics of the EmotionRankCLAP protocol (paper section 4.2; REFERENCE.md section 5).

Every function in this package is a pure function on numpy arrays: no I/O, no global state. POT (``ot``), scipy and
torch are imported inside the functions that need them so that importing the package is cheap; torch only
builds the alignment cost/kernel matrices on a GPU (``device``), never on the CPU path.

Contents
- Cross-modal alignment (Table 1): :func:`mmd_rbf` (with :func:`rbf_bandwidth`), :func:`wasserstein`,
  :func:`alignment_trials` (30 trials of 5000 sampled pairs).
- Cross-modality emotion ordinality (Table 2): :func:`ordinality_grid`, :func:`ordinality_lists`,
  :func:`greedy_unique_retrieval`, :func:`ordinal_retrieval_tau`, :func:`ordinality_test`.
- Retrieval and regression extras: :func:`recall_at_k` (pair-exact), :func:`label_match` and
  :func:`label_recall_at_k` (label-level), :func:`ccc`, :func:`pearson`, :func:`va_grid`,
  :func:`va_from_similarity`.
- Statistics: :func:`paired_test` (``PAIRED_TESTS``), :func:`significantly_better`, :func:`mean_std`.

Conventions: similarity matrices are ``sim[query, item]``; for paired audio/text matrices ``sim[i, j]`` is the
similarity of audio ``i`` and text ``j`` with the ground truth on the diagonal. Aggregates come back as plain
dicts of Python floats / lists so that they serialise to JSON as they are.

Layout: one module per family (:mod:`~emorank.metrics.alignment`, :mod:`~emorank.metrics.ordinality`,
:mod:`~emorank.metrics.recall`, :mod:`~emorank.metrics.va`, :mod:`~emorank.metrics.stats`) and the shared input
checks (:mod:`~emorank.metrics.inputs`). The package imports numpy only (nothing else from emorank): it is a bottom
layer beside :mod:`emorank.losses`, so the search, training and evaluation layers all use it.
"""
from __future__ import annotations

from emorank.metrics.alignment import alignment_trials, mmd_rbf, rbf_bandwidth, wasserstein
from emorank.metrics.inputs import ORDINALITY_AXES, TIE_MODES, MetricInputError
from emorank.metrics.ordinality import (greedy_unique_retrieval, ordinal_retrieval_tau, ordinality_grid,
                                        ordinality_lists, ordinality_test)
from emorank.metrics.recall import CATEGORY_POINT_TOL, label_match, label_recall_at_k, recall_at_k
from emorank.metrics.stats import PAIRED_TESTS, SEED_TESTS, mean_std, paired_test, seed_test, significantly_better
from emorank.metrics.va import ccc, pearson, va_from_similarity, va_grid

__all__ = [
    "MetricInputError",
    "rbf_bandwidth",
    "mmd_rbf",
    "wasserstein",
    "alignment_trials",
    "ordinality_grid",
    "ordinality_lists",
    "greedy_unique_retrieval",
    "ordinal_retrieval_tau",
    "ordinality_test",
    "recall_at_k",
    "CATEGORY_POINT_TOL",
    "label_match",
    "label_recall_at_k",
    "ccc",
    "pearson",
    "va_grid",
    "va_from_similarity",
    "PAIRED_TESTS",
    "paired_test",
    "significantly_better",
    "SEED_TESTS",
    "seed_test",
    "mean_std",
    "ORDINALITY_AXES",
    "TIE_MODES",
]
