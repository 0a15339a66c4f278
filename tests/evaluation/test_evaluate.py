import json

import numpy as np
import pytest

from emorank.evaluation.evaluate import EvalConfig, evaluate, trial_size
from emorank.model.checkpoint import CheckpointError
from emorank.model.core import EmotionRankCLAP

SMALL = EvalConfig(n_trials=4, n_pairs=5000, n_lists=6, seed=0)


def test_report_has_the_paper_keys_and_sane_values(trained_checkpoint, demo_manifest, session_cache):
    model = EmotionRankCLAP.from_checkpoint(trained_checkpoint)
    report = evaluate(model, demo_manifest, "test", SMALL, session_cache, progress=False)
    json.dumps(report)  # JSON-ready
    for group, key in [("alignment", "mmd"), ("alignment", "wasserstein"), ("ordinality", "aoc"),
                       ("ordinality", "voc")]:
        cell = report[group][key]
        assert {"mean", "std", "values"} <= set(cell)
        assert cell["mean"] == pytest.approx(np.mean(cell["values"]))
    assert len(report["alignment"]["mmd"]["values"]) == 4
    assert len(report["ordinality"]["aoc"]["values"]) == 6
    assert all(-1 <= v <= 1 for v in report["ordinality"]["voc"]["values"])
    assert report["alignment"]["mmd"]["mean"] >= 0 and report["alignment"]["wasserstein"]["mean"] > 0
    assert report["alignment"]["mmd"]["std"] > 0  # small test sets are subsampled so trials differ
    assert {"a2t_r@1", "t2a_r@10"} <= set(report["retrieval"])
    for direction in ("a2t", "t2a"):  # label-level recall: a caption sharing the label is a hit, so >= pair-exact
        r = [report["retrieval"][f"{direction}_label_r@{k}"] for k in (1, 5, 10)]
        assert r == sorted(r) and all(0 <= v <= 1 for v in r)
        assert r[0] >= report["retrieval"][f"{direction}_r@1"]
    assert -1 <= report["va_estimation"]["ccc_arousal"] <= 1
    assert report["meta"]["clips"] == len(demo_manifest.split_of("test"))


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
