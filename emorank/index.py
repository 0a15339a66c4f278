"""Exact top-k inner-product search over clip embeddings, lean in memory (float16 storage) and in time.

    index = EmbeddingIndex(audio_emb, dtype="float16")   # [N, D]; 1M x 512 takes 1 GiB instead of 2
    scores, rows = index.search(queries, k=10)           # [Q, D] -> [Q, k] float32, [Q, k] int64

Exact: every stored row is scored (no approximate search); the scores are the inner products of the float32
queries with the STORED rows, accumulated in float32 (float16 storage rounds each embedding coordinate to 11
significant bits, which moves a cosine by ~1e-3 at most). Ties are broken by row index, lowest first, the order
of a stable sort of the negated scores. Top-k costs one matrix product plus an O(N) selection (argpartition)
per query, instead of a full O(N log N) sort.

Float16 rows are converted to float32 one block at a time (``block_rows``), so the peak extra memory is one
[block_rows, D] float32 block and one [Q, N] float32 score matrix (4 bytes per clip per query).
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

__all__ = ["EmbeddingIndex", "IndexInputError", "top_k"]

DTYPES = ("float32", "float16")


class IndexInputError(ValueError):
    """An embedding index got an array or argument it cannot use (the message names it)."""


def top_k(scores: np.ndarray, k: int, exclude: Iterable[int] = ()) -> tuple[np.ndarray, np.ndarray]:
    """The k best entries of each row of ``scores`` [Q, N]: (values [Q, k'], columns [Q, k']), k' = min(k, N - |exclude|).

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
        self.emb = np.ascontiguousarray(arr, dtype=np.dtype(dtype))  # [N, D]

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
        """
        if int(k) < 1:
            raise IndexInputError(f"k must be >= 1, got {k}")
        return top_k(self.scores(queries), k, exclude)
