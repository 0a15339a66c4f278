"""How typical a caption or a clip is of what a checkpoint learnt, with a threshold taken from data, so that a
result can say when its valence-arousal estimate should not be trusted.

Our interpretation (the paper has no such measure):

* a **text**'s typicality is its cosine similarity, in the joint space, to the nearest caption of the V-A caption
  grid (`retrieval.grid_embeddings`: the template captions "The person is speaking ..." that place every estimate).
  The reference is the same score for template phrasings the grid does not hold (another seed, random points);
* a **clip**'s typicality is its mean Euclidean distance, in the checkpoint's normalised encoder-feature space
  (z-scores with the checkpoint's global training statistics, as an upload is normalised), to its `K` nearest
  clips of the checkpoint's own dev split. The reference is the same distance for the test split of that corpus,
  which the checkpoint never saw. (Measured on the shipped checkpoints: similarity in the joint space separates
  nothing, a sine tone or white noise sits as close to the dev clips as speech does, because the heads keep only
  what aligns with captions; distances between the encoder's features flag tones, noise and another corpus's
  speech, each at every clip tried.)

An item less typical than (100 - `PERCENTILE`)% of its reference, i.e. beyond the reference's `PERCENTILE`-th
percentile of typicality, is flagged: its estimate is then an extrapolation. :func:`audio_reference` computes the
clip reference; :meth:`AudioReference.save` stores it beside a checkpoint (``reference.npz``, arrays only, loaded
without pickle) so an app without the training corpus can still judge (`bench/references.py` writes the shipped
ones).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emorank.captions.va import va_caption
from emorank.data.manifest import Manifest
from emorank.encoders.cache import FeatureCache
from emorank.model.core import EmotionRankCLAP

PERCENTILE = 5.0  # a score below this percentile of the reference is flagged
K = 5  # nearest reference clips averaged
REFERENCE_FILE = "reference.npz"
TEXT_PHRASINGS = 300  # held-out template phrasings (random points, seed TEXT_SEED) that calibrate texts
TEXT_SEED = 1  # the grid's phrasings use seed 0


@dataclass
class Typicality:
    """One item's score against its reference. `percentile`: the share (0..100) of the reference that is no more
    typical than the item; `typical` is False below PERCENTILE (the score is then past `threshold`)."""

    score: float
    threshold: float
    percentile: float
    typical: bool
    higher_is_typical: bool = True  # similarity (texts) or distance (clips)

    def to_dict(self) -> dict:
        return {"score": round(self.score, 4), "threshold": round(self.threshold, 4),
                "percentile": round(self.percentile, 1), "typical": self.typical,
                "score_is": "similarity" if self.higher_is_typical else "distance"}


def _judge(score: float, reference: np.ndarray, higher_is_typical: bool) -> Typicality:
    if higher_is_typical:
        threshold, share = float(np.percentile(reference, PERCENTILE)), float(np.mean(reference <= score))
    else:
        threshold, share = float(np.percentile(reference, 100 - PERCENTILE)), float(np.mean(reference >= score))
    typical = score >= threshold if higher_is_typical else score <= threshold
    return Typicality(float(score), threshold, 100.0 * share, bool(typical), higher_is_typical)


# ------------------------------------------------------------------------------------------------ texts
def text_scores(text_emb: np.ndarray, grid_emb: np.ndarray) -> np.ndarray:
    """[N] cosine similarity of each text [N, D] to its nearest grid caption [G, D] (both L2-normalised)."""
    return (np.atleast_2d(text_emb) @ grid_emb.T).max(axis=1)


def text_reference(model: EmotionRankCLAP, grid_emb: np.ndarray, cache: FeatureCache | None = None) -> np.ndarray:
    """[TEXT_PHRASINGS] scores of template phrasings at random points that the grid does not hold."""
    from emorank.search.retrieval import text_embeddings

    rng = np.random.default_rng(TEXT_SEED)
    points = rng.uniform(1.0, 7.0, size=(TEXT_PHRASINGS, 2))
    texts = [va_caption(v, a, rng) for v, a in points]
    return text_scores(text_embeddings(model, texts, cache), grid_emb)


def judge_text(text_emb: np.ndarray, grid_emb: np.ndarray, reference: np.ndarray) -> Typicality:
    """A text embedding [D] against the template phrasings' reference."""
    return _judge(float(text_scores(text_emb, grid_emb)[0]), reference, higher_is_typical=True)


