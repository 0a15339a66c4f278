"""Tests of emorank.metrics: identities, oracle comparisons against naive implementations, the paper's list grid."""
from __future__ import annotations

import functools
import itertools
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from scipy.stats import kendalltau

from emorank import metrics as M
from emorank.metrics import alignment


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# ------------------------------------------------------------------------------------------------ naive oracles


def naive_mmd2(x: np.ndarray, y: np.ndarray, sigma: float) -> float:
    def k(a, b):
        return np.exp(-np.sum((a - b) ** 2) / (2 * sigma**2))

    kxx = np.mean([k(a, b) for a in x for b in x])
    kyy = np.mean([k(a, b) for a in y for b in y])
    kxy = np.mean([k(a, b) for a in x for b in y])
    return kxx + kyy - 2 * kxy


def naive_ranks(sim: np.ndarray) -> np.ndarray:
    """Pessimistic 1-based rank of item i in row i, by sorting (tied items placed before the ground truth)."""
    ranks = []
    for i, row in enumerate(sim):
        others = [j for j in range(len(row)) if j != i]
        ranks.append(1 + sum(row[j] >= row[i] for j in others))
    return np.array(ranks)


def naive_ccc(x: np.ndarray, y: np.ndarray) -> float:
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    vx = sum((a - mx) ** 2 for a in x) / n
    vy = sum((b - my) ** 2 for b in y) / n
    cov = sum((a - mx) * (b - my) for a, b in zip(x, y)) / n
    return 2 * cov / (vx + vy + (mx - my) ** 2)


# ------------------------------------------------------------------------------------------------ bandwidth / MMD


def test_bandwidth_is_median_pairwise_distance_on_small_input():
    x, y = _rng(0).normal(size=(7, 3)), _rng(1).normal(size=(5, 3))
    pooled = np.concatenate([x, y])
    dists = [np.linalg.norm(a - b) for a, b in itertools.combinations(pooled, 2)]
    assert M.rbf_bandwidth(x, y) == pytest.approx(np.median(dists))


def test_bandwidth_subsampling_is_deterministic_symmetric_and_close():
    x, y = _rng(0).normal(size=(3000, 8)), _rng(1).normal(size=(2000, 8)) + 0.5
    a = M.rbf_bandwidth(x, y)
    assert a == M.rbf_bandwidth(x, y)
    assert a == M.rbf_bandwidth(y, x)
    full = M.rbf_bandwidth(x, y, max_points=5000)
    assert a == pytest.approx(full, rel=0.03)


def test_bandwidth_is_positive_for_identical_points():
    x = np.ones((4, 3))
    assert M.rbf_bandwidth(x, x) == 1.0
    y = np.concatenate([np.zeros((9, 2)), [[3.0, 4.0]]])
    assert M.rbf_bandwidth(y, y) == pytest.approx(5.0)  # median 0 -> mean positive distance


def test_mmd_identity_is_exactly_zero():
    x = _rng(0).normal(size=(300, 16))
    assert M.mmd_rbf(x, x) == 0.0
    assert M.mmd_rbf(x, x.copy(), bandwidth=0.3) == 0.0


def test_mmd_matches_naive_double_loop():
    x, y = _rng(0).normal(size=(12, 4)), _rng(1).normal(size=(9, 4)) + 0.7
    for sigma in (0.5, 1.3, 4.0):
        assert M.mmd_rbf(x, y, bandwidth=sigma, chunk=5) == pytest.approx(naive_mmd2(x, y, sigma), rel=1e-10)
    sigma = M.rbf_bandwidth(x, y)
    assert M.mmd_rbf(x, y) == pytest.approx(naive_mmd2(x, y, sigma), rel=1e-10)


def test_mmd_chunking_does_not_change_value_and_is_symmetric():
    x, y = _rng(0).normal(size=(100, 6)), _rng(1).normal(size=(80, 6))
    ref = M.mmd_rbf(x, y, bandwidth=2.0, chunk=1000)
    assert M.mmd_rbf(x, y, bandwidth=2.0, chunk=7) == pytest.approx(ref, rel=1e-12)
    assert M.mmd_rbf(y, x, bandwidth=2.0) == pytest.approx(ref, rel=1e-12)
    assert M.mmd_rbf(x, y) == pytest.approx(M.mmd_rbf(y, x), rel=1e-12)


