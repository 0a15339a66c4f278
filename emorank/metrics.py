"""Evaluation metrics of the EmotionRankCLAP protocol (paper section 4.2; REFERENCE.md section 5).

Every function here is a pure function on numpy arrays: no I/O, no global state. POT (``ot``), scipy and
torch are imported inside the functions that need them so that importing this module is cheap; torch only
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
"""
from __future__ import annotations

import os
import sys
import warnings
from typing import Callable, Sequence

import numpy as np

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


def rbf_bandwidth(x: np.ndarray, y: np.ndarray, *, max_points: int = 2000, seed: int = 0) -> float:
    """Median heuristic: the median Euclidean distance between distinct points of the pooled sample x U y.

    Our interpretation (the paper names an RBF kernel but no bandwidth): sigma = median pairwise distance, used as
    ``exp(-d^2 / (2 sigma^2))`` by :func:`mmd_rbf`. For speed the pooled sample is capped at ``max_points``
    (about 2000 points = 2 million distances): each set contributes rows in proportion to its size, drawn
    without replacement by a generator seeded with ``seed`` alone, so the result is deterministic and symmetric
    in (x, y); the estimate moves by ~1% against the full-sample median. If the median is zero (mostly
    duplicated points) the mean positive distance is used, and 1.0 when all points coincide, so the bandwidth is
    always positive.

    Args:
        x: [N, D] first sample. y: [M, D] second sample.
        max_points: cap on the pooled sample size (>= 2).
        seed: subsampling seed.
    Returns:
        sigma > 0 as a float.
    """
    from scipy.spatial.distance import pdist

    x = _as_matrix(x, "x")
    y = _as_matrix(y, "y")
    _check_same_dim(x, y)
    if max_points < 2:
        raise MetricInputError(f"max_points must be >= 2, got {max_points}")
    n, m = x.shape[0], y.shape[0]
    kx = max(1, int(round(max_points * n / (n + m))))  # each quota depends only on its own size and n + m,
    ky = max(1, int(round(max_points * m / (n + m))))  # which keeps the result symmetric in (x, y)
    pooled = np.concatenate([_subsample_rows(x, kx, seed), _subsample_rows(y, ky, seed)])  # [<=max_points, D]
    dist = pdist(pooled, metric="euclidean")  # [P * (P - 1) / 2]
    if dist.size == 0:
        return 1.0
    sigma = float(np.median(dist))
    if sigma > 0.0:
        return sigma
    positive = dist[dist > 0.0]
    return float(positive.mean()) if positive.size else 1.0


_PRECISIONS = ("float64", "float32")


def _resolve_device(device: str | None) -> str:
    """"cpu" (numpy) or a torch CUDA device string. None: CUDA when torch is ALREADY imported and sees a GPU.

    Looking only at an imported torch keeps this module torch-free for numpy callers (importing torch costs
    seconds); the trainer, the evaluator and the app have torch loaded, so they get the GPU automatically.
    """
    if device is None:
        torch = sys.modules.get("torch")
        return "cuda" if torch is not None and torch.cuda.is_available() else "cpu"
    if device in ("cpu", "numpy"):
        return "cpu"
    import torch

    if not torch.cuda.is_available():
        raise MetricInputError(f"device {device!r} asked for, but torch sees no CUDA device; use device='cpu'")
    return str(device)


def _check_precision(precision: str) -> np.dtype:
    if precision not in _PRECISIONS:
        raise MetricInputError(f"precision must be one of {list(_PRECISIONS)}, got {precision!r}")
    return np.dtype(precision)


