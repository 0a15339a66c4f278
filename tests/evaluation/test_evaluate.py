import json

import numpy as np
import pytest

from emorank.evaluation.evaluate import EvalConfig, evaluate, trial_size
from emorank.model.checkpoint import CheckpointError
from emorank.model.core import EmotionRankCLAP

SMALL = EvalConfig(n_trials=4, n_pairs=5000, n_lists=6, seed=0)


def test_report_has_the_paper_keys_and_sane_values(trained_checkpoint, demo_manifest, session_cache):
    """Each number of the report is recomputed here from the model's own embeddings of the test clips and their
    captions, by the protocol's definition: the trial draws for MMD / Wasserstein, the naive rank of every pair
    for recall@k, Lin's formula for CCC on the similarity-weighted grid estimate."""
    from emorank.evaluation.evaluate import pair_captions
    from emorank.metrics.alignment import mmd_rbf, wasserstein
    from emorank.metrics.va import va_grid
    from emorank.search.retrieval import grid_embeddings, text_embeddings

    model = EmotionRankCLAP.from_checkpoint(trained_checkpoint)
    report = evaluate(model, demo_manifest, "test", SMALL, session_cache, progress=False)
    json.dumps(report)  # JSON-ready
    for group, key in [("alignment", "mmd"), ("alignment", "wasserstein"), ("ordinality", "aoc"),
                       ("ordinality", "voc")]:
        cell = report[group][key]
        assert {"mean", "std", "values"} <= set(cell)
        assert cell["mean"] == pytest.approx(np.mean(cell["values"]))
        assert cell["std"] == pytest.approx(np.std(cell["values"], ddof=1))
    assert len(report["alignment"]["mmd"]["values"]) == 4
    assert len(report["ordinality"]["aoc"]["values"]) == 6
    assert report["meta"]["clips"] == len(demo_manifest.split_of("test"))

    part = demo_manifest.split_of("test")
    feats = session_cache.audio_features(part.path, model.audio_encoder, progress=False)
    assert len(feats.rows) == len(part)
    audio = model.embed_audio_features(feats.values, part.speaker)  # [M, D]
    text = text_embeddings(model, pair_captions(model, part, session_cache, False), session_cache)  # [M, D]
    m = len(part)
    # alignment: trial k holds the k-th draw of the protocol's generator, the same rows of both modalities
    rng, size = np.random.default_rng(SMALL.seed), trial_size(m, SMALL)
    for k in range(SMALL.n_trials):
        idx = rng.choice(m, size=size, replace=False)
        assert report["alignment"]["mmd"]["values"][k] == pytest.approx(mmd_rbf(audio[idx], text[idx]), rel=1e-9)
        assert report["alignment"]["wasserstein"]["values"][k] == pytest.approx(wasserstein(audio[idx], text[idx]),
                                                                                  rel=1e-9)
    assert report["alignment"]["mmd"]["std"] > 0  # small test sets are subsampled so trials differ
    # retrieval: 1-based rank of each pair's partner, ties counted against it
    sub = np.random.default_rng(SMALL.seed).choice(m, size=min(m, SMALL.retrieval_max), replace=False)
    sim = audio[sub] @ text[sub].T  # [S, S]
    for direction, matrix in (("a2t", sim), ("t2a", sim.T)):
        rank = np.array([(row >= row[i]).sum() for i, row in enumerate(matrix)])
        for k in (1, 5, 10):
            assert report["retrieval"][f"{direction}_r@{k}"] == pytest.approx(np.mean(rank <= k))
        label = [report["retrieval"][f"{direction}_label_r@{k}"] for k in (1, 5, 10)]
        assert label[0] >= report["retrieval"][f"{direction}_r@1"]  # a caption sharing the label is a hit too
    # V-A estimate: softmax over the caption grid of similarity / temperature, then Lin's CCC against the labels
    grid, grid_emb = grid_embeddings(model, cache=session_cache)
    assert np.array_equal(grid, va_grid())
    weights = np.exp((audio @ grid_emb.T) / SMALL.va_temperature)
    estimate = (weights / weights.sum(axis=1, keepdims=True)) @ grid  # [M, 2]
    labels = part.va()
    for col, axis in enumerate(("valence", "arousal")):
        x, y = estimate[:, col], labels[:, col]
        lin = 2 * np.mean((x - x.mean()) * (y - y.mean())) / (x.var() + y.var() + (x.mean() - y.mean()) ** 2)
        assert report["va_estimation"][f"ccc_{axis}"] == pytest.approx(lin, rel=1e-6)
    assert report["va_estimation"]["ccc_arousal"] > 0.2  # the trained heads track arousal


def test_evaluation_is_reproducible(trained_checkpoint, demo_manifest, session_cache):
    model = EmotionRankCLAP.from_checkpoint(trained_checkpoint)
    a = evaluate(model, demo_manifest, "test", SMALL, session_cache, progress=False)
    b = evaluate(model, demo_manifest, "test", SMALL, session_cache, progress=False)
    assert a["ordinality"] == b["ordinality"] and a["alignment"] == b["alignment"]


def test_trained_model_orders_arousal(trained_checkpoint, demo_manifest, session_cache):
    """Arousal cues are strong in the demo corpus: the trained model's AOC must be clearly positive."""
    model = EmotionRankCLAP.from_checkpoint(trained_checkpoint)
    report = evaluate(model, demo_manifest, "test", SMALL, session_cache, progress=False)
    assert report["ordinality"]["aoc"]["mean"] > 0.2


def test_trial_size_follows_the_paper_on_large_sets():
    cfg = EvalConfig()
    assert trial_size(34963, cfg) == 5000
    assert trial_size(100, cfg) == 80


def test_too_small_split_and_unknown_split(trained_checkpoint, demo_manifest, session_cache):
    model = EmotionRankCLAP.from_checkpoint(trained_checkpoint)
    tiny = demo_manifest.subset(np.arange(len(demo_manifest))[:40])
    tiny.split[:] = ["test"] * 5 + ["train"] * 35
    with pytest.raises(ValueError, match="at least 14"):
        evaluate(model, tiny, "test", SMALL, session_cache, progress=False)
    with pytest.raises(ValueError, match="unknown split"):
        evaluate(model, demo_manifest, "holdout", SMALL, session_cache, progress=False)


def test_checkpoint_from_other_encoder_settings_is_refused(trained_checkpoint, demo_manifest, session_cache,
                                                           tmp_path):
    model = EmotionRankCLAP.from_checkpoint(trained_checkpoint)
    model.config.audio_fingerprint = "egemaps:some-other-version"
    with pytest.raises(CheckpointError, match="trained on audio features"):
        evaluate(model, demo_manifest, "test", SMALL, session_cache, progress=False)
