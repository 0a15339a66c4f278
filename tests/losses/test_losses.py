"""Tests of emorank.losses: oracle comparisons against loop-based implementations written from the equations,
invariances, identities, degenerate batches and error messages. CPU only, a few seconds."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from emorank.losses import (
    LOSSES,
    LossInputError,
    RACLAPLoss,
    RankNContrastLoss,
    RankNContrastSCELoss,
    SmoothCLAPLoss,
    SupConLoss,
    SymmetricCrossEntropyLoss,
    build_loss,
)
from emorank.losses.functional import tie_group_last_index

F64 = torch.float64


# --------------------------------------------------------------------------- helpers and naive oracles


def make_batch(n: int, d: int = 8, seed: int = 0, ties: str = "heavy", dtype=F64, normalise: bool = False):
    """Random embeddings (unnormalised unless asked: the losses use cosine) and (valence, arousal) labels."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, d, generator=g, dtype=dtype)
    t = torch.randn(n, d, generator=g, dtype=dtype)
    if normalise:
        a, t = F.normalize(a, dim=1), F.normalize(t, dim=1)
    if ties == "heavy":  # a 3 x 3 grid: many identical labels and many equal distances between distinct labels
        y = torch.tensor([1.0, 4.0, 7.0], dtype=F64)[torch.randint(0, 3, (n, 2), generator=g)]
    elif ties == "near":  # labels a few ulps off a grid (float64 rounding): their distances tie within its precision
        y = torch.tensor([1.0, 4.0, 7.0], dtype=F64)[torch.randint(0, 3, (n, 2), generator=g)]
        y = y + 1e-15 * torch.randint(0, 3, (n, 2), generator=g).to(F64)
    else:
        y = 1 + 6 * torch.rand(n, 2, generator=g, dtype=F64)
    return a, t, y