def _rbf_kernel_sum(a: np.ndarray, b: np.ndarray, gamma: float, chunk: int, precision: str = "float64") -> float:
    """sum_ij exp(-gamma * ||a_i - b_j||^2) over row chunks of ``a`` (one [chunk, M] block in memory).

    ``precision`` is the dtype of the kernel block (Gram product, exp); block sums accumulate in float64.
    float64 is the reference; float32 runs the exp ~6x and the product ~1.5x faster and moves MMD^2 by
    ~1e-7 absolute (unit-norm embeddings). The operation order is fixed (|a|^2 + |b|^2, minus 2 a.b) and the
    buffers are reused, so a call on (x, x) and on (x, x.copy()) give the same bits: MMD(x, x) stays exactly 0.
    """
    dtype = np.dtype(precision)
    a = a.astype(dtype, copy=False)
    b = b.astype(dtype, copy=False)
    b_sq = np.einsum("ij,ij->i", b, b)  # [M]
    total = 0.0
    gram = np.empty((min(chunk, a.shape[0]), b.shape[0]), dtype=dtype)  # [C, M] buffers, reused per block
    norms = np.empty_like(gram)
    for start in range(0, a.shape[0], chunk):
        block = a[start:start + chunk]  # [C, D]
        c = block.shape[0]
        block_sq = np.einsum("ij,ij->i", block, block)  # [C]
        g, s = gram[:c], norms[:c]
        np.matmul(block, b.T, out=g)
        np.multiply(g, -2.0, out=g)
        np.add(block_sq[:, None], b_sq[None, :], out=s)
        np.add(s, g, out=g)  # d2 = (|a|^2 + |b|^2) - 2 a.b, the same rounding as the unfused expression
        np.maximum(g, 0.0, out=g)  # rounding can make tiny negative squared distances
        np.multiply(g, -gamma, out=g)
        np.exp(g, out=g)
        total += float(g.sum(dtype=np.float64))
    return total


def _rbf_kernel_sum_torch(a: np.ndarray, b: np.ndarray, gamma: float, chunk: int, precision: str,
                          device: str) -> float:
    """:func:`_rbf_kernel_sum` on a CUDA device with torch (same formula and dtype; float64 accumulation)."""
    import torch

    dtype = torch.float64 if precision == "float64" else torch.float32
    at = torch.as_tensor(a, device=device).to(dtype)  # [N, D]
    bt = torch.as_tensor(b, device=device).to(dtype)  # [M, D]
    b_sq = (bt * bt).sum(1)  # [M]
    total = torch.zeros((), dtype=torch.float64, device=device)
    for start in range(0, at.shape[0], max(chunk, 4096)):
        block = at[start:start + max(chunk, 4096)]  # [C, D]
        d2 = ((block * block).sum(1)[:, None] + b_sq[None, :]) - 2.0 * (block @ bt.T)  # [C, M]
        total += torch.exp(d2.clamp_min_(0.0).mul_(-gamma)).sum(dtype=torch.float64)
    return float(total)


