"""Tests of emorank.index: exact top-k against a stable full sort, ties by row, exclusion, float16 storage."""
from __future__ import annotations

import numpy as np
import pytest

from emorank.search.index import EmbeddingIndex, IndexInputError, top_k


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


def _ties_and_near_ties(n: int, d: int, seed: int) -> np.ndarray:
    """Unit rows where many are exact copies and many differ from a copy by one float16 step: the first pass's
    rounding is then of the order of the gaps between scores, so the exact rescoring decides the order."""
    emb = _unit(n, d, seed)
    emb[1::4] = emb[0::4][:len(emb[1::4])]
    nudged = emb[0::4][:len(emb[2::4])].astype(np.float16)
    nudged[:, 0] = np.nextafter(nudged[:, 0], np.float16(1))
    emb[2::4] = nudged
    return emb


@pytest.mark.parametrize("k", [1, 3, 10, 50])
def test_float16_search_is_exact_on_ties_and_near_ties(k):
    emb = _ties_and_near_ties(2000, 32, 4)
    index = EmbeddingIndex(emb, dtype="float16")
    stored = emb.astype(np.float16).astype(np.float32)
    queries = np.vstack([emb[:3], _unit(3, 32, 5)])
    for exclude in ((), (0, 1, 2, 5, 1999)):
        scores, rows = index.search(queries, k, exclude=exclude)
        for i, q in enumerate(queries):
            want_scores, want_rows = _oracle(stored @ q, k, exclude)
            np.testing.assert_array_equal(rows[i], want_rows)
            np.testing.assert_allclose(scores[i], want_scores, rtol=1e-6, atol=1e-7)  # float32 rounding apart


def test_float16_search_without_the_kernel_gives_the_same_answer(monkeypatch):
    import emorank.search.index as index_mod

    emb, q = _ties_and_near_ties(500, 16, 6), _unit(3, 16, 7)
    fast = EmbeddingIndex(emb, dtype="float16").search(q, 7, exclude=[3])
    monkeypatch.setattr(index_mod, "_float16_kernel", lambda: None)  # e.g. numba missing
    slow = EmbeddingIndex(emb, dtype="float16").search(q, 7, exclude=[3])
    np.testing.assert_array_equal(fast[1], slow[1])
    np.testing.assert_allclose(fast[0], slow[0], rtol=1e-6, atol=1e-7)
    monkeypatch.undo()
    big = EmbeddingIndex(emb, dtype="float16").search(q * 4096, 7)[1]  # beyond the kernel's query range
    stored = emb.astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(big, [_oracle(stored @ qi, 7)[1] for qi in q * 4096])


def test_first_pass_error_stays_within_its_bound():
    from emorank.search.index import _float16_kernel, _score_error_bound

    kernel = _float16_kernel()
    if kernel is None:
        pytest.skip("numba is not installed")
    rng = np.random.default_rng(8)
    for scale in (1.0, 1e-6, 300.0):  # unit rows, rows with float16 subnormals, large rows
        emb = (rng.standard_normal((3000, 96)) * scale).astype(np.float32)
        q = rng.standard_normal(96).astype(np.float32) * np.float32(0.3)
        index = EmbeddingIndex(emb, dtype="float16")
        rough = np.empty(len(emb), dtype=np.float32)
        kernel(index.emb.view(np.int16), q * np.float32(2.0 ** 112), rough)
        real = index.emb.astype(np.float64) @ q.astype(np.float64)
        bound = _score_error_bound(96, index.max_norm, float(np.linalg.norm(q.astype(np.float64))))
        assert np.abs(rough - real).max() <= bound / 2
        assert np.abs((index.emb.astype(np.float32) @ q) - real).max() <= bound / 2
        assert bound < 1e-4 * scale * 100  # and tight enough to leave few candidates


def test_float16_storage_refuses_values_it_cannot_hold():
    with pytest.raises(IndexInputError, match="float16"):
        EmbeddingIndex(np.full((2, 3), 1e5, dtype=np.float32), dtype="float16")
    assert EmbeddingIndex(np.full((2, 3), 1e5, dtype=np.float32), dtype="float32").search(np.ones(3), 1)[1][0, 0] == 0


def test_float16_search_is_exact_when_the_first_pass_misorders_rows():
    """Rows that are permutations of one vector, against a constant query: equal exact scores (ties, so the
    lowest rows win) that the first pass's float32 sums, in different orders, round apart. The margin keeps
    every row the first pass could misplace, so the answer is the exact one."""
    rng = np.random.default_rng(10)
    base = (rng.standard_normal(256) * 2.0 ** rng.uniform(-20, 0, 256)).astype(np.float32)  # magnitudes far apart
    base /= np.linalg.norm(base)
    emb = np.stack([base[rng.permutation(256)] for _ in range(3000)])
    emb[::7] *= np.float32(1 - 2 ** -9)  # a few rows clearly below the rest
    index = EmbeddingIndex(emb, dtype="float16")
    stored = emb.astype(np.float16).astype(np.float64)
    q = np.full(256, 0.125, dtype=np.float32)
    want = (stored @ q.astype(np.float64)).astype(np.float32)  # the documented exact scores: all tied but 1 in 7
    assert len(np.unique(want)) == 2
    for k in (1, 5, 40):
        scores, rows = index.search(q, k)
        np.testing.assert_array_equal(rows[0], _oracle(want, k)[1])
        np.testing.assert_array_equal(scores[0], want[rows[0]])
