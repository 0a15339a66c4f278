"""The shipped checkpoints: small, loadable, and each says what it was trained on and under which licence."""
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from emorank.model.core import EmotionRankCLAP

CKPT = Path(__file__).resolve().parents[2] / "checkpoints"
REAL = ["emotionrankclap-plus-ravdess", "emotionrankclap-ravdess", "clap-sce-av-ravdess"]
SYNTHETIC = ["emotionrankclap", "clap-sce-av"]


@pytest.mark.parametrize("name", REAL + SYNTHETIC)
def test_shipped_checkpoint_is_small_loadable_and_states_its_data(name):
    folder = CKPT / name
    assert sum(f.stat().st_size for f in folder.iterdir()) < 2_000_000  # heads only
    model = EmotionRankCLAP.from_checkpoint(folder)
    config = json.loads((folder / "config.json").read_text())
    assert config["dataset"] == ("ravdess" if name in REAL else "demo")
    report = json.loads((folder / "eval.json").read_text())
    assert report["meta"]["split"] == "test" and {"aoc", "voc"} <= set(report["ordinality"])
    emb = model.encode_text(["The person is speaking in a tense, hurried voice."])
    assert emb.shape == (1, 512) and np.all(np.isfinite(emb))


@pytest.mark.parametrize("name", REAL)
def test_heads_trained_on_ravdess_carry_its_licence(name):
    folder = CKPT / name
    assert "CC BY-NC-SA 4.0" in (folder / "LICENSE").read_text()
    card = (folder / "README.md").read_text()
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["license"] == "cc-by-nc-sa-4.0" and meta["datasets"] == ["ravdess"]
    assert json.loads((folder / "config.json").read_text())["system"]["name"] == name.removesuffix("-ravdess")


def test_real_speech_heads_order_captions_like_their_labels():
    """Text side of the RAVDESS heads: captions far apart on the V-A plane land far apart in the embedding."""
    model = EmotionRankCLAP.from_checkpoint(CKPT / "emotionrankclap-plus-ravdess")
    from emorank.captions.va import va_caption

    rng = np.random.default_rng(0)
    points = [(2.0, 6.0), (2.5, 5.5), (6.0, 2.0)]  # angry-ish, near it, calm-positive
    t = model.encode_text([va_caption(v, a, rng) for v, a in points])
    assert t[0] @ t[1] > t[0] @ t[2]