def mmd_rbf(x: np.ndarray, y: np.ndarray, bandwidth: float | None = None, *, chunk: int = 1024,
            precision: str = "float64", device: str | None = "cpu") -> float:
    """Squared maximum mean discrepancy MMD^2 between two samples with an RBF kernel (biased V-statistic).

    MMD^2 = mean_ij k(x_i, x_j) + mean_ij k(y_i, y_j) - 2 mean_ij k(x_i, y_j), with
    k(a, b) = exp(-||a - b||^2 / (2 sigma^2)) and the diagonal terms included (V-statistic). This estimator is
    the squared RKHS distance between the two empirical mean embeddings: it is >= 0, symmetric, and exactly 0
    for identical samples (the three sums are computed by the same code, and the result is clipped at 0 against
    rounding). Our interpretation: the paper (section 4.2) reports "MMD with an RBF kernel" without the estimator,
    the bandwidth, or whether it is squared; we report the biased MMD^2 and, by default, sigma from the median
    heuristic of :func:`rbf_bandwidth` computed on the two given samples.

    Memory-safe: the kernel matrices are summed in blocks of ``chunk`` rows with float64 accumulation, so
    5000 x 5000 points take ~40 MB at a time.

    Args:
        x: [N, D] e.g. audio embeddings. y: [M, D] e.g. text embeddings.
        bandwidth: sigma > 0; None -> median heuristic.
        chunk: rows per block.
        precision: "float64" (reference) or "float32" kernel blocks (faster; see :func:`_rbf_kernel_sum`).
        device: "cpu" (numpy, the default), a CUDA device ("cuda", "cuda:1") for torch, or None for CUDA when
            torch is already imported and sees a GPU.
    Returns:
        MMD^2 as a float.
    """
    x = _as_matrix(x, "x")
    y = _as_matrix(y, "y")
    _check_same_dim(x, y)
    _check_precision(precision)
    sigma = rbf_bandwidth(x, y) if bandwidth is None else float(bandwidth)
    if not np.isfinite(sigma) or sigma <= 0.0:
        raise MetricInputError(f"bandwidth must be a positive finite number, got {bandwidth}")
    if chunk < 1:
        raise MetricInputError(f"chunk must be >= 1, got {chunk}")
    gamma = 1.0 / (2.0 * sigma * sigma)
    device = _resolve_device(device)
    if device == "cpu":
        def kernel_sum(a, b):
            return _rbf_kernel_sum(a, b, gamma, chunk, precision)
    else:
        def kernel_sum(a, b):
            return _rbf_kernel_sum_torch(a, b, gamma, chunk, precision, device)
    k_xx = kernel_sum(x, x) / (x.shape[0] * x.shape[0])
    k_yy = kernel_sum(y, y) / (y.shape[0] * y.shape[0])
    k_xy = kernel_sum(x, y) / (x.shape[0] * y.shape[0])
    return max(0.0, k_xx + k_yy - 2.0 * k_xy)


