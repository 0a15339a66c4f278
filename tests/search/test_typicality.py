"""emorank.search.typicality: scores against a naive oracle, thresholds from the reference, files without pickle."""
import numpy as np
import pytest

from emorank.search.typicality import (PERCENTILE, AudioReference, audio_scores, judge_text, text_scores)


def test_audio_scores_are_the_mean_distance_to_the_k_nearest_reference_clips():
    rng = np.random.default_rng(0)
    x, ref = rng.normal(size=(7, 12)), rng.normal(size=(40, 12))
    naive = [np.sort(np.linalg.norm(ref - row, axis=1))[:5].mean() for row in x]
    assert audio_scores(x, ref, k=5) == pytest.approx(naive, rel=1e-9)
    assert audio_scores(ref[:3], ref, k=1) == pytest.approx([0, 0, 0], abs=1e-6)  # a reference clip is at 0


def test_a_clip_is_flagged_beyond_the_calibration_percentile_and_the_file_round_trips(tmp_path):
    rng = np.random.default_rng(1)
    dev = rng.normal(size=(60, 8)).astype(np.float32)
    test = rng.normal(size=(200, 8))
    ref = AudioReference(dev, audio_scores(test, dev).astype(np.float32), {"k": 5, "corpus": "demo"})
    inside, far = ref.judge(rng.normal(size=8)), ref.judge(rng.normal(size=8) + 10.0)
    assert inside.threshold == pytest.approx(np.percentile(ref.calibration, 100 - PERCENTILE))
    assert inside.typical and not far.typical and far.percentile == 0.0 and far.score > far.threshold
    assert far.to_dict()["score_is"] == "distance"
    ref.save(tmp_path)
    again = AudioReference.load(tmp_path)
    assert np.array_equal(again.features, ref.features) and again.meta == ref.meta
    assert again.judge(rng.normal(size=8) + 10.0).typical is False
    (tmp_path / "reference.npz").write_bytes(b"not an npz")
    assert AudioReference.load(tmp_path) is None and AudioReference.load(tmp_path / "none") is None


def test_texts_are_judged_by_similarity_to_the_nearest_grid_caption():
    grid = np.eye(4)
    assert text_scores(np.array([[0.6, 0.8, 0, 0]]), grid) == pytest.approx([0.8])
    reference = np.linspace(0.8, 1.0, 101)
    near, far = judge_text(np.array([1.0, 0, 0, 0]), grid, reference), judge_text(np.full(4, 0.5), grid, reference)
    assert near.typical and near.percentile == 100.0 and not far.typical and far.score == pytest.approx(0.5)