def cosine_matrix(a: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """sim(x, y) = x^T y / (|x| |y|), as written in the paper."""
    return (a @ t.T) / (a.norm(dim=1)[:, None] * t.norm(dim=1)[None, :])


def label_dist(yi: list[float], yk: list[float], kind: str = "l2") -> float:
    if kind == "l1":
        return sum(abs(p - q) for p, q in zip(yi, yk))
    return math.sqrt(sum((p - q) * (p - q) for p, q in zip(yi, yk)))


def naive_rnc_pairs(a, t, y, scale, kind: str = "l2", tol: float = 1e-9):
    """Eq. 3-4 with '>=' (within tol): explicit loops over the anchor i and the positive j, S_ij built element-wise."""
    n = a.shape[0]
    sim = scale * cosine_matrix(a, t)  # [N, N]
    yl = y.tolist()
    total = 0.0
    for i in range(n):
        for j in range(n):
            d_ij = label_dist(yl[i], yl[j], kind)
            s_ij = [k for k in range(n) if label_dist(yl[i], yl[k], kind) >= d_ij - tol]
            total = total - (sim[i, j] - torch.logsumexp(sim[i, s_ij], dim=0))
    return total / n**2


def naive_rnc_masks(a, t, y, scale, kind: str = "l2", tol: float = 1e-9):
    """Released Rank-N-Contrast style: loop over the positive j, an N x N mask of S_ij per step (O(N^3))."""
    n = a.shape[0]
    sim = scale * cosine_matrix(a, t)  # [N, N]
    diff = y[:, None, :] - y[None, :, :]
    dist = diff.abs().sum(-1) if kind == "l1" else (diff * diff).sum(-1).sqrt()  # [N, N]
    exp_sim = sim.exp()
    total = 0.0
    for j in range(n):
        in_s = (dist >= dist[:, j : j + 1] - tol).to(sim.dtype)  # [N, N]: 1 where k is in S_ij, for every anchor i
        total = total - (sim[:, j] - (exp_sim * in_s).sum(dim=1).log()).sum()
    return total / n**2


def naive_sce(a, t, scale):
    sim = scale * cosine_matrix(a, t)
    n = a.shape[0]
    rows = sum(-torch.log(torch.exp(sim[i, i]) / torch.exp(sim[i, :]).sum()) for i in range(n)) / n
    cols = sum(-torch.log(torch.exp(sim[i, i]) / torch.exp(sim[:, i]).sum()) for i in range(n)) / n
    return (rows + cols) / 2


def naive_supcon(a, t, classes: list[int], scale, symmetric: bool = True):
    """Khosla et al. eq. 2 (L_out), cross-modal: positives = same known class plus the paired item."""
    n = a.shape[0]

    def one_direction(sim):
        total = 0.0
        for i in range(n):
            pos = [k for k in range(n) if k == i or (classes[i] >= 0 and classes[k] == classes[i])]
            log_den = torch.log(torch.exp(sim[i, :]).sum())
            total = total - sum(sim[i, p] - log_den for p in pos) / len(pos)
        return total / n

    sim = scale * cosine_matrix(a, t)
    loss = one_direction(sim)
    return (loss + one_direction(sim.T)) / 2 if symmetric else loss


def naive_soft_clip(a, t, scale, targets_a2t: np.ndarray, targets_t2a: np.ndarray):
    sim = scale * cosine_matrix(a, t)
    n = a.shape[0]
    total = 0.0
    for i in range(n):
        for k in range(n):
            total = total - targets_a2t[i, k] * torch.log_softmax(sim[i, :], 0)[k]
            total = total - targets_t2a[i, k] * torch.log_softmax(sim[:, i], 0)[k]
    return total / (2 * n)


def np_softmax_rows(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def np_cos(x: np.ndarray) -> np.ndarray:
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return x @ x.T


def grads(fn, a, t, scale):
    a, t, s = a.clone().requires_grad_(True), t.clone().requires_grad_(True), scale.clone().requires_grad_(True)
    value = fn(a, t, s)
    return (value.detach(), *torch.autograd.grad(value, (a, t, s)))


def assert_same(fast, slow, rtol=1e-10, atol=1e-12):
    for got, want in zip(fast, slow):
        torch.testing.assert_close(got, want, rtol=rtol, atol=atol)


def all_inputs(n: int, seed: int = 0, dtype=F64):
    a, t, y = make_batch(n, seed=seed, dtype=dtype, normalise=True)
    g = torch.Generator().manual_seed(seed + 1)
    return dict(
        audio_emb=a,
        text_emb=t,
        labels=y.to(dtype),
        classes=torch.randint(-1, 3, (n,), generator=g),
        para=torch.randn(n, 5, generator=g, dtype=dtype),
        teacher_logits=5 * torch.randn(n, n, generator=g, dtype=dtype),
    )


# --------------------------------------------------------------------------- Rank-N-Contrast oracles


@pytest.fixture
def single_thread():
    """The O(N^3) oracle is hundreds of small ops: intra-op threads only add contention (10x on a busy box)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("n", [2, 3, 17])
@pytest.mark.parametrize("ties", ["heavy", "continuous", "near"])
@pytest.mark.parametrize("tol", [1e-9, 0.0])
def test_rnc_matches_pairwise_oracle_values_and_gradients(n, ties, tol):
    a, t, y = make_batch(n, seed=n, ties=ties)
    scale = torch.tensor(2.7, dtype=F64)
    loss = RankNContrastLoss(tie_tol=tol)
    fast = grads(lambda a, t, s: loss(a, t, labels=y, logit_scale=s), a, t, scale)
    slow = grads(lambda a, t, s: naive_rnc_pairs(a, t, y, s, tol=tol), a, t, scale)
    assert_same(fast, slow)


@pytest.mark.parametrize(("n", "ties"), [(17, "heavy"), (17, "continuous"), (64, "heavy"), (64, "continuous"),
                                         (64, "near"), (300, "heavy")])
def test_rnc_matches_mask_oracle_at_larger_n(n, ties, single_thread):
    a, t, y = make_batch(n, seed=n + 1, ties=ties)
    scale = torch.tensor(5.0, dtype=F64)
    fast = grads(lambda a, t, s: RankNContrastLoss()(a, t, labels=y, logit_scale=s), a, t, scale)
    slow = grads(lambda a, t, s: naive_rnc_masks(a, t, y, s), a, t, scale)
    assert_same(fast, slow)
    if n <= 17:  # the two oracles agree with each other too
        assert_same(slow, grads(lambda a, t, s: naive_rnc_pairs(a, t, y, s), a, t, scale))


def test_rnc_l1_distance_and_symmetric_variant_match_oracle():
    a, t, y = make_batch(11, seed=3, ties="heavy")
    scale = torch.tensor(1.5, dtype=F64)
    fast = grads(lambda a, t, s: RankNContrastLoss(distance="l1")(a, t, y, s), a, t, scale)
    assert_same(fast, grads(lambda a, t, s: naive_rnc_pairs(a, t, y, s, kind="l1"), a, t, scale))
    sym = grads(lambda a, t, s: RankNContrastLoss(symmetric=True)(a, t, y, s), a, t, scale)
    want = grads(lambda a, t, s: (naive_rnc_pairs(a, t, y, s) + naive_rnc_pairs(t, a, y, s)) / 2, a, t, scale)
    assert_same(sym, want)


def test_rnc_l1_and_l2_differ_when_rankings_differ():
    a, t, y = make_batch(17, seed=4, ties="continuous")
    assert not torch.allclose(RankNContrastLoss("l1")(a, t, y), RankNContrastLoss("l2")(a, t, y))


def test_tie_group_last_index_matches_loop():
    rows = torch.tensor([[5.0, 5.0, 3.0, 2.0, 2.0, 2.0, 0.0], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]])
    want = [[max(q for q in range(7) if r[q] == r[p]) for p in range(7)] for r in rows.tolist()]
    assert tie_group_last_index(rows).tolist() == want
    near = torch.tensor([[3.0, 2.0 + 1e-12, 2.0, 2.0 - 1e-12, 1.0]], dtype=F64)
    assert tie_group_last_index(near).tolist() == [[0, 1, 2, 3, 4]]
    assert tie_group_last_index(near, 1e-9).tolist() == [[0, 3, 3, 3, 4]]


def _exact_rnc(a, t, y_fractions, scale, kind: str = "l2"):
    """Eq. 3-4 with S_ij decided on exact rational squared L2 (or L1) distances (fractions.Fraction): the tie
    oracle."""
    from fractions import Fraction

    n = a.shape[0]
    sim = scale * cosine_matrix(a, t)
    term = (lambda u: u * u) if kind == "l2" else abs
    d2 = [[sum(term(Fraction(p) - Fraction(q)) for p, q in zip(yi, yk)) for yk in y_fractions] for yi in y_fractions]
    total = 0.0
    for i in range(n):
        for j in range(n):
            s_ij = [k for k in range(n) if d2[i][k] >= d2[i][j]]
            total = total - (sim[i, j] - torch.logsumexp(sim[i, s_ij], dim=0))
    return total / n**2


@pytest.mark.parametrize("raters", [5, 6])
def test_rnc_ties_of_consensus_ratings_match_exact_fraction_oracle(raters):
    """Means of k integer ratings (k/5, k/6 steps): ties that float64 breaks in the last bit stay ties."""
    from fractions import Fraction

    g = torch.Generator().manual_seed(raters)
    n = 40
    steps = torch.randint(0, 6 * raters + 1, (n, 2), generator=g).tolist()
    y_frac = [[1 + Fraction(k, raters) for k in row] for row in steps]
    y = torch.tensor([[float(v) for v in row] for row in y_frac], dtype=F64)
    a, t = torch.randn(n, 8, generator=g, dtype=F64), torch.randn(n, 8, generator=g, dtype=F64)
    scale = torch.tensor(3.0, dtype=F64)
    want = _exact_rnc(a, t, y_frac, scale)
    torch.testing.assert_close(RankNContrastLoss()(a, t, labels=y, logit_scale=scale), want, rtol=1e-12, atol=1e-12)
    # the float64 rounding is real: exact comparison of the computed distances gets some sets wrong
    exact_compare = RankNContrastLoss(tie_tol=0.0)(a, t, labels=y, logit_scale=scale)
    assert abs(float(exact_compare - want)) > 1e-6


@pytest.mark.parametrize(("dtype", "kind", "axes"), [(F64, "l2", 2), (torch.float32, "l2", 2),
                                                     (torch.float16, "l1", 2), (torch.float16, "l2", 1)])
def test_rnc_ties_of_k_over_5_labels_match_the_exact_oracle_in_every_label_dtype(dtype, kind, axes):
    """Consensus labels k/5 on 1..7 in float16, float32 (torch's default) or float64, 64 clips: the loss of an
    oracle deciding ties in exact rational arithmetic. In float32 it was off by 1.3e-3 relative (a fixed tie_tol
    of 1e-9 lies below float32's resolution at the label scale). Float16 resolves k/5 distances on L1 or on one
    axis; on the V-A plane its rounding (0.004) exceeds the gaps between L2 distances (0.0024), so no tolerance
    can tell them apart."""
    from fractions import Fraction

    g = torch.Generator().manual_seed(64 + axes)
    n = 64
    steps = torch.randint(0, 31, (n, axes), generator=g).tolist()
    y_frac = [[1 + Fraction(k, 5) for k in row] for row in steps]
    y = torch.tensor([[float(v) for v in row] for row in y_frac], dtype=F64).to(dtype)
    a, t = torch.randn(n, 8, generator=g, dtype=F64), torch.randn(n, 8, generator=g, dtype=F64)
    scale = torch.tensor(3.0, dtype=F64)
    want = _exact_rnc(a, t, y_frac, scale, kind)
    got = RankNContrastLoss(distance=kind)(a, t, labels=y, logit_scale=scale)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_rnc_gives_one_value_whatever_the_label_dtype():
    """y = [4.2, 5.4, 3.0]: one loss as float64, float32, float16, a list or a float32 array (issue 14 measured
    0.7339 in float64 and 0.6721 as float32: the two float32 distances 1.2 differed by 4.8e-7)."""
    from fractions import Fraction

    g = torch.Generator().manual_seed(0)
    a, t = torch.randn(3, 8, generator=g, dtype=F64), torch.randn(3, 8, generator=g, dtype=F64)
    want = _exact_rnc(a, t, [[Fraction(21, 5)], [Fraction(27, 5)], [Fraction(3)]], torch.tensor(1.0, dtype=F64))
    y = torch.tensor([4.2, 5.4, 3.0], dtype=F64)
    for labels in (y, y.float(), y.half(), [4.2, 5.4, 3.0], np.array([4.2, 5.4, 3.0], dtype=np.float32)):
        torch.testing.assert_close(RankNContrastLoss()(a, t, labels=labels), want, rtol=1e-12, atol=1e-12)


def test_float64_labels_keep_apart_distances_that_genuinely_differ():
    """Means of up to 15 ratings on 1..7: from A, P and Q lie 4.5e-11 apart in distance. Float64 labels resolve
    that, so the loss is the exact oracle's; the old fixed tolerance (1e-9) merged them."""
    from fractions import Fraction as Fr

    y_frac = [[Fr(101, 15), Fr(43, 11)], [Fr(17, 7), Fr(17, 8)], [Fr(20, 9), Fr(66, 13)], [Fr(4), Fr(4)],
              [Fr(13, 5), Fr(31, 6)]]
    a_p = sum((p - q) ** 2 for p, q in zip(y_frac[0], y_frac[1]))
    a_q = sum((p - q) ** 2 for p, q in zip(y_frac[0], y_frac[2]))
    assert a_p != a_q and abs(math.sqrt(a_p) - math.sqrt(a_q)) < 5e-11
    g = torch.Generator().manual_seed(1)
    a, t = torch.randn(5, 8, generator=g, dtype=F64), torch.randn(5, 8, generator=g, dtype=F64)
    y = torch.tensor([[float(v) for v in row] for row in y_frac], dtype=F64)
    scale = torch.tensor(4.0, dtype=F64)
    want = _exact_rnc(a, t, y_frac, scale)
    torch.testing.assert_close(RankNContrastLoss()(a, t, labels=y, logit_scale=scale), want, rtol=1e-12, atol=1e-12)
    merged = RankNContrastLoss(tie_tol=1e-9)(a, t, labels=y, logit_scale=scale)
    assert abs(float(merged - want)) > 1e-6


def test_rnc_rejects_a_negative_tie_tolerance():
    with pytest.raises(ValueError, match="tie_tol"):
        RankNContrastLoss(tie_tol=-1.0)


# --------------------------------------------------------------------------- memory of the label distances and RNC


def _unblocked_distance(y_a, y_b, kind):
    diff = y_a[:, None, :] - y_b[None, :, :]  # the [N, M, K] form these functions had before row blocks
    return (diff * diff).sum(-1).sqrt() if kind == "l2" else diff.abs().sum(-1)


def _peak_cpu_bytes(fn) -> int:
    """Peak of the bytes torch's CPU allocator holds during fn, above what it held before (profiler events)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    live = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        live += event.self_cpu_memory_usage
        peak = max(peak, live)
    return peak


@pytest.mark.parametrize("kind", ["l2", "l1"])
@pytest.mark.parametrize("block", [1, 7, 64, 1 << 21])
def test_label_distance_in_row_blocks_is_bit_identical(kind, block, monkeypatch):
    from fractions import Fraction

    from emorank.losses import functional

    g = torch.Generator().manual_seed(block)
    steps = torch.randint(0, 37, (23, 2), generator=g).tolist()  # consensus means of 6 ratings: k / 6 steps
    y = torch.tensor([[1 + float(Fraction(k, 6)) for k in row] for row in steps], dtype=F64)
    y_b = y[torch.randperm(23, generator=g)[:19]]
    monkeypatch.setattr(functional, "_BLOCK_ELEMENTS", block)
    got = functional.label_distance(y, y_b, kind)
    assert got.dtype == F64 and got.shape == (23, 19)
    assert torch.equal(got, _unblocked_distance(y, y_b, kind))  # bit for bit: ties stay ties


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("ties", ["heavy", "near", "continuous"])
def test_rnc_in_row_blocks_matches_one_block_bit_for_bit(symmetric, ties, monkeypatch):
    from emorank.losses import functional

    a, t, y = make_batch(29, seed=5, ties=ties)
    scale = torch.tensor(4.0, dtype=F64)
    loss = RankNContrastLoss(symmetric=symmetric)
    whole = grads(lambda a, t, s: loss(a, t, labels=y, logit_scale=s), a, t, scale)
    monkeypatch.setattr(functional, "_BLOCK_ELEMENTS", 3 * 29)  # blocks of 3 anchor rows, the last one of 2
    blocked = grads(lambda a, t, s: loss(a, t, labels=y, logit_scale=s), a, t, scale)
    assert_same(blocked, whole, rtol=0, atol=1e-14)  # same per-row operations; only the final sums may round
    assert_same(blocked, grads(lambda a, t, s: naive_rnc_masks(a, t, y, s) if not symmetric
                               else (naive_rnc_masks(a, t, y, s) + naive_rnc_masks(t, a, y, s)) / 2, a, t, scale))


def test_label_distance_memory_is_the_result_only(monkeypatch):
    from emorank.losses import functional

    n = 1024
    monkeypatch.setattr(functional, "_BLOCK_ELEMENTS", 1 << 17)  # 16 row blocks, as N = 4096 has by default
    y = torch.randint(10, 71, (n, 2), generator=torch.Generator().manual_seed(0)).to(F64) / 10
    # the result is 8 bytes per pair; the former [N, N, 2] float64 intermediates took 40
    assert _peak_cpu_bytes(lambda: functional.label_distance(y, y)) < 12 * n * n


def test_rnc_forward_backward_memory_is_bounded(monkeypatch, single_thread):
    from emorank.losses import functional

    n = 1024
    monkeypatch.setattr(functional, "_BLOCK_ELEMENTS", 1 << 17)  # 8 row blocks, as N = 4096 has by default
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, 64, generator=g).requires_grad_(True)
    t = torch.randn(n, 64, generator=g).requires_grad_(True)
    y = torch.randint(10, 71, (n, 2), generator=g) / 10.0
    # float32 embeddings: ~43 bytes per pair (float64 distances, int64 sort order and tie ends, float32 logits and
    # running sums); the unblocked form with its [N, N, 2] label differences peaked at ~60
    assert _peak_cpu_bytes(lambda: RankNContrastLoss()(a, t, y).backward()) < 50 * n * n


# --------------------------------------------------------------------------- other oracles


@pytest.mark.parametrize("n", [1, 5, 33])
def test_sce_matches_naive(n):
    a, t, _ = make_batch(n, seed=n)
    scale = torch.tensor(3.0, dtype=F64)
    fast = grads(lambda a, t, s: SymmetricCrossEntropyLoss()(a, t, logit_scale=s), a, t, scale)
    assert_same(fast, grads(lambda a, t, s: naive_sce(a, t, s), a, t, scale))


@pytest.mark.parametrize("symmetric", [True, False])
def test_supcon_matches_naive_including_lonely_anchors(symmetric):
    a, t, _ = make_batch(12, seed=5)
    classes = [0, 0, 0, 1, 1, 2, -1, -1, 3, 3, 3, 4]  # class 2 and 4 and the unknowns have no other positive
    scale = torch.tensor(2.0, dtype=F64)
    c = torch.tensor(classes)
    loss = SupConLoss(symmetric=symmetric, bins=None)
    fast = grads(lambda a, t, s: loss(a, t, logit_scale=s, classes=c), a, t, scale)
    slow = grads(lambda a, t, s: naive_supcon(a, t, classes, s, symmetric), a, t, scale)
    assert all(torch.isfinite(x).all() for x in fast)
    assert_same(fast, slow)


def test_supcon_all_distinct_classes_is_sce():
    a, t, _ = make_batch(9, seed=6)
    sup = SupConLoss()(a, t, logit_scale=2.0, classes=torch.arange(9))
    torch.testing.assert_close(sup, SymmetricCrossEntropyLoss()(a, t, logit_scale=2.0), rtol=1e-12, atol=1e-12)


def test_supcon_falls_back_to_va_quadrants():
    a, t, _ = make_batch(10, seed=7)
    va = torch.tensor([[1, 1], [2, 6], [4, 4], [5, 1], [7, 7], [3.9, 3.9], [4, 1], [1, 4], [6, 6], [2, 2.0]])
    quadrant = [2 * int(v >= 4.0) + int(ar >= 4.0) for v, ar in va.tolist()]
    want = SupConLoss(bins=None)(a, t, classes=torch.tensor(quadrant))
    torch.testing.assert_close(SupConLoss()(a, t, labels=va), want)
    torch.testing.assert_close(SupConLoss()(a, t, labels=va, classes=torch.full((10,), -1)), want)
    # known classes win over the labels
    c = torch.arange(10)
    torch.testing.assert_close(SupConLoss()(a, t, labels=va, classes=c), SupConLoss(bins=None)(a, t, classes=c))


def test_smooth_matches_naive_targets():
    n = 7
    x = all_inputs(n, seed=8)
    a, t, p = x["audio_emb"], x["text_emb"], x["para"]
    lam, tau, w = 0.6, 0.2, (1.0, 2.0, 0.5)
    pn = p.numpy()
    z = (pn - pn.mean(0)) / pn.std(0)
    sim = (w[0] * np_cos(a.numpy()) + w[1] * np_cos(t.numpy()) + w[2] * np_cos(z)) / sum(w)
    tgt = lam * np.eye(n) + (1 - lam) * np_softmax_rows(sim / tau)
    tgt_t = lam * np.eye(n) + (1 - lam) * np_softmax_rows(sim.T / tau)
    loss = SmoothCLAPLoss(lam=lam, audio_weight=w[0], text_weight=w[1], para_weight=w[2], soft_tau=tau)
    scale = torch.tensor(4.0, dtype=F64)
    fast = grads(lambda a, t, s: loss(a, t, logit_scale=s, para=p), a, t, scale)  # targets carry no gradient
    assert_same(fast, grads(lambda a, t, s: naive_soft_clip(a, t, s, tgt, tgt_t), a, t, scale))
    # without para only the two intra-modal similarities are mixed
    sim2 = (w[0] * np_cos(a.numpy()) + w[1] * np_cos(t.numpy())) / (w[0] + w[1])
    tgt2 = lam * np.eye(n) + (1 - lam) * np_softmax_rows(sim2 / tau)
    torch.testing.assert_close(loss(a, t, logit_scale=scale), naive_soft_clip(a, t, scale, tgt2, tgt2))


def test_ra_matches_naive_targets():
    n = 6
    x = all_inputs(n, seed=9)
    a, t, teacher = x["audio_emb"], x["text_emb"], x["teacher_logits"]
    alpha, tt = 0.3, 2.0
    tn = teacher.numpy()
    tgt = alpha * np.eye(n) + (1 - alpha) * np_softmax_rows(tn / tt)
    tgt_t = alpha * np.eye(n) + (1 - alpha) * np_softmax_rows(tn.T / tt)
    scale = torch.tensor(3.0, dtype=F64)
    loss = RACLAPLoss(alpha=alpha, teacher_temperature=tt)
    teacher_leaf = teacher.clone().requires_grad_(True)
    fast = grads(lambda a, t, s: loss(a, t, logit_scale=s, teacher_logits=teacher_leaf), a, t, scale)
    assert_same(fast, grads(lambda a, t, s: naive_soft_clip(a, t, s, tgt, tgt_t), a, t, scale))
    assert teacher_leaf.grad is None  # the teacher is detached


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_soft_target_losses_reduce_to_sce(dtype):
    x = all_inputs(20, seed=10, dtype=dtype)
    scale = torch.tensor(7.0, dtype=dtype)
    sce = SymmetricCrossEntropyLoss()(x["audio_emb"], x["text_emb"], logit_scale=scale)
    tol = dict(rtol=0, atol=1e-12 if dtype == F64 else 1e-6)
    torch.testing.assert_close(SmoothCLAPLoss(lam=1.0)(**x, logit_scale=scale), sce, **tol)
    torch.testing.assert_close(RACLAPLoss(alpha=1.0)(**x, logit_scale=scale), sce, **tol)


# --------------------------------------------------------------------------- invariances and identities


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_joint_permutation_invariance(name):
    x = all_inputs(23, seed=11)
    perm = torch.randperm(23, generator=torch.Generator().manual_seed(0))
    px = {k: v[perm] for k, v in x.items()}
    px["teacher_logits"] = x["teacher_logits"][perm][:, perm]
    loss = build_loss(name)
    torch.testing.assert_close(loss(**px, logit_scale=3.0), loss(**x, logit_scale=3.0), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_default_scale_is_one(name):
    x = all_inputs(10, seed=12)
    loss = build_loss(name)
    want = loss(**x, logit_scale=torch.tensor(1.0, dtype=F64))
    torch.testing.assert_close(loss(**x), want)
    torch.testing.assert_close(loss(**x, logit_scale=1.0), want)
    torch.testing.assert_close(loss(**x, logit_scale=torch.ones(1, dtype=F64)), want)


@pytest.mark.parametrize("name", ["sce", "supcon", "smooth", "ra"])
def test_zero_scale_gives_log_n_for_softmax_losses(name):
    x = all_inputs(13, seed=13)
    value = build_loss(name)(**x, logit_scale=0.0)
    assert value.item() == pytest.approx(math.log(13), rel=1e-12)


def test_rnc_zero_scale_is_mean_log_set_size():
    _, _, y = make_batch(40, seed=14, ties="heavy")
    a, t, _ = make_batch(40, seed=15)
    yn = y.numpy()
    dist = np.sqrt(((yn[:, None, :] - yn[None, :, :]) ** 2).sum(-1))
    sizes = (dist[:, None, :] >= dist[:, :, None]).sum(-1)  # [i, j] -> |S_ij|
    value = RankNContrastLoss()(a, t, labels=y, logit_scale=0.0)
    assert value.item() == pytest.approx(np.log(sizes).mean(), rel=1e-12)


def ordinal_embeddings(n: int, seed: int):
    """Distinct valences and 2-d embeddings whose angle grows with valence: cosine falls with label distance."""
    g = torch.Generator().manual_seed(seed)
    v = 1 + 6 * torch.rand(n, generator=g, dtype=F64)
    y = torch.stack([v, torch.full_like(v, 4.0)], dim=1)
    angle = (v - 1) / 6 * (math.pi / 2)
    e = torch.stack([angle.cos(), angle.sin()], dim=1)
    return e, y


def test_rnc_rewards_order_and_sharper_scale():
    e, y = ordinal_embeddings(32, seed=16)
    rnd_a, rnd_t, _ = make_batch(32, d=2, seed=17, normalise=True)
    loss = RankNContrastLoss()
    values = [loss(e, e, labels=y, logit_scale=s).item() for s in (1.0, 5.0, 20.0, 100.0)]
    assert all(x > y for x, y in zip(values, values[1:]))  # strictly ordered similarities: P -> 1 as scale grows
    assert loss(e, e, labels=y, logit_scale=10.0) < loss(rnd_a, rnd_t, labels=y, logit_scale=10.0)
    # reversing the order of the text side breaks the ranking
    assert loss(e, e, labels=y, logit_scale=10.0) < loss(e, e.flip(1), labels=y, logit_scale=10.0)


@pytest.mark.parametrize("name", ["sce", "smooth", "ra", "supcon"])
def test_perfect_alignment_beats_random(name):
    n = 16
    classes = torch.arange(n) % 4
    aligned = torch.eye(n, dtype=F64) if name != "supcon" else F.one_hot(classes, n).to(F64)
    rnd_a, rnd_t, y = make_batch(n, d=n, seed=18, normalise=True)
    loss = build_loss(name)
    common = dict(labels=y, logit_scale=10.0, classes=classes)
    good = loss(aligned, aligned, **common, teacher_logits=10.0 * aligned @ aligned.T)
    bad = loss(rnd_a, rnd_t, **common, teacher_logits=10.0 * rnd_a @ rnd_t.T)
    assert good < bad


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_float32_close_to_float64(name):
    x64 = all_inputs(50, seed=19)
    x32 = {k: (v.float() if v.is_floating_point() else v) for k, v in x64.items()}
    v32 = build_loss(name)(**x32, logit_scale=torch.tensor(8.0))
    assert v32.dtype == torch.float32
    torch.testing.assert_close(v32.double(), build_loss(name)(**x64, logit_scale=8.0), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- degenerate batches


def degenerate_batches():
    a, t, y = make_batch(9, seed=20, normalise=True)
    same = F.normalize(torch.ones(9, 8, dtype=F64), dim=1)
    return {
        "all labels equal": (a, t, torch.full((9, 2), 3.0, dtype=F64)),
        "n = 1": (a[:1], t[:1], y[:1]),
        "identical embeddings": (same, same.clone(), y),
        "identical embeddings and labels": (same, same.clone(), torch.full((9, 2), 3.0, dtype=F64)),
    }


@pytest.mark.parametrize("case", sorted(degenerate_batches()))
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_finite_gradients_on_degenerate_batches(name, case):
    a, t, y = degenerate_batches()[case]
    n = a.shape[0]
    extra = dict(classes=torch.zeros(n, dtype=torch.long), para=torch.zeros(n, 3, dtype=F64),
                 teacher_logits=torch.zeros(n, n, dtype=F64))
    loss = build_loss(name)
    value, ga, gt, gs = grads(lambda a, t, s: loss(a, t, labels=y, logit_scale=s, **extra), a, t,
                              torch.tensor(20.0, dtype=F64))
    assert all(torch.isfinite(x).all() for x in (value, ga, gt, gs))
    if n == 1 and name in ("rnc", "sce", "supcon"):
        assert value.item() == pytest.approx(0.0, abs=1e-12)  # a batch of one pair: the only choice is right


def test_rnc_with_equal_labels_is_mean_softmax_cross_entropy():
    a, t, _ = make_batch(9, seed=21)
    y = torch.full((9, 2), 5.0, dtype=F64)
    sim = 2.0 * cosine_matrix(a, t)
    want = -(sim.log_softmax(dim=1)).mean()  # every S_ij is the whole batch
    torch.testing.assert_close(RankNContrastLoss()(a, t, labels=y, logit_scale=2.0), want)


@pytest.mark.parametrize("weight", [0.0, 0.5, 2.0])
def test_rnc_sce_mixture_is_rnc_plus_weighted_sce(weight):
    a, t, y = make_batch(23, seed=5, ties="heavy")
    scale = torch.tensor(4.0, dtype=F64)
    fast = grads(lambda a, t, s: RankNContrastSCELoss(sce_weight=weight)(a, t, y, s), a, t, scale)
    want = grads(lambda a, t, s: naive_rnc_pairs(a, t, y, s) + weight * naive_sce(a, t, s), a, t, scale)
    assert_same(fast, want)
    with pytest.raises(ValueError, match="sce_weight"):
        RankNContrastSCELoss(sce_weight=float("nan"))


# --------------------------------------------------------------------------- registry and errors


def test_registry_is_plain_dict_with_the_paper_losses_and_ours():
    assert type(LOSSES) is dict
    assert set(LOSSES) == {"sce", "rnc", "supcon", "smooth", "ra", "rnc-sce"}
    for name, cls in LOSSES.items():
        assert isinstance(build_loss(name), cls)
    assert build_loss("rnc", distance="l1", symmetric=True).symmetric


def test_unknown_names_and_parameters_are_listed():
    with pytest.raises(ValueError, match="unknown loss 'infonce'; valid: ra, rnc, rnc-sce, sce, smooth, supcon"):
        build_loss("infonce")
    with pytest.raises(ValueError, match=r"has no parameter\(s\) \['temperature'\]; it takes: distance, symmetric"):
        build_loss("rnc", temperature=0.1)
    with pytest.raises(ValueError, match="unknown distance 'cosine'"):
        RankNContrastLoss(distance="cosine")
    with pytest.raises(ValueError, match="`lam` must be in"):
        SmoothCLAPLoss(lam=1.5)
    with pytest.raises(ValueError, match="unknown bins 'octants'"):
        SupConLoss(bins="octants")


def test_missing_inputs_raise_clear_errors():
    a, t, y = make_batch(4, seed=22, normalise=True)
    with pytest.raises(LossInputError, match="RankNContrastLoss needs `labels`"):
        RankNContrastLoss()(a, t)
    with pytest.raises(LossInputError, match="SupConLoss needs `classes`.*got None"):
        SupConLoss(bins=None)(a, t, labels=y)
    with pytest.raises(LossInputError, match="only unknown"):
        SupConLoss(bins=None)(a, t, classes=torch.full((4,), -1))
    with pytest.raises(LossInputError, match="`classes`.*or.*`labels`.*got neither"):
        SupConLoss()(a, t)
    with pytest.raises(LossInputError, match="RACLAPLoss needs `teacher_logits`"):
        RACLAPLoss()(a, t)
    with pytest.raises(LossInputError, match="only `para_weight` is > 0"):
        SmoothCLAPLoss(audio_weight=0, text_weight=0)(a, t)


def test_bad_shapes_and_values_raise_clear_errors():
    a, t, y = make_batch(4, seed=23, normalise=True)
    loss = RankNContrastLoss()
    with pytest.raises(LossInputError, match=r"`labels` must have shape \[N=4, 2\], got \(3, 2\)"):
        loss(a, t, labels=y[:3])
    with pytest.raises(LossInputError, match=r"same shape"):
        loss(a, t[:3], labels=y)
    with pytest.raises(LossInputError, match=r"`labels` row 2 is not finite"):
        loss(a, t, labels=torch.tensor([[1, 1], [2, 2], [float("nan"), 3], [4, 4.0]]))
    with pytest.raises(LossInputError, match="`logit_scale` must be a scalar"):
        loss(a, t, labels=y, logit_scale=torch.ones(2))
    with pytest.raises(LossInputError, match="empty batch"):
        loss(a[:0], t[:0], labels=y[:0])
    with pytest.raises(LossInputError, match="`classes` must be integer"):
        SupConLoss()(a, t, classes=torch.zeros(4))
    with pytest.raises(LossInputError, match=r"`teacher_logits` must have shape \[N=4, N=4\]"):
        RACLAPLoss()(a, t, teacher_logits=torch.zeros(4, 3, dtype=F64))
    with pytest.raises(LossInputError, match=r"`para` must be a float tensor \[N=4, P\]"):
        SmoothCLAPLoss()(a, t, para=torch.zeros(3, 2, dtype=F64))
    assert issubclass(LossInputError, ValueError)
