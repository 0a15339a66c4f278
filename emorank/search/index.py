"""Exact top-k inner-product search over clip embeddings, lean in memory (float16 storage) and in time.

    index = EmbeddingIndex(audio_emb, dtype="float16")   # [N, D]; 1M x 512 takes 1 GiB instead of 2
    scores, rows = index.search(queries, k=10)           # [Q, D] -> [Q, k] float32, [Q, k] int64

Exact: every stored row is scored (no approximate search); the scores are the inner products of the float32
queries with the STORED rows, accumulated in float32 (float16 storage rounds each embedding coordinate to 11
significant bits, which moves a cosine by ~1e-3 at most). Ties are broken by row index, lowest first, the order
of a stable sort of the negated scores. Top-k costs one matrix product plus an O(N) selection (argpartition)
per query, instead of a full O(N log N) sort.

Float16 search is exact too, in two passes. The first scores every stored row in float32 arithmetic straight
from the float16 bits (a compiled kernel, no float32 copy of the matrix); its rounding differs from the exact
scores by at most ``delta`` (a bound from the sum's length, the largest row norm and the query norm, see
:func:`_score_error_bound`). Only rows whose first-pass score is within ``2 * delta`` of the k-th best can be in
the top k, so only those are rescored exactly (accumulated in float64 and rounded to float32, so that a row's
score does not depend on which rows are rescored with it), usually a few dozen of a million. Without numba,
and for ``scores()``, float16 rows are converted one block at a time (``block_rows``): the peak extra memory is
one [block_rows, D] float32 block and the [Q, N] float32 score matrix.
"""
from __future__ import annotations

import functools
from typing import Iterable

import numpy as np

__all__ = ["EmbeddingIndex", "IndexInputError", "top_k"]

DTYPES = ("float32", "float16")
FLOAT16_MAX = 65504.0
FLOAT16_QUERY_MAX = 2.0 ** 10  # larger query coordinates take the exact blocked path (the kernel scales by 2**112)


class IndexInputError(ValueError):
    """An embedding index got an array or argument it cannot use (the message names it)."""


def top_k(scores: np.ndarray, k: int, exclude: Iterable[int] = ()) -> tuple[np.ndarray, np.ndarray]:
    """The k best entries of each row of ``scores`` [Q, N]: (values [Q, k'], columns [Q, k']),
    k' = min(k, N - |exclude|).

    Exact, descending, ties broken by column index (lowest first), i.e. the first k of a stable argsort of
    -scores. ``exclude`` columns are never returned (e.g. clips already shown). O(N) per row: argpartition
    finds the k-th value, then only the entries at least that good are sorted.
    """
    scores = np.atleast_2d(scores)
    excluded = np.fromiter(exclude, dtype=np.int64)
    if excluded.size:
        scores = scores.copy()
        scores[:, excluded] = -np.inf
    n_left = scores.shape[1] - np.unique(excluded).size
    k = max(0, min(int(k), n_left))
    values = np.empty((scores.shape[0], k), dtype=scores.dtype)
    columns = np.empty((scores.shape[0], k), dtype=np.int64)
    if k == 0:
        return values, columns
    for q, row in enumerate(scores):
        kth = row[np.argpartition(-row, k - 1)[k - 1]]  # the k-th largest value
        candidates = np.flatnonzero(row >= kth)  # [>= k]: every entry tied with the k-th comes along
        if excluded.size:
            candidates = candidates[np.isfinite(row[candidates])]
        best = candidates[np.lexsort((candidates, -row[candidates]))[:k]]  # score desc, then column asc
        values[q], columns[q] = row[best], best
    return values, columns