def test_mmd_grows_with_shift():
    x, y = _rng(0).normal(size=(200, 8)), _rng(1).normal(size=(200, 8))
    values = [M.mmd_rbf(x, y + s, bandwidth=3.0) for s in (0.0, 0.3, 1.0, 3.0)]
    assert all(a < b for a, b in zip(values, values[1:]))


def test_mmd_5000_by_5000_in_512d_runs():
    """At paper scale (several row blocks, the last one partial), the biased MMD^2 of two samples of one normal
    distribution is its expectation (1/N + 1/M) (1 - E k(x, x')), with E k = (1 + 2 / sigma^2)^(-D/2) for the
    RBF kernel of bandwidth sigma between independent N(0, I_D) points: 1.6e-4 here. A kernel with the wrong
    scale, a dropped block or diagonal, or an unbiased estimate lands far from it."""
    x = _rng(0).normal(size=(5000, 512)).astype(np.float32)
    y = _rng(1).normal(size=(5000, 512)).astype(np.float32)
    start = time.perf_counter()
    value = M.mmd_rbf(x, y)
    elapsed = time.perf_counter() - start
    sigma = M.rbf_bandwidth(x, y)
    expected = (1 / 5000 + 1 / 5000) * (1 - (1 + 2 / sigma**2) ** (-512 / 2))
    assert value == pytest.approx(expected, rel=0.15)
    print(f"mmd_rbf 5000 x 5000 x 512: {elapsed:.2f} s")


# ------------------------------------------------------------------------------------------------ Wasserstein


def test_wasserstein_identity_is_zero():
    x = _rng(0).normal(size=(60, 5))
    assert M.wasserstein(x, x) == 0.0
    assert M.wasserstein(x, x[::-1]) == 0.0


def test_wasserstein_matches_assignment_oracle():
    x, y = _rng(0).normal(size=(40, 6)), _rng(1).normal(size=(40, 6)) + 0.4
    cost = np.linalg.norm(x[:, None, :] - y[None, :, :], axis=-1)
    rows, cols = linear_sum_assignment(cost)
    assert M.wasserstein(x, y) == pytest.approx(cost[rows, cols].mean(), rel=1e-9)
    assert M.wasserstein(y, x) == pytest.approx(M.wasserstein(x, y), rel=1e-9)


def test_wasserstein_of_a_translation_is_its_length_and_unequal_sizes_work():
    x = _rng(0).normal(size=(30, 3))
    shift = np.array([3.0, 4.0, 0.0])
    # translating a set far enough moves every point by exactly |shift| (Euclidean, not squared cost)
    assert M.wasserstein(x, x + 100 * shift) == pytest.approx(500.0, rel=1e-9)
    # one point against a set: the mean distance to that point
    p = np.zeros((1, 3))
    assert M.wasserstein(p, x) == pytest.approx(np.linalg.norm(x, axis=1).mean(), rel=1e-9)


def test_euclidean_cost_matches_direct_distances():
    x = _rng(0).normal(size=(37, 5)) * 100.0
    y = np.concatenate([x[:10] + 1e-9, _rng(1).normal(size=(20, 5))])
    direct = np.linalg.norm(x[:, None, :] - y[None, :, :], axis=-1)
    cost = alignment._euclidean_cost(x, y, chunk=8)
    assert np.allclose(cost, direct, rtol=1e-9, atol=1e-12)
    assert np.all(np.diag(alignment._euclidean_cost(x, x)) == 0.0)


def test_wasserstein_grows_with_shift():
    x, y = _rng(0).normal(size=(80, 4)), _rng(1).normal(size=(80, 4))
    values = [M.wasserstein(x, y + s) for s in (0.0, 0.5, 2.0)]
    assert values[0] < values[1] < values[2]


def test_wasserstein_warns_when_not_converged():
    x, y = _rng(0).normal(size=(50, 3)), _rng(1).normal(size=(50, 3))
    with pytest.warns(RuntimeWarning, match="did not converge"):
        M.wasserstein(x, y, num_itermax=3)


# ------------------------------------------------------------------------------------------------ alignment trials


