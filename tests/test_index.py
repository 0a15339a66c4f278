"""Tests of emorank.index: exact top-k against a stable full sort, ties by row, exclusion, float16 storage."""
from __future__ import annotations

import numpy as np
import pytest

from emorank.index import EmbeddingIndex, IndexInputError, top_k


def _unit(n: int, d: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _oracle(scores: np.ndarray, k: int, exclude=()):
    """What retrieval did before: a full stable argsort of -scores, skipping excluded rows."""
    order = [i for i in np.argsort(-scores, kind="stable") if i not in set(exclude)][:k]
    return scores[order], np.array(order, dtype=np.int64)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("k", [1, 5, 300])
def test_search_matches_a_stable_full_sort(dtype, k):
    emb, q = _unit(300, 16, 0), _unit(4, 16, 1)
    index = EmbeddingIndex(emb, dtype=dtype, block_rows=7)
    scores, rows = index.search(q, k)
    stored = emb.astype(dtype).astype(np.float32)
    assert scores.shape == rows.shape == (4, k) and scores.dtype == np.float32 and rows.dtype == np.int64
    for i in range(4):
        want_scores, want_rows = _oracle(stored @ q[i], k)
        np.testing.assert_array_equal(rows[i], want_rows)
        np.testing.assert_allclose(scores[i], want_scores, rtol=1e-6, atol=1e-6)


def test_ties_are_broken_by_row_index_and_exclusion_is_honoured():
    emb = np.repeat(_unit(3, 8, 2), 4, axis=0)  # rows 0-3, 4-7, 8-11 identical
    index = EmbeddingIndex(emb, dtype="float32")
    _, rows = index.search(emb[5], 6)
    np.testing.assert_array_equal(rows[0][:4], [4, 5, 6, 7])
    _, rows = index.search(emb[5], 3, exclude=[4, 6])
    np.testing.assert_array_equal(rows[0], [5, 7, *_oracle(emb @ emb[5], 5, [4, 6])[1][2:3]])
    _, rows = index.search(emb[0], 20, exclude=range(10))
    np.testing.assert_array_equal(rows[0], [10, 11])  # only what is left


def test_float16_storage_halves_memory_and_stays_close():
    emb = _unit(1000, 64, 3)
    half, full = EmbeddingIndex(emb, "float16"), EmbeddingIndex(emb, "float32")
    assert half.nbytes * 2 == full.nbytes == emb.nbytes
    np.testing.assert_allclose(half.scores(emb[:3]), emb[:3] @ emb.T, atol=2e-3)
    np.testing.assert_array_equal(full.scores(emb[:3]), emb[:3] @ emb.T)


def test_top_k_handles_more_k_than_rows():
    values, cols = top_k(np.array([[0.1, 0.3, 0.3, -1.0]], dtype=np.float32), 10)
    np.testing.assert_array_equal(cols, [[1, 2, 0, 3]])
    np.testing.assert_array_equal(values, np.array([[0.3, 0.3, 0.1, -1.0]], dtype=np.float32))


def test_bad_inputs_are_named():
    with pytest.raises(IndexInputError, match="dtype"):
        EmbeddingIndex(_unit(3, 4, 0), dtype="int8")
    with pytest.raises(IndexInputError, match="shape"):
        EmbeddingIndex(np.zeros(5, dtype=np.float32))
    index = EmbeddingIndex(_unit(3, 4, 0))
    with pytest.raises(IndexInputError, match="queries"):
        index.search(np.zeros((1, 5), dtype=np.float32), 1)
    with pytest.raises(IndexInputError, match="k must be"):
        index.search(np.zeros(4, dtype=np.float32), 0)