class EmbeddingIndex:
    """Exact inner-product search over N stored embeddings [N, D] (see the module docstring).

    Args:
        emb: [N, D] embeddings (normally L2-normalised, so inner product = cosine).
        dtype: storage, "float16" (half the memory, scores to ~1e-3) or "float32" (scores as ``emb @ q``).
        block_rows: rows converted to float32 at a time when scoring float16 storage.
    """

    def __init__(self, emb: np.ndarray, dtype: str = "float16", block_rows: int = 16384) -> None:
        if dtype not in DTYPES:
            raise IndexInputError(f"unknown index dtype {dtype!r}; valid: {', '.join(DTYPES)}")
        arr = np.asarray(emb)
        if arr.ndim != 2 or arr.shape[1] == 0:
            raise IndexInputError(f"embeddings must have shape [N, D] with D >= 1, got {arr.shape}")
        if not np.issubdtype(arr.dtype, np.floating) or not np.all(np.isfinite(arr)):
            raise IndexInputError("embeddings must be finite floating-point numbers")
        if block_rows < 1:
            raise IndexInputError(f"block_rows must be >= 1, got {block_rows}")
        self.dtype = dtype
        self.block_rows = int(block_rows)
        if dtype == "float16" and arr.size and np.abs(arr).max() > FLOAT16_MAX:
            raise IndexInputError(f"values beyond +-{FLOAT16_MAX:g} do not fit float16 storage; use float32")
        self.emb = np.ascontiguousarray(arr, dtype=np.dtype(dtype))  # [N, D]
        self.max_norm = _max_stored_norm(arr) if dtype == "float16" else float("nan")  # bounds the kernel's error

    def __len__(self) -> int:
        return self.emb.shape[0]

    @property
    def dim(self) -> int:
        return self.emb.shape[1]

    @property
    def nbytes(self) -> int:
        """Bytes held by the stored embeddings."""
        return int(self.emb.nbytes)

    def _queries(self, queries: np.ndarray) -> np.ndarray:
        q = np.asarray(queries, dtype=np.float32)
        q = q[None, :] if q.ndim == 1 else q
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise IndexInputError(f"queries must have shape [Q, {self.dim}] (or [{self.dim}]), got {q.shape}")
        if not np.all(np.isfinite(q)):
            raise IndexInputError("queries contain NaN or infinite values")
        return np.ascontiguousarray(q)

    def scores(self, queries: np.ndarray) -> np.ndarray:
        """Inner products of every query with every stored row: [Q, D] (or [D]) -> [Q, N] float32."""
        q = self._queries(queries)  # [Q, D]
        if self.dtype == "float32":
            return q @ self.emb.T  # [Q, N]
        import torch  # vectorised float16 -> float32 conversion (numpy's is ~10x slower)

        qt = torch.from_numpy(q)  # [Q, D]
        out = torch.empty((q.shape[0], len(self)), dtype=torch.float32)  # [Q, N]
        for start in range(0, len(self), self.block_rows):
            block = torch.from_numpy(self.emb[start:start + self.block_rows]).float()  # [B, D]
            torch.mm(qt, block.T, out=out[:, start:start + block.shape[0]])
        return out.numpy()

    def search(self, queries: np.ndarray, k: int, exclude: Iterable[int] = ()) -> tuple[np.ndarray, np.ndarray]:
        """The k best rows per query: [Q, D] (or [D]) -> (scores [Q, k'] float32, rows [Q, k'] int64).

        k' = min(k, N - len(exclude)); rows in ``exclude`` are never returned; ties by row index, lowest first.
        Exact on the scores as returned, i.e. rounded to float32: the rows are the top k of those float32 scores,
        so two rows whose true inner products differ by less than one float32 ulp of the score (about 6e-8 for a
        cosine near 1) can round to the same score and are then ordered by row index, not by the unrounded
        value.
        """
        if int(k) < 1:
            raise IndexInputError(f"k must be >= 1, got {k}")
        q = self._queries(queries)  # [Q, D]
        kernel = _float16_kernel() if self.dtype == "float16" else None
        if kernel is None or not len(self) or np.abs(q).max() >= FLOAT16_QUERY_MAX:
            return top_k(self.scores(q), k, exclude)
        excluded = np.unique(np.fromiter(exclude, dtype=np.int64))
        k = min(int(k), len(self) - excluded.size)
        values = np.empty((q.shape[0], max(k, 0)), dtype=np.float32)
        rows = np.empty((q.shape[0], max(k, 0)), dtype=np.int64)
        if k < 1:
            return values, rows
        bits, rough = self.emb.view(np.int16), np.empty(len(self), dtype=np.float32)  # [N, D], [N]
        for i, qi in enumerate(q):
            kernel(bits, qi * np.float32(2.0 ** 112), rough)  # [N] scores to within delta
            rough[excluded] = -np.inf
            kth = rough[np.argpartition(-rough, k - 1)[k - 1]]
            delta = _score_error_bound(self.dim, self.max_norm, float(np.linalg.norm(qi.astype(np.float64))))
            candidates = np.flatnonzero(rough >= kth - 2 * delta)  # [C >= k], ascending rows
            # [C]: accumulated in float64, then rounded, so a row's score does not depend on its neighbours
            exact = (self.emb[candidates].astype(np.float64) @ qi.astype(np.float64)).astype(np.float32)
            best_values, best = top_k(exact, k)  # [1, k] each, ties by candidate order = by row
            values[i], rows[i] = best_values[0], candidates[best[0]]
        return values, rows