def _euclidean_cost(x: np.ndarray, y: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """Pairwise Euclidean distances [N, M] via the Gram identity, with near-coincident pairs recomputed directly.

    The identity ||a||^2 + ||b||^2 - 2 a.b loses all precision when a ~ b (it returns ~1e-8 instead of 0 after
    the square root); entries in that cancellation zone are recomputed as ||a - b|| so identical points cost 0.
    Fused in place (two reused [chunk, M] buffers, the square root written straight into the result): the same
    values as the unfused expression, in about half the memory traffic.
    """
    x_sq = np.einsum("ij,ij->i", x, x)  # [N]
    y_sq = np.einsum("ij,ij->i", y, y)  # [M]
    cost = np.empty((x.shape[0], y.shape[0]))  # [N, M]
    d2_buf = np.empty((min(chunk, x.shape[0]), y.shape[0]))  # [C, M]
    scale_buf = np.empty_like(d2_buf)
    for start in range(0, x.shape[0], chunk):
        stop = min(start + chunk, x.shape[0])
        d2, scale = d2_buf[:stop - start], scale_buf[:stop - start]
        np.add(x_sq[start:stop, None], y_sq[None, :], out=scale)  # [C, M]
        np.matmul(x[start:stop], y.T, out=d2)
        np.multiply(d2, -2.0, out=d2)
        np.add(scale, d2, out=d2)  # scale - 2 a.b, rounded as before
        np.multiply(scale, 1e-6, out=scale)
        rows, cols = np.nonzero(d2 <= scale)
        for lo in range(0, rows.size, 65536):  # bounded memory even if every pair is suspect
            r, c = rows[lo:lo + 65536], cols[lo:lo + 65536]
            diff = x[start + r] - y[c]  # [K, D]
            d2[r, c] = np.einsum("ij,ij->i", diff, diff)
        np.maximum(d2, 0.0, out=d2)
        np.sqrt(d2, out=cost[start:stop])
    return cost


def _euclidean_cost_torch(x: np.ndarray, y: np.ndarray, device: str, chunk: int = 4096) -> np.ndarray:
    """:func:`_euclidean_cost` on a CUDA device in float64 with torch (same formula and cancellation fix)."""
    import torch

    xt = torch.as_tensor(x, device=device, dtype=torch.float64)  # [N, D]
    yt = torch.as_tensor(y, device=device, dtype=torch.float64)  # [M, D]
    x_sq, y_sq = (xt * xt).sum(1), (yt * yt).sum(1)  # [N], [M]
    cost = np.empty((x.shape[0], y.shape[0]))  # [N, M]
    for start in range(0, xt.shape[0], chunk):
        block = xt[start:start + chunk]  # [C, D]
        scale = x_sq[start:start + chunk, None] + y_sq[None, :]  # [C, M]
        d2 = scale - 2.0 * (block @ yt.T)  # [C, M]
        rows, cols = torch.nonzero(d2 <= 1e-6 * scale, as_tuple=True)
        for lo in range(0, rows.numel(), 65536):
            r, c = rows[lo:lo + 65536], cols[lo:lo + 65536]
            diff = block[r] - yt[c]  # [K, D]
            d2[r, c] = (diff * diff).sum(1)
        cost[start:start + chunk] = d2.clamp_min_(0.0).sqrt_().cpu().numpy()
    return cost


def wasserstein(x: np.ndarray, y: np.ndarray, *, num_itermax: int = 10_000_000, device: str | None = "cpu") -> float:
    """Exact 1-Wasserstein distance between the empirical distributions of two point sets.

    Optimal transport solved exactly by POT's network simplex (``ot.emd2``) with uniform weights (1/N on x, 1/M on
    y) and the Euclidean (not squared) ground cost, so W(x, x) = 0 and, for N == M, W equals the mean cost of the
    optimal one-to-one assignment. Our interpretation: the paper reports "Wasserstein distance" without the
    variant; REFERENCE.md section 5 fixes this one.

    Cost: an [N, M] float64 cost matrix (200 MB for 5000 x 5000), ~1 s to build on one core (a fraction of a
    second on a GPU), and 3-5 s of single-threaded network simplex for 5000 x 5000 points (POT's solver has no
    threads; :func:`alignment_trials` runs trials in parallel processes instead). ``num_itermax`` (10 million)
    is far above the ~1 million simplex iterations that 5000 x 5000 needs; a RuntimeWarning is raised if the
    solver stops before optimality (the value is then an upper bound).

    Args:
        x: [N, D]. y: [M, D].
        num_itermax: network-simplex iteration cap.
        device: where the cost matrix is built: "cpu" (numpy, the default), a CUDA device for torch (float64,
            same values to rounding), or None for CUDA when torch is already imported and sees a GPU. The
            solver always runs on the CPU.
    Returns:
        W1 as a float.
    """
    import ot

    x = _as_matrix(x, "x")
    y = _as_matrix(y, "y")
    _check_same_dim(x, y)
    device = _resolve_device(device)
    cost = _euclidean_cost(x, y) if device == "cpu" else _euclidean_cost_torch(x, y, device)  # [N, M]
    a = np.full(x.shape[0], 1.0 / x.shape[0])  # [N]
    b = np.full(y.shape[0], 1.0 / y.shape[0])  # [M]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # POT's own warning is replaced by ours below
        value, log = ot.emd2(a, b, cost, numItermax=int(num_itermax), log=True)
    if log.get("result_code", 1) != 1:
        warnings.warn(
            f"wasserstein: exact OT did not converge for {x.shape[0]} x {y.shape[0]} points "
            f"({log.get('warning')}); raise num_itermax (now {num_itermax}). The value is an upper bound.",
            RuntimeWarning,
            stacklevel=2,
        )
    return float(value)


# Per-process state of the alignment workers: the two embedding matrices, sent once per worker (not per trial).
_TRIAL_DATA: dict[str, np.ndarray] = {}


def _init_trial_worker(audio: np.ndarray, text: np.ndarray) -> None:
    """Worker initializer: keep the matrices and pin BLAS to one thread (the workers already fill the cores)."""
    _TRIAL_DATA["audio"], _TRIAL_DATA["text"] = audio, text
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: without it, BLAS threads may oversubscribe the cores (slower, same values)
        return
    _TRIAL_DATA["limits"] = threadpool_limits(limits=1)  # held for the worker's lifetime


def _alignment_trial(audio: np.ndarray, text: np.ndarray, idx: np.ndarray, bandwidth: float | None,
                     precision: str, device: str) -> tuple[float, float]:
    """MMD^2 and W1 of one trial's paired sample (rows ``idx`` of both modalities)."""
    a, t = audio[idx], text[idx]  # [m, D] each
    return (mmd_rbf(a, t, bandwidth, precision=precision, device=device),
            wasserstein(a, t, device=device))


def _alignment_trial_in_worker(idx: np.ndarray, bandwidth: float | None, precision: str,
                               device: str) -> tuple[float, float]:
    return _alignment_trial(_TRIAL_DATA["audio"], _TRIAL_DATA["text"], idx, bandwidth, precision, device)


def _main_reruns_this_call() -> bool:
    """Whether a spawned worker would run the calling script's code up to this call again.

    A spawned worker imports the parent's ``__main__`` script (or ``-m`` module) as ``__mp_main__``, which runs
    its top level except ``if __name__ == "__main__":`` blocks. So workers are unsafe while the script's top level
    is running (in this thread, or in the main thread while this one serves it) at a line outside such a guard:
    each worker would reach the same call, fail to start workers of its own, and the pool would wait forever.
    Interactive sessions and ``python -c`` re-run nothing; a script whose source cannot be read counts as unsafe.
    """
    import threading

    main = sys.modules.get("__main__")
    if main is None or (getattr(main, "__file__", None) is None and getattr(main, "__spec__", None) is None):
        return False
    frames = sys._current_frames()
    stacks = [sys._getframe(1)] + [frames[t] for t in (threading.main_thread().ident,) if t in frames]
    for frame in stacks:
        while frame is not None:
            if frame.f_globals is vars(main) and frame.f_code.co_name == "<module>":
                return not _in_main_guard(frame.f_code.co_filename, frame.f_lineno)
            frame = frame.f_back
    return False


def _in_main_guard(filename: str, line: int) -> bool:
    """Whether ``line`` of the script ``filename`` lies inside an ``if __name__ == "__main__":`` block."""
    import ast

    try:
        with open(filename, "rb") as f:
            tree = ast.parse(f.read(), filename)
    except (OSError, SyntaxError, ValueError):
        return False

    def is_guard(test: ast.expr) -> bool:  # __name__ == "__main__", either way round
        if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
            return False
        sides = (test.left, test.comparators[0])
        return any(isinstance(x, ast.Name) and x.id == "__name__" for x in sides) and \
            any(isinstance(x, ast.Constant) and x.value == "__main__" for x in sides)

    return any(node.body[0].lineno <= line <= node.body[-1].end_lineno
               for node in ast.walk(tree) if isinstance(node, ast.If) and is_guard(node.test))


def _default_workers(m: int, n_jobs: int) -> int:
    """One process per available core for paper-size trials; in-process below ~1000 pairs (start-up dominates)."""
    if m < 1000 or n_jobs < 2:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, n_jobs))