# ------------------------------------------------------------------------------------------------ clips
def audio_scores(features: np.ndarray, reference: np.ndarray, k: int = K) -> np.ndarray:
    """[N] mean Euclidean distance of each clip's normalised features [N, Da] to its `k` nearest reference clips
    [R, Da]."""
    x, r = np.atleast_2d(features).astype(np.float64), reference.astype(np.float64)
    d2 = (x * x).sum(1)[:, None] - 2.0 * x @ r.T + (r * r).sum(1)[None, :]  # [N, R]
    k = min(k, d2.shape[1])
    nearest = np.partition(d2, k - 1, axis=1)[:, :k]
    return np.sqrt(np.maximum(nearest, 0.0)).mean(axis=1)


def clip_features(model: EmotionRankCLAP, raw: np.ndarray) -> np.ndarray:
    """Raw encoder features [N, Da] -> the checkpoint's normalised features (global statistics, as for an upload)."""
    return np.asarray(model.normaliser(raw, None), dtype=np.float32)


@dataclass
class AudioReference:
    """A checkpoint's dev clips (normalised encoder features: the neighbours a clip is scored against) and its
    test clips' scores."""

    features: np.ndarray  # [R, Da] float32
    calibration: np.ndarray  # [T] float32 distances of the test split
    meta: dict = field(default_factory=dict)  # corpus, splits, counts, K, PERCENTILE

    def judge(self, features: np.ndarray) -> Typicality:
        """A clip's normalised features [Da] (`clip_features`) against the checkpoint's own held-out clips."""
        score = float(audio_scores(features, self.features, int(self.meta.get("k", K)))[0])
        return _judge(score, self.calibration, higher_is_typical=False)

    def save(self, folder: str | os.PathLike) -> Path:
        path = Path(folder) / REFERENCE_FILE
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez(tmp, features=self.features.astype(np.float32), calibration=self.calibration.astype(np.float32),
                 meta=np.array(json.dumps(self.meta)))
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "AudioReference | None":
        """The reference stored beside a checkpoint, or None (no file, or one that cannot be read)."""
        path = Path(folder) / REFERENCE_FILE
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                features, calibration = data["features"], data["calibration"]
                meta = json.loads(str(data["meta"]))
        except (OSError, ValueError, KeyError):
            return None
        if features.ndim != 2 or calibration.ndim != 1 or not len(features) or not len(calibration):
            return None
        return cls(features, calibration, meta if isinstance(meta, dict) else {})


def audio_reference(model: EmotionRankCLAP, manifest: Manifest, cache: FeatureCache | None = None,
                    reference_split: str = "dev", calibration_split: str = "test", corpus: str = "") -> AudioReference:
    """The clip reference of `model` from a manifest of its corpus: dev clips as neighbours, test clips scored
    against them, both normalised as an upload is. Raises ValueError without enough clips in both splits."""
    cache = cache or FeatureCache()
    parts = {}
    for split in (reference_split, calibration_split):
        rows = manifest.split_of(split)
        if len(rows) < K + 1:
            raise ValueError(f"the manifest needs at least {K + 1} {split!r} clips for a reference (it has "
                             f"{len(rows)})")
        parts[split] = clip_features(model, cache.audio_features(rows.path, model.audio_encoder,
                                                                 progress=False).values)
    reference = parts[reference_split]
    return AudioReference(reference, audio_scores(parts[calibration_split], reference).astype(np.float32),
                          {"corpus": corpus, "reference": reference_split, "calibration": calibration_split,
                           "clips": [len(parts[reference_split]), len(parts[calibration_split])], "k": K,
                           "percentile": PERCENTILE})
