"""Shared maths of the contrastive losses: input checks, similarities, label distances, soft targets.

Every function here is pure (no module state) and works on any device and floating dtype. Labels are checked into
float64 and label distances are computed in float64, because ties between them are decided within a tolerance
that follows the labels' own precision (see ``label_tie_tolerance`` and ``rank_n_contrast_terms``).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "LossInputError",
    "DISTANCES",
    "as_logit_scale",
    "check_embeddings",
    "check_labels",
    "check_classes",
    "check_square",
    "cosine_logits",
    "cosine_self_similarity",
    "label_distance",
    "l1_distance",
    "l2_distance",
    "zscore",
    "cross_entropy_symmetric",
    "soft_cross_entropy",
    "soft_targets",
    "rank_n_contrast_terms",
    "tie_group_last_index",
    "label_precision",
    "label_tie_tolerance",
    "supcon_direction",
    "same_class_mask",
    "va_quadrants",
]

_LOW_PRECISION = (torch.float16, torch.bfloat16)


class LossInputError(ValueError):
    """A loss got an input it cannot use (missing, wrong shape, wrong dtype, not finite)."""


# --------------------------------------------------------------------------- input checks


def check_embeddings(audio_emb: Tensor, text_emb: Tensor, loss_name: str) -> int:
    """Check the two embedding matrices and return the batch size N."""
    for arg, x in (("audio_emb", audio_emb), ("text_emb", text_emb)):
        if not isinstance(x, Tensor):
            raise LossInputError(f"{loss_name}: `{arg}` must be a torch.Tensor [N, D], got {type(x).__name__}")
        if x.dim() != 2:
            raise LossInputError(f"{loss_name}: `{arg}` must have shape [N, D], got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise LossInputError(f"{loss_name}: `{arg}` must be floating point, got {x.dtype}")
    if audio_emb.shape != text_emb.shape:
        raise LossInputError(
            f"{loss_name}: `audio_emb` {tuple(audio_emb.shape)} and `text_emb` {tuple(text_emb.shape)} "
            "must have the same shape [N, D] (row i of each is the i-th pair)"
        )
    if audio_emb.shape[0] == 0:
        raise LossInputError(f"{loss_name}: empty batch (N = 0)")
    return audio_emb.shape[0]


def as_logit_scale(logit_scale: Tensor | float | None, like: Tensor, loss_name: str) -> Tensor:
    """The multiplier of the cosine similarities (= 1 / temperature) as a 0-dim tensor; None means 1.0.

    1.0 is the EmotionRankCLAP paper's initial temperature. A tensor keeps its autograd graph (a learnable scale).
    """
    if logit_scale is None:
        return torch.ones((), dtype=like.dtype, device=like.device)
    if not isinstance(logit_scale, Tensor):
        return torch.tensor(float(logit_scale), dtype=like.dtype, device=like.device)
    if logit_scale.numel() != 1:
        raise LossInputError(
            f"{loss_name}: `logit_scale` must be a scalar (1 / temperature), got shape {tuple(logit_scale.shape)}"
        )
    return logit_scale.reshape(())


def check_labels(labels: Tensor | None, n: int, loss_name: str, device: torch.device) -> Tensor:
    """Labels as a float64 [N, K] tensor (K = 2 for valence, arousal; a 1-d [N] input becomes [N, 1])."""
    if labels is None:
        raise LossInputError(
            f"{loss_name} needs `labels` ([N, 2] float: valence, arousal per pair) but got None"
        )
    if not isinstance(labels, Tensor):  # Python floats are float64: never round them through torch's float32 default
        try:
            labels = torch.from_numpy(np.array(labels, dtype=np.float64 if _python_numbers(labels) else None))
        except (TypeError, ValueError) as err:
            raise LossInputError(f"{loss_name}: `labels` must be numbers [N, 2], got {type(labels).__name__}") from err
    y = labels.to(device=device, dtype=torch.float64)
    if y.dim() == 1:
        y = y[:, None]
    if y.dim() != 2 or y.shape[0] != n or y.shape[1] == 0:
        raise LossInputError(f"{loss_name}: `labels` must have shape [N={n}, 2], got {tuple(y.shape)}")
    if not torch.isfinite(y).all():
        bad = int((~torch.isfinite(y)).any(dim=1).nonzero()[0, 0])
        raise LossInputError(f"{loss_name}: `labels` row {bad} is not finite: {y[bad].tolist()}")
    return y


def _python_numbers(labels) -> bool:
    """A (nested) list or tuple, whose floats numpy would keep as float64 (not an array with its own dtype)."""
    return isinstance(labels, (list, tuple))


def label_precision(labels) -> float:
    """Machine epsilon of the labels as given: float16 ~1e-3, float32 ~1.2e-7, float64 and Python floats ~2.2e-16;
    0 for integers (exact)."""
    if isinstance(labels, Tensor):
        return torch.finfo(labels.dtype).eps if labels.is_floating_point() else 0.0
    dtype = getattr(labels, "dtype", None)
    if dtype is not None:
        return float(np.finfo(dtype).eps) if np.issubdtype(dtype, np.floating) else 0.0
    return _F64_EPS


_F64_EPS = float(np.finfo(np.float64).eps)


def label_tie_tolerance(labels, y: Tensor) -> float:
    """How far apart two label distances may be and still be the same distance, given the labels' precision.

    ``labels`` is the caller's tensor or array (its dtype says how much rounding its values carry), ``y`` the
    same labels checked into float64 [N, K]. A label of magnitude at most M stored with machine epsilon e is
    allowed to be off by 2 e M from the value it stands for (a rounding of a value computed in a few steps: k/5
    in float32 is off by up to 2.4e-7 on 1..7), so a label difference is off by up to 4 e M per axis and two
    distances that are equal in exact arithmetic differ by up to 8 K e M (L1; less for L2); float64's own
    rounding in computing the distances adds 4 K (K + 2) e64 M. The result for labels on 1..7 (M = 7, K = 2):
    7.5e-14 in float64, 1.3e-5 in float32, 0.11 in float16. Float64 labels thus keep apart distances that
    genuinely differ (means of up to 15 ratings on 1..7 give distances 4.5e-11 apart); float32 and float16
    labels cannot resolve differences below their tolerance in the first place.
    """
    if y.numel() == 0:
        return 0.0
    k, m = y.shape[1], float(y.abs().max())
    return m * (8 * k * label_precision(labels) + 4 * k * (k + 2) * _F64_EPS)


def check_classes(classes: Tensor, n: int, loss_name: str, device: torch.device) -> Tensor:
    """Category ids as an int64 [N] tensor; -1 means unknown; anything below -1 is an error."""
    c = torch.as_tensor(classes, device=device)
    if c.is_floating_point() or c.is_complex() or c.dtype == torch.bool:
        raise LossInputError(f"{loss_name}: `classes` must be integer category ids [N], got dtype {c.dtype}")
    if c.shape != (n,):
        raise LossInputError(f"{loss_name}: `classes` must have shape [N={n}], got {tuple(c.shape)}")
    c = c.long()
    if (c < -1).any():
        raise LossInputError(f"{loss_name}: `classes` must be >= -1 (-1 = unknown), got {int(c.min())}")
    return c


def check_square(matrix: Tensor | None, n: int, arg: str, loss_name: str, hint: str) -> Tensor:
    """A required [N, N] floating matrix (e.g. teacher logits)."""
    if matrix is None:
        raise LossInputError(f"{loss_name} needs `{arg}` ({hint}) but got None")
    if not isinstance(matrix, Tensor) or not matrix.is_floating_point():
        raise LossInputError(f"{loss_name}: `{arg}` must be a floating torch.Tensor [N, N]")
    if matrix.shape != (n, n):
        raise LossInputError(f"{loss_name}: `{arg}` must have shape [N={n}, N={n}], got {tuple(matrix.shape)}")
    if not torch.isfinite(matrix).all():
        raise LossInputError(f"{loss_name}: `{arg}` contains non-finite values")
    return matrix


# --------------------------------------------------------------------------- similarities and distances


def cosine_logits(audio_emb: Tensor, text_emb: Tensor, scale: Tensor) -> Tensor:
    """scale * cos(a_i, t_k) for every pair: [N, D] x [M, D] -> [N, M].

    The inputs are normally L2-normalised already (then this is scale * A @ T^T); normalising again is a no-op in
    value and in gradient w.r.t. the pre-normalisation features, and it makes the result a true cosine otherwise.
    Half-precision inputs are promoted to float32 (log-sum-exp and sorting need the range).
    """
    if audio_emb.dtype in _LOW_PRECISION:
        audio_emb, text_emb = audio_emb.float(), text_emb.float()
    a = F.normalize(audio_emb, dim=-1)  # [N, D]
    t = F.normalize(text_emb, dim=-1)  # [M, D]
    return scale * (a @ t.T)  # [N, M]


def cosine_self_similarity(x: Tensor) -> Tensor:
    """Cosine similarity of every pair of rows of one modality: [N, D] -> [N, N]."""
    x = F.normalize(x.float() if x.dtype in _LOW_PRECISION else x, dim=-1)
    return x @ x.T


# Row block of the pairwise label differences: the [rows, M, K] intermediate stays near 16 MiB of float64, so a
# distance matrix costs its own N * M * 8 bytes and no more (the unblocked form peaked at 5x that: [N, M, 2]
# differences, their squares, and the result: 640 MiB at N = 4096 instead of 128 MiB).
_BLOCK_ELEMENTS = 1 << 21


def _pairwise(y_a: Tensor, y_b: Tensor, reduce: Callable[[Tensor], Tensor]) -> Tensor:
    """reduce(y_a[i] - y_b[k]) over the last axis for every pair: [N, K] x [M, K] -> [N, M], in row blocks.

    Each block runs the same element-wise operations as the unblocked form, so the values are bit-identical
    (ties stay ties). With autograd recording, the unblocked form is used (in-place block writes would break it).
    """
    if torch.is_grad_enabled() and (y_a.requires_grad or y_b.requires_grad):
        return reduce(y_a[:, None, :] - y_b[None, :, :])
    n, m, k = y_a.shape[0], y_b.shape[0], max(y_a.shape[1], 1)
    out = torch.empty((n, m), dtype=torch.promote_types(y_a.dtype, y_b.dtype), device=y_a.device)
    rows = max(1, _BLOCK_ELEMENTS // max(m * k, 1))
    for start in range(0, n, rows):
        block = y_a[start : start + rows, None, :] - y_b[None, :, :]  # [rows, M, K]
        out[start : start + rows] = reduce(block)
    return out


def _l2_reduce(diff: Tensor) -> Tensor:
    return (diff * diff).sum(-1).sqrt()


def _l1_reduce(diff: Tensor) -> Tensor:
    return diff.abs().sum(-1)


def l2_distance(y_a: Tensor, y_b: Tensor) -> Tensor:
    """Euclidean distance between label vectors: [N, K] x [M, K] -> [N, M].

    Computed element-wise (not with the |a|^2 + |b|^2 - 2ab trick of ``torch.cdist``) so that identical label
    vectors give bit-identical distances, which the rank-based losses treat as ties; in row blocks, so the
    memory is that of the [N, M] result.
    """
    return _pairwise(y_a, y_b, _l2_reduce)


def l1_distance(y_a: Tensor, y_b: Tensor) -> Tensor:
    """Sum of absolute label differences (the released Rank-N-Contrast choice): [N, K] x [M, K] -> [N, M]."""
    return _pairwise(y_a, y_b, _l1_reduce)


DISTANCES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {"l2": l2_distance, "l1": l1_distance}


def label_distance(y_a: Tensor, y_b: Tensor, kind: str = "l2") -> Tensor:
    """Label distance by name ("l2" or "l1"), in float64, without gradient: [N, K] x [M, K] -> [N, M].

    Float64 because ``rank_n_contrast_terms`` decides ties within a tolerance (``label_tie_tolerance``: 7.5e-14
    for float64 labels on 1..7), finer than float32 resolves near 8; the memory is the [N, M] result only (8 N M bytes: 128 MiB at N = M = 4096).
    """
    if kind not in DISTANCES:
        raise ValueError(f"unknown label distance {kind!r}; valid: {sorted(DISTANCES)}")
    with torch.no_grad():
        return DISTANCES[kind](y_a.double(), y_b.double())


def zscore(x: Tensor, eps: float = 1e-8) -> Tensor:
    """Standardise each column within the batch; constant columns become 0: [N, P] -> [N, P]."""
    mean = x.mean(dim=0, keepdim=True)
    std = x.std(dim=0, unbiased=False, keepdim=True)
    return (x - mean) / std.clamp_min(eps)


# --------------------------------------------------------------------------- cross-entropies and soft targets


def cross_entropy_symmetric(logits: Tensor) -> Tensor:
    """CLIP loss: mean of the row-wise (audio->text) and column-wise (text->audio) CE with the pairs as targets."""
    target = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def soft_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """Row-wise cross-entropy against target distributions, averaged over rows: [N, M] x [N, M] -> scalar."""
    return -(targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def soft_targets(similarity: Tensor, hard_weight: float, tau: float = 1.0) -> Tensor:
    """hard_weight * I + (1 - hard_weight) * softmax(similarity / tau) row-wise, detached: [N, N] -> [N, N].

    Each row sums to 1. The similarity is detached: targets steer the embeddings, they are not trained.
    """
    sim = similarity.detach()
    eye = torch.eye(sim.shape[0], dtype=sim.dtype, device=sim.device)
    return hard_weight * eye + (1.0 - hard_weight) * F.softmax(sim / tau, dim=1)


# --------------------------------------------------------------------------- Rank-N-Contrast


def tie_group_last_index(sorted_rows: Tensor, tol: float = 0.0) -> Tensor:
    """For each position p of each row sorted in DEcreasing order, the last index q with row[q] >= row[p] - tol:
    [N, M] -> [N, M] int64.

    With ``tol = 0`` that is the end of p's group of exactly equal values; with ``tol > 0`` values within ``tol``
    below row[p] count as ties of it too (so ties survive float rounding, see ``rank_n_contrast_terms``).
    One batched binary search per element: O(N M log M); in row blocks, so the temporaries stay small and the
    memory is that of the [N, M] int64 result.
    """
    n, m = sorted_rows.shape
    out = torch.empty((n, m), dtype=torch.int64, device=sorted_rows.device)
    rows = max(1, _BLOCK_ELEMENTS // max(m, 1))
    for start in range(0, n, rows):
        block = sorted_rows[start : start + rows]
        ascending = torch.empty(block.shape, dtype=block.dtype, device=block.device)  # contiguous for searchsorted
        torch.neg(block, out=ascending)  # [rows, M], increasing
        out[start : start + rows] = torch.searchsorted(ascending, ascending + tol, right=True)
    return out.sub_(1)


def rank_n_contrast_terms(logits: Tensor, distance: Tensor, tie_tol: float = 0.0) -> Tensor:
    """-log P(candidate j | anchor i, S_ij) for every pair, with S_ij = {k : d(i, k) >= d(i, j) - tie_tol}.

    logits [N, M] (anchor rows x candidates), distance [N, M] (label distances, no gradient) -> [N, M] terms,
    each row in the anchor's own order of decreasing label distance (the mean over a row does not depend on it).

    O(N M log M) time and O(N M) memory: sort each row by label distance (far to near), take a running
    log-sum-exp of the sorted logits; the running value at position p is the log-sum over every candidate at
    least as far as the p-th, except that candidates tied with it but placed after it are missing, so each
    candidate reads the value at the LAST position of its tie group. The sort is a constant permutation (labels
    carry no gradient), so the gradients are the exact gradients of eq. 3-4.

    ``tie_tol`` (absolute, in label units): distances that differ by at most this much are ties. Real labels are
    means of integer ratings (k/5, k/6): distances equal in exact arithmetic differ in the last bits of float64,
    and an exact comparison would then drop true ties from S_ij.

    Rows are independent, so they are processed in blocks of about 2M elements: the sort values, the
    log-cumsum-exp backward's temporaries and the search buffers then exist for one block at a time (N = 4096:
    peak ~0.7 GB for forward + backward instead of ~1.1 GB), with the same values and gradients bit for bit.
    """
    rows = max(1, _BLOCK_ELEMENTS // max(logits.shape[1], 1))
    if logits.shape[0] <= rows:
        return _rank_n_contrast_rows(logits, distance, tie_tol)
    terms = torch.empty_like(logits)  # [N, M]; block writes are recorded by autograd (no torch.cat copy)
    for start in range(0, logits.shape[0], rows):
        terms[start : start + rows] = _rank_n_contrast_rows(
            logits[start : start + rows], distance[start : start + rows], tie_tol
        )
    return terms


def _rank_n_contrast_rows(logits: Tensor, distance: Tensor, tie_tol: float) -> Tensor:
    """``rank_n_contrast_terms`` for one block of anchor rows: [B, M] x [B, M] -> [B, M]."""
    sorted_distance, order = torch.sort(distance, dim=1, descending=True, stable=True)  # [B, M] each
    last = tie_group_last_index(sorted_distance, tie_tol)  # [B, M]
    del sorted_distance
    sorted_logits = logits.gather(1, order)  # [B, M]
    running = torch.logcumsumexp(sorted_logits, dim=1)  # [B, M]: log sum_{q <= p} exp(sorted_logits[q])
    return running.gather(1, last) - sorted_logits  # [B, M]


# --------------------------------------------------------------------------- SupCon


def same_class_mask(classes: Tensor) -> Tensor:
    """Positive pairs for cross-modal SupCon: same known class, and always the paired item: [N] -> [N, N] bool.

    Unknown (-1) never matches another unknown.
    """
    known = classes >= 0
    same = (classes[:, None] == classes[None, :]) & known[:, None] & known[None, :]
    return same | torch.eye(classes.shape[0], dtype=torch.bool, device=classes.device)


def supcon_direction(logits: Tensor, positives: Tensor) -> Tensor:
    """One direction of cross-modal SupCon: -mean over anchors of the mean log-probability of their positives.

    logits [N, M] anchors x candidates, positives [N, M] bool. The positive count is clamped at 1, so an anchor
    without positives adds 0 instead of NaN (the reference SupCon divides unguarded).
    """
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)  # [N, M]
    pos_log_prob = torch.where(positives, log_prob, torch.zeros_like(log_prob)).sum(dim=1)  # [N]
    count = positives.sum(dim=1).clamp_min(1).to(log_prob.dtype)  # [N]
    return -(pos_log_prob / count).mean()


def va_quadrants(labels: Tensor, split: float = 4.0) -> Tensor:
    """Valence-arousal quadrant ids 0..3 = 2 * (valence >= split) + (arousal >= split): [N, >=2] -> [N] int64.

    The midpoint 4.0 of the 1..7 scale is the default split; a value exactly at the split counts as high.
    """
    high = labels[:, :2] >= split  # [N, 2]
    return 2 * high[:, 0].long() + high[:, 1].long()