def alignment_trials(
    audio_emb: np.ndarray,
    text_emb: np.ndarray,
    n_trials: int = 30,
    n_pairs: int = 5000,
    seed: int = 0,
    *,
    bandwidth: float | None = None,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
    precision: str = "float64",
    device: str | None = None,
) -> dict:
    """Cross-modal alignment protocol of the paper (section 4.2.1): MMD and Wasserstein over random trials.

    Each trial samples ``m = min(n_pairs, N)`` paired rows without replacement (the same indices for both
    modalities, as in "sampling 5000 speech-text pairs") and measures :func:`mmd_rbf` (bandwidth from the
    median heuristic of that trial's sample unless ``bandwidth`` is given) and :func:`wasserstein` (exact OT)
    between the sampled audio set and the sampled text set. When m == N every trial holds the whole set (both
    metrics are invariant to row order), so the values are computed once and repeated, giving std 0.

    Speed: the trials' indices are drawn first (the same draws as one trial after another), then the trials run
    in ``workers`` processes; each process gets the two matrices once and uses one BLAS thread. The values do
    not depend on ``workers``. Paper scale (30 x 5000 pairs) on 2 cores: about 1.5 minutes instead of ~14.

    Args:
        audio_emb: [N, D] audio embeddings. text_emb: [N, D] text embeddings of the paired captions.
        n_trials: number of trials (paper: 30). n_pairs: pairs per trial (paper: 5000). seed: sampling seed.
        bandwidth: fixed RBF sigma for every trial, or None.
        progress: optional callback(done, n_trials) after each finished trial.
        workers: processes for the trials; None -> one per available core when m >= 1000, else in-process.
        precision: MMD kernel blocks, "float64" (reference, default) or "float32" (see :func:`mmd_rbf`).
        device: cost and kernel matrices on a CUDA device (torch) or "cpu"; None -> CUDA when torch is already
            imported and sees a GPU (see :func:`mmd_rbf`). The exact OT solver always runs on the CPU.
    Returns:
        {"mmd": {"mean", "std", "values"}, "wasserstein": {"mean", "std", "values"}, "n_pairs": m}; std is the
        sample std (see :func:`mean_std`), values has one float per trial.
    """
    audio = _as_matrix(audio_emb, "audio_emb")
    text = _as_matrix(text_emb, "text_emb")
    _check_same_dim(audio, text, "audio_emb", "text_emb")
    _check_same_len(audio, text, "audio_emb", "text_emb")
    if n_trials < 1:
        raise MetricInputError(f"n_trials must be >= 1, got {n_trials}")
    if n_pairs < 2:
        raise MetricInputError(f"n_pairs must be >= 2, got {n_pairs}")
    if workers is not None and workers < 1:
        raise MetricInputError(f"workers must be >= 1, got {workers}")
    _check_precision(precision)
    device = _resolve_device(device)
    n = audio.shape[0]
    m = min(n_pairs, n)
    rng = np.random.default_rng(seed)
    # the whole set is one trial repeated; otherwise one draw per trial, in trial order
    samples = [np.arange(n)] if m == n else [rng.choice(n, size=m, replace=False) for _ in range(n_trials)]
    workers = _default_workers(m, len(samples)) if workers is None else min(workers, len(samples))
    if workers > 1 and _main_reruns_this_call():
        warnings.warn(f"alignment_trials runs its {len(samples)} trials in this process: it was called from the "
                      "top level of a script without an `if __name__ == \"__main__\":` guard, which every worker "
                      f"process would run again; put the call under such a guard to use {workers} processes",
                      RuntimeWarning, stacklevel=2)
        workers = 1
    results: list[tuple[float, float] | None] = [None] * len(samples)
    done = 0

    def finished(trial: int, value: tuple[float, float]) -> None:
        nonlocal done
        results[trial] = value
        steps = n_trials if m == n else 1  # the whole-set trial stands for all of them
        for _ in range(steps):
            done += 1
            if progress is not None:
                progress(done, n_trials)

    if workers == 1:
        for trial, idx in enumerate(samples):
            finished(trial, _alignment_trial(audio, text, idx, bandwidth, precision, device))
    else:
        import concurrent.futures as cf
        import multiprocessing as mp

        # spawn, not fork: the parent may hold torch/OpenMP thread pools that a forked child would deadlock on
        with cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                                    initializer=_init_trial_worker, initargs=(audio, text)) as pool:
            futures = {pool.submit(_alignment_trial_in_worker, idx, bandwidth, precision, device): trial
                       for trial, idx in enumerate(samples)}
            for future in cf.as_completed(futures):
                finished(futures[future], future.result())
    mmd_values = [results[min(t, len(samples) - 1)][0] for t in range(n_trials)]
    w_values = [results[min(t, len(samples) - 1)][1] for t in range(n_trials)]
    return {
        "mmd": {**mean_std(mmd_values), "values": mmd_values},
        "wasserstein": {**mean_std(w_values), "values": w_values},
        "n_pairs": int(m),
    }


# ----------------------------------------------------------------------------------------------------------------
# cross-modality emotion ordinality test (Table 2)


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