def _max_stored_norm(arr: np.ndarray) -> float:
    """An upper bound on the norm of every row of ``arr`` [N, D] once rounded to float16 (each coordinate moves
    by at most 2**-11 of itself, or 2**-25 below the normal range)."""
    norm = max((float(np.einsum("ij,ij->i", block, block, dtype=np.float64).max())
                for block in (arr[i:i + 8192] for i in range(0, len(arr), 8192))), default=0.0) ** 0.5
    return norm * (1 + 2.0 ** -10) + np.sqrt(arr.shape[1]) * 2.0 ** -24


def _score_error_bound(dim: int, max_norm: float, query_norm: float) -> float:
    """How far a float32 inner product of a stored row and the query, summed in any order, can be from the real
    number: gamma_(D+2) * ||row|| * ||q|| (Higham, Accuracy and Stability, eq. 3.5, with Cauchy-Schwarz), plus
    the underflow of D products; doubled, as a margin for the bound itself. The kernel and the exact rescoring
    each err by at most half the returned value, so they differ by at most the returned value."""
    u = 2.0 ** -24
    gamma = (dim + 2) * u / (1 - (dim + 2) * u)
    return 2 * 2 * (gamma * max_norm * query_norm * (1 + 1e-6) + dim * 2.0 ** -149)


@functools.lru_cache(maxsize=1)
def _float16_kernel():
    """The first pass over float16 rows, compiled on first use (about a second), or None without numba.

    kernel(bits [N, D] int16, q_scaled [D] float32, out [N] float32): out[i] = sum_j row_i[j] * q[j] in float32,
    any summation order, where q_scaled = q * 2**112. Each float16 is widened to float32 with two integer
    operations: its sign, exponent and mantissa bits shifted into float32 positions give the value times
    2**-112 (exact, subnormals included), which the pre-scaled query undoes."""
    try:
        import numba
    except ImportError:  # numba comes with umap-learn; without it float16 search converts blocks instead
        return None

    @numba.njit(parallel=True, fastmath={"reassoc", "contract"}, boundscheck=False, cache=False)
    def kernel(bits, q_scaled, out):
        n, d = bits.shape
        for i in numba.prange(n):
            row = bits[i]
            acc = np.float32(0.0)
            for j in range(d):
                # 0x8FFFE000: the sign bit and the 15 exponent/mantissa bits after the shift
                v = np.uint32(np.uint32(np.int32(row[j]) << np.int32(13)) & np.uint32(0x8FFFE000))
                acc += v.view(np.float32) * q_scaled[j]
            out[i] = acc

    return kernel