def test_alignment_trials_structure_and_pairing():
    audio = _rng(0).normal(size=(50, 4))
    text = audio + 0.05 * _rng(1).normal(size=(50, 4))
    far = audio + 2.0
    near = M.alignment_trials(audio, text, n_trials=4, n_pairs=20, seed=3)
    away = M.alignment_trials(audio, far, n_trials=4, n_pairs=20, seed=3)
    assert near["n_pairs"] == 20
    for key in ("mmd", "wasserstein"):
        assert len(near[key]["values"]) == 4
        assert near[key]["mean"] == pytest.approx(np.mean(near[key]["values"]))
        assert near[key]["std"] == pytest.approx(np.std(near[key]["values"], ddof=1))
        assert near[key]["mean"] < away[key]["mean"]
    # trials differ (different samples) and repeat with the same seed
    assert len(set(near["wasserstein"]["values"])) > 1
    assert near == M.alignment_trials(audio, text, n_trials=4, n_pairs=20, seed=3)


def test_alignment_trials_uses_the_same_rows_for_both_modalities():
    # identical modalities: any paired sample gives zero; unpaired sampling would not
    emb = _rng(0).normal(size=(40, 3))
    out = M.alignment_trials(emb, emb.copy(), n_trials=3, n_pairs=10, seed=0)
    assert out["mmd"]["values"] == [0.0, 0.0, 0.0]
    assert out["wasserstein"]["values"] == [0.0, 0.0, 0.0]


def test_alignment_trials_whole_set_when_fewer_rows_than_pairs():
    a, t = _rng(0).normal(size=(15, 3)), _rng(1).normal(size=(15, 3))
    calls = []
    out = M.alignment_trials(a, t, n_trials=3, n_pairs=5000, progress=lambda d, n: calls.append((d, n)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert out["n_pairs"] == 15
    assert out["mmd"]["std"] == 0.0
    assert out["wasserstein"]["values"][0] == pytest.approx(M.wasserstein(a, t))


def test_alignment_trials_rejects_unpaired_inputs():
    with pytest.raises(ValueError, match="same length"):
        M.alignment_trials(np.zeros((5, 2)), np.zeros((6, 2)))
    with pytest.raises(ValueError, match="same embedding size"):
        M.alignment_trials(np.zeros((5, 2)), np.zeros((5, 3)))


# ------------------------------------------------------------------------------------------------ ordinality lists


def test_ordinality_grid():
    grid = M.ordinality_grid()
    assert grid.shape == (14,)
    assert grid[0] == 0.5 and grid[-1] == 7.0
    assert np.allclose(np.diff(grid), 0.5)


def test_ordinality_lists_valence_follow_the_paper():
    lists = M.ordinality_lists("valence")
    grid = M.ordinality_grid()
    assert lists.shape == (100, 14, 2)
    for k in range(100):
        assert np.array_equal(lists[k, :, 0], grid)  # valence varies over the grid
        assert np.all(lists[k, :, 1] == lists[k, 0, 1])  # arousal fixed within a list
    fixed = lists[:, 0, 1]
    assert list(fixed[:3]) == [0.5, 1.0, 1.5]
    assert fixed[13] == 7.0 and fixed[14] == 0.5 and fixed[15] == 1.0  # wraps after 7.0
    assert fixed[99] == grid[99 % 14]


def test_ordinality_lists_arousal_swaps_roles():
    voc = M.ordinality_lists("valence", n_lists=20)
    aoc = M.ordinality_lists("arousal", n_lists=20)
    assert np.array_equal(aoc, voc[:, :, ::-1])


def test_ordinality_lists_unknown_axis_lists_valid_names():
    with pytest.raises(ValueError, match="valence, arousal"):
        M.ordinality_lists("dominance")


# ------------------------------------------------------------------------------------------------ retrieval & tau


def test_greedy_retrieval_without_repeats_where_greedy_matters():
    # caption 0 takes clip 0; caption 1 also prefers clip 0, must fall back to clip 2 (its 2nd best), not clip 0
    sim = np.array([
        [0.9, 0.1, 0.2, 0.0],
        [0.8, 0.3, 0.7, 0.0],
        [0.95, 0.5, 0.9, 0.4],
    ])
    assert list(M.greedy_unique_retrieval(sim)) == [0, 2, 1]
    clip_values = np.array([1.0, 3.0, 2.0, 0.0])
    # retrieved values 1, 2, 3 for queries 1, 2, 3 -> perfect order
    assert M.ordinal_retrieval_tau(sim, clip_values, [1.0, 2.0, 3.0]) == pytest.approx(1.0)
    # with repeats allowed the retrieved values would be 1, 1, 1 (tau undefined)
    assert len(set(M.greedy_unique_retrieval(np.ones((4, 4))))) == 4


def test_tau_perfect_and_reversed_order():
    clip_values = np.array([5.0, 1.0, 3.0, 2.0, 4.0, 6.0])
    queries = np.array([1.0, 2.0, 3.0, 4.0])
    # similarity peaks at the clip whose value equals the query
    sim = -np.abs(queries[:, None] - clip_values[None, :])
    assert M.ordinal_retrieval_tau(sim, clip_values, queries) == pytest.approx(1.0)
    assert M.ordinal_retrieval_tau(sim, clip_values, queries[::-1]) == pytest.approx(-1.0)


def test_tau_matches_scipy_on_random_retrieval():
    rng = _rng(4)
    sim, clip_values, queries = rng.normal(size=(14, 40)), rng.uniform(1, 7, 40), M.ordinality_grid()
    taken = M.greedy_unique_retrieval(sim)
    expected = kendalltau(queries, clip_values[taken]).statistic
    assert M.ordinal_retrieval_tau(sim, clip_values, queries) == pytest.approx(expected)


def test_tau_is_zero_when_retrieved_values_are_constant():
    sim = _rng(0).normal(size=(5, 8))
    assert M.ordinal_retrieval_tau(sim, np.full(8, 4.0), np.arange(5.0)) == 0.0


def test_tau_needs_enough_clips():
    with pytest.raises(ValueError, match="at least as many items"):
        M.ordinal_retrieval_tau(np.zeros((14, 10)), np.zeros(10), M.ordinality_grid())
    with pytest.raises(ValueError, match="clip_values has 9 values"):
        M.ordinal_retrieval_tau(np.zeros((3, 10)), np.zeros(9), np.arange(3.0))


def test_ordinality_test_aggregates_lists():
    rng = _rng(1)
    clip_values = rng.uniform(0.5, 7.0, size=60)
    grid = M.ordinality_grid()
    good = [-np.abs(grid[:, None] - clip_values[None, :]) + 0.01 * rng.normal(size=(14, 60)) for _ in range(5)]
    noise = rng.normal(size=(5, 14, 60))
    out_good = M.ordinality_test(good, clip_values)
    out_noise = M.ordinality_test(noise, clip_values)
    assert len(out_good["values"]) == 5
    assert out_good["mean"] > 0.9 > out_noise["mean"]
    manual = [M.ordinal_retrieval_tau(s, clip_values, grid) for s in noise]
    assert out_noise["values"] == pytest.approx(manual)
    assert out_noise["std"] == pytest.approx(np.std(manual, ddof=1))


# ------------------------------------------------------------------------------------------------ recall@k


def test_recall_matches_naive_loop():
    sim = _rng(0).normal(size=(30, 30))
    sim[5, 7] = sim[5, 5]  # a tie with the ground truth
    out = M.recall_at_k(sim, ks=(1, 5, 10))
    for direction, matrix in (("a2t", sim), ("t2a", sim.T)):
        ranks = naive_ranks(matrix)
        for k in (1, 5, 10):
            assert out[f"{direction}_r@{k}"] == pytest.approx(np.mean(ranks <= k))
        assert out[f"{direction}_mean_rank"] == pytest.approx(ranks.mean())
        assert out[f"{direction}_median_rank"] == pytest.approx(np.median(ranks))


def test_recall_perfect_and_collapsed():
    perfect = M.recall_at_k(np.eye(20) + 0.01 * _rng(0).uniform(size=(20, 20)) * (1 - np.eye(20)))
    assert perfect["a2t_r@1"] == perfect["t2a_r@1"] == 1.0 and perfect["a2t_mean_rank"] == 1.0
    collapsed = np.ones((20, 20))
    pess = M.recall_at_k(collapsed)
    assert pess["a2t_r@10"] == 0.0 and pess["a2t_mean_rank"] == 20.0
    expected = M.recall_at_k(collapsed, ties="expected")
    assert expected["a2t_r@5"] == pytest.approx(5 / 20) and expected["t2a_mean_rank"] == pytest.approx(10.5)
    assert M.recall_at_k(collapsed, ties="optimistic")["a2t_r@1"] == 1.0


def test_recall_directions_differ():
    sim = np.array([[1.0, 0.9, 0.0], [2.0, 0.5, 0.0], [0.0, 0.0, 1.0]])
    out = M.recall_at_k(sim, ks=(1,))
    assert out["a2t_r@1"] == pytest.approx(2 / 3)  # row 1: text 0 beats text 1
    assert out["t2a_r@1"] == pytest.approx(1 / 3)  # column 0: audio 1 beats audio 0; column 1: audio 0 beats 1


def test_recall_rejects_bad_input():
    with pytest.raises(ValueError, match="square"):
        M.recall_at_k(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="pessimistic, expected, optimistic"):
        M.recall_at_k(np.eye(3), ties="random")
    with pytest.raises(ValueError, match="NaN"):
        M.recall_at_k(np.full((2, 2), np.nan))


# ------------------------------------------------------------------------------------------------ CCC / Pearson / V-A


def test_ccc_identities_and_oracle():
    x = _rng(0).normal(size=50)
    y = x + _rng(1).normal(size=50)
    assert M.ccc(x, x) == pytest.approx(1.0)
    centred = x - x.mean()
    assert M.ccc(centred, -centred) == pytest.approx(-1.0)
    assert M.ccc(x, y) == pytest.approx(naive_ccc(x, y))
    assert M.ccc(x, x + 1.0) < M.pearson(x, x + 1.0) == pytest.approx(1.0)  # CCC penalises bias, Pearson not
    assert M.ccc(np.full(4, 2.0), np.full(4, 2.0)) == 1.0


def test_pearson_matches_numpy_and_guards_constants():
    x, y = _rng(0).normal(size=40), _rng(1).normal(size=40)
    assert M.pearson(x, y) == pytest.approx(np.corrcoef(x, y)[0, 1])
    assert M.pearson(x, np.full(40, 3.0)) == 0.0
    with pytest.raises(ValueError, match="same length"):
        M.pearson(x, y[:-1])


def test_va_grid():
    grid = M.va_grid()
    assert grid.shape == (169, 2)
    assert grid.min() == 1.0 and grid.max() == 7.0
    assert len({tuple(p) for p in grid}) == 169
    assert M.va_grid(step=1.0).shape == (49, 2)


def test_va_from_similarity_limits():
    grid = M.va_grid(step=1.0)
    sim = _rng(0).normal(size=(6, grid.shape[0]))
    sharp = M.va_from_similarity(sim, grid, temperature=1e-4)
    assert np.allclose(sharp, grid[np.argmax(sim, axis=1)])
    flat = M.va_from_similarity(sim, grid, temperature=1e6)
    assert np.allclose(flat, grid.mean(axis=0), atol=1e-4)
    # translation of the similarities per row changes nothing (softmax invariance), no overflow for large sims
    assert np.allclose(M.va_from_similarity(sim + 1e4, grid), M.va_from_similarity(sim, grid))
    with pytest.raises(ValueError, match="temperature"):
        M.va_from_similarity(sim, grid, temperature=0.0)
    with pytest.raises(ValueError, match="49 points"):
        M.va_from_similarity(sim[:, :10], grid)


# ------------------------------------------------------------------------------------------------ statistics


@pytest.mark.parametrize("test", ["ttest", "wilcoxon"])
def test_paired_test_detects_clear_difference_not_null(test):
    rng = _rng(0)
    base = rng.normal(size=30)
    better = base + 0.5 + 0.1 * rng.normal(size=30)
    same = base + 0.1 * rng.normal(size=30)
    clear = M.paired_test(better, base, test)
    null = M.paired_test(same, base, test)
    assert clear["test"] == test and clear["p"] < 1e-4
    assert null["p"] > 0.05
    assert M.significantly_better(better, base, higher_is_better=True, test=test)
    assert not M.significantly_better(better, base, higher_is_better=False, test=test)
    assert not M.significantly_better(same, base, higher_is_better=True, test=test)


def test_paired_ttest_matches_scipy_and_is_two_tailed():
    from scipy.stats import ttest_rel

    a, b = _rng(0).normal(size=20), _rng(1).normal(size=20)
    out = M.paired_test(a, b)
    ref = ttest_rel(a, b)
    assert out["statistic"] == pytest.approx(ref.statistic) and out["p"] == pytest.approx(ref.pvalue)
    assert M.paired_test(b, a)["p"] == pytest.approx(out["p"])


def test_paired_test_degenerate_cases():
    a = np.arange(10.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no scipy warnings leak out
        assert M.paired_test(a, a) == {"statistic": 0.0, "p": 1.0, "test": "ttest"}
        assert M.paired_test(a, a, "wilcoxon")["p"] == 1.0
        assert M.paired_test(a + 1.0, a)["p"] == 0.0
    with pytest.raises(ValueError, match="ttest, wilcoxon"):
        M.paired_test(a, a, "anova")
    with pytest.raises(ValueError, match="same length"):
        M.paired_test(a, a[:-1])


def test_mean_std():
    assert M.mean_std([1.0, 2.0, 3.0]) == {"mean": 2.0, "std": 1.0}
    assert M.mean_std([4.0]) == {"mean": 4.0, "std": 0.0}
    with pytest.raises(ValueError, match="at least 1"):
        M.mean_std([])


def test_input_errors_name_the_argument():
    with pytest.raises(M.MetricInputError, match="x must be a 2-D"):
        M.mmd_rbf(np.zeros(5), np.zeros((5, 2)))
    with pytest.raises(M.MetricInputError, match="y contains NaN"):
        M.wasserstein(np.zeros((5, 2)), np.full((5, 2), np.nan))
    with pytest.raises(M.MetricInputError, match="bandwidth"):
        M.mmd_rbf(np.zeros((5, 2)), np.ones((5, 2)), bandwidth=-1.0)


# --------------------------------------------------------------------------- label-level recall


def _naive_label_recall(sim: np.ndarray, match: np.ndarray, k: int) -> float:
    """Sort each row by similarity, tied non-matching items first (pessimistic); hit if a top-k item matches."""
    hits = []
    for i in range(sim.shape[0]):
        order = sorted(range(sim.shape[1]), key=lambda j: (-sim[i, j], bool(match[i, j])))
        hits.append(any(match[i, j] for j in order[:k]))
    return float(np.mean(hits))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_label_recall_matches_naive_sort_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = 37
    sim = np.round(rng.normal(size=(n, n)), 1)  # coarse values: many ties, also at the k-th place
    va = rng.integers(1, 4, size=(n, 2)).astype(float)
    match = M.label_match(va, tol=0.0)
    out = M.label_recall_at_k(sim, match, ks=(1, 3, 5, 10))
    for k in (1, 3, 5, 10):
        assert out[f"a2t_label_r@{k}"] == pytest.approx(_naive_label_recall(sim, match, k))
        assert out[f"t2a_label_r@{k}"] == pytest.approx(_naive_label_recall(sim.T, match.T, k))


def test_label_recall_is_one_for_a_model_that_ranks_by_label_and_chance_level_for_a_constant_one():
    va = np.repeat(np.array([[2.0, 2.0], [5.0, 6.0], [6.0, 3.0]]), 10, axis=0)
    match = M.label_match(va, tol=0.0)
    perfect = match.astype(float) + 0.01 * np.random.default_rng(0).random(match.shape)
    assert M.label_recall_at_k(perfect, match, ks=(1,))["a2t_label_r@1"] == 1.0
    constant = np.zeros_like(perfect)  # every item tied: pessimistic ties fill the slot with a non-match
    assert M.label_recall_at_k(constant, match, ks=(1,))["a2t_label_r@1"] == 0.0


def test_label_match_auto_tolerance_by_corpus_kind():
    # category x intensity proxies: the same category at another intensity is another label
    va = np.array([[2.0, 5.0], [2.0, 5.0], [2.5, 4.5], [6.0, 5.0]])
    cats = ["angry", "angry", "angry", "happy"]
    m = M.label_match(va, cats)
    assert m[0, 1] and not m[0, 2] and not m[0, 3]
    # continuous ratings: within 0.5 on both axes, and the same category where both are known
    cont = np.array([[2.0, 5.0], [2.4, 5.5], [2.6, 5.0], [2.1, 5.1]])
    m = M.label_match(cont, ["angry", "", "angry", "sad"])
    assert m[0, 1] and not m[0, 2] and not m[0, 3]
    assert M.label_match(cont).sum() == M.label_match(cont, tol=0.5).sum()
    with pytest.raises(M.MetricInputError, match="tol"):
        M.label_match(cont, tol=-1)


def test_seed_test_welch_matches_scipy_and_handles_constant_scores():
    from scipy.stats import ttest_ind

    a, b = [0.61, 0.58, 0.64, 0.60, 0.59], [0.52, 0.55, 0.50, 0.57]
    out = M.seed_test(a, b)
    assert out["p"] == pytest.approx(ttest_ind(a, b, equal_var=False).pvalue) and (out["n_a"], out["n_b"]) == (5, 4)
    assert M.seed_test([1.0, 1.0, 1.0], [1.0, 1.0, 1.0])["p"] == 1.0
    assert M.seed_test([1.0, 1.0, 1.0], [2.0, 2.0, 2.0])["p"] == 0.0
    assert M.seed_test(a[:4], b, "paired")["p"] == pytest.approx(M.paired_test(a[:4], b)["p"])
    with pytest.raises(M.MetricInputError, match="valid tests"):
        M.seed_test(a, b, "z")


# ------------------------------------------------------------------------------------------------ alignment speed paths


def _reference_cost(x: np.ndarray, y: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """The unfused cost-matrix code that the fused one replaced (the same cancellation rule)."""
    x_sq, y_sq = np.einsum("ij,ij->i", x, x), np.einsum("ij,ij->i", y, y)
    cost = np.empty((x.shape[0], y.shape[0]))
    for start in range(0, x.shape[0], chunk):
        stop = min(start + chunk, x.shape[0])
        scale = x_sq[start:stop, None] + y_sq[None, :]
        d2 = scale - 2.0 * (x[start:stop] @ y.T)
        rows, cols = np.nonzero(d2 <= 1e-6 * scale)
        diff = x[start + rows] - y[cols]
        d2[rows, cols] = np.einsum("ij,ij->i", diff, diff)
        cost[start:stop] = np.sqrt(np.maximum(d2, 0.0))
    return cost


def _reference_kernel_sum(a: np.ndarray, b: np.ndarray, gamma: float, chunk: int) -> float:
    b_sq = np.einsum("ij,ij->i", b, b)
    total = 0.0
    for start in range(0, a.shape[0], chunk):
        block = a[start:start + chunk]
        d2 = np.einsum("ij,ij->i", block, block)[:, None] + b_sq[None, :] - 2.0 * (block @ b.T)
        total += float(np.exp(-gamma * np.maximum(d2, 0.0)).sum())
    return total


@pytest.mark.parametrize("chunk", [1, 7, 1024])
def test_fused_cost_and_kernel_match_the_unfused_code_bit_for_bit(chunk):
    x, y = _rng(0).normal(size=(37, 16)), _rng(1).normal(size=(29, 16))
    y[3] = x[5]  # an exactly coincident pair goes through the cancellation fix
    got = alignment._euclidean_cost(x, y, chunk=chunk)
    np.testing.assert_array_equal(got, _reference_cost(x, y, chunk))
    assert got[5, 3] == 0.0
    assert alignment._rbf_kernel_sum(x, y, 0.07, chunk) == _reference_kernel_sum(x, y, 0.07, chunk)


def test_mmd_float32_kernel_is_close_and_keeps_the_identity():
    x = _rng(0).normal(size=(300, 32))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = x + 0.2 * _rng(1).normal(size=(300, 32))
    ref = M.mmd_rbf(x, y)
    assert M.mmd_rbf(x, y, precision="float32") == pytest.approx(ref, rel=1e-4, abs=1e-7)
    assert M.mmd_rbf(x, x.copy(), precision="float32") == 0.0
    with pytest.raises(M.MetricInputError, match="precision"):
        M.mmd_rbf(x, y, precision="float16")


def test_alignment_trials_in_worker_processes_match_in_process():
    audio = _rng(0).normal(size=(80, 6))
    text = audio + 0.3 * _rng(1).normal(size=(80, 6))
    serial = M.alignment_trials(audio, text, n_trials=4, n_pairs=30, seed=5, workers=1)
    calls = []
    parallel = M.alignment_trials(audio, text, n_trials=4, n_pairs=30, seed=5, workers=2,
                                  progress=lambda d, n: calls.append((d, n)))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    for key in ("mmd", "wasserstein"):  # same draws, same trial order; BLAS threads may move the last bits
        np.testing.assert_allclose(parallel[key]["values"], serial[key]["values"], rtol=1e-12, atol=1e-15)
    # and the sequential path is the former one: trial t uses the t-th draw of the seeded generator
    rng = np.random.default_rng(5)
    for t in range(4):
        idx = rng.choice(80, size=30, replace=False)
        assert serial["wasserstein"]["values"][t] == M.wasserstein(audio[idx], text[idx])
        assert serial["mmd"]["values"][t] == M.mmd_rbf(audio[idx], text[idx])
    with pytest.raises(M.MetricInputError, match="workers"):
        M.alignment_trials(audio, text, workers=0)


def test_alignment_on_an_unavailable_device_says_so(monkeypatch):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    x = _rng(0).normal(size=(10, 3))
    with pytest.raises(M.MetricInputError, match="no CUDA device"):
        M.wasserstein(x, x, device="cuda")


def test_alignment_on_cuda_matches_cpu():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    x = _rng(0).normal(size=(400, 64))
    y = x + 0.3 * _rng(1).normal(size=(400, 64))
    y[7] = x[7]
    assert M.wasserstein(x, y, device="cuda") == pytest.approx(M.wasserstein(x, y), rel=1e-12)
    assert M.mmd_rbf(x, y, device="cuda") == pytest.approx(M.mmd_rbf(x, y), rel=1e-10)
    assert M.mmd_rbf(x, y, device="cuda", precision="float32") == pytest.approx(M.mmd_rbf(x, y), rel=1e-4)
    assert M.wasserstein(x, x, device="cuda") == 0.0


UNGUARDED_SCRIPT = """
import numpy as np
from emorank.metrics import alignment_trials

rng = np.random.default_rng(0)
a, t = rng.normal(size=(1200, 16)), rng.normal(size=(1200, 16))
{call}
"""


@functools.lru_cache(maxsize=1)
def _in_process_mmd() -> float:
    rng = np.random.default_rng(0)
    a, t = rng.normal(size=(1200, 16)), rng.normal(size=(1200, 16))
    return M.alignment_trials(a, t, n_trials=2, n_pairs=1000, workers=1)["mmd"]["mean"]


@pytest.mark.parametrize("call", [
    'print(repr(alignment_trials(a, t, n_trials=2, n_pairs=1000)["mmd"]["mean"]))',  # default workers: 2 cores
    'def run():\n    return alignment_trials(a, t, n_trials=2, n_pairs=1000, workers=2)\nprint(repr(run()["mmd"]["mean"]))',
])
def test_alignment_trials_in_a_script_without_main_guard_finishes_in_process(tmp_path, call):
    """Spawned workers re-ran the unguarded script, failed to start their own pool, and the parent waited forever
    (any evaluate() on more than 1,250 test clips from top-level code)."""
    import subprocess
    import sys

    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED_SCRIPT.format(call=call))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert out.returncode == 0, out.stderr[-2000:]
    assert float(out.stdout.strip()) == _in_process_mmd()
    assert "without an `if __name__ == \"__main__\":` guard" in out.stderr


def test_the_main_guard_is_found_in_a_scripts_source(tmp_path):
    script = tmp_path / "s.py"
    script.write_text("x = 1\nif __name__ == '__main__':\n    y = 2\n\n    z = 3\nif '__main__' == __name__:\n"
                      "    w = 4\nelse:\n    v = 5\nif __name__ != '__main__':\n    u = 6\n")
    assert [line for line in range(1, 12) if alignment._in_main_guard(str(script), line)] == [3, 4, 5, 7]
    assert not alignment._in_main_guard(str(tmp_path / "missing.py"), 1)
    assert not alignment._main_reruns_this_call()  # pytest's own __main__ runs its tests from under its guard
