"""How typical a caption or a clip is of what a checkpoint learnt, with a threshold taken from data, so that a
result can say when its valence-arousal estimate should not be trusted.

Our interpretation (the paper has no such measure):

* a **text**'s typicality is its cosine similarity, in the joint space, to the nearest caption of the V-A caption
  grid (`retrieval.grid_embeddings`: the template captions "The person is speaking ..." that place every estimate).
  The reference is the same score for template phrasings the grid does not hold (another seed, random points);
* a **clip**'s typicality is its mean cosine similarity to its `K` nearest clips of the checkpoint's own dev split
  (embedded as an upload is: global normalisation, no speaker statistics). The reference is the same score for the
  test split of that corpus, which the checkpoint never saw.

A score below the `PERCENTILE`-th percentile of its reference (less typical than 95% of the checkpoint's own
held-out material) is flagged: the estimate is then an extrapolation. :func:`audio_reference` computes the clip
reference; :meth:`AudioReference.save` stores it beside a checkpoint (``reference.npz``, arrays only, loaded without
pickle) so an app without the training corpus can still judge.
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
    """One item's score against its reference: `typical` is False below the threshold."""

    score: float
    threshold: float
    percentile: float  # where the score falls in the reference, 0..100
    typical: bool

    def to_dict(self) -> dict:
        return {"score": round(self.score, 4), "threshold": round(self.threshold, 4),
                "percentile": round(self.percentile, 1), "typical": self.typical}


def _judge(score: float, reference: np.ndarray) -> Typicality:
    threshold = float(np.percentile(reference, PERCENTILE))
    percentile = float(100.0 * np.mean(reference <= score))
    return Typicality(float(score), threshold, percentile, bool(score >= threshold))


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
    return _judge(float(text_scores(text_emb, grid_emb)[0]), reference)


# ------------------------------------------------------------------------------------------------ clips
def audio_scores(audio_emb: np.ndarray, reference: np.ndarray, k: int = K) -> np.ndarray:
    """[N] mean cosine similarity of each clip [N, D] to its `k` nearest reference clips [R, D]."""
    sims = np.atleast_2d(audio_emb).astype(np.float32) @ reference.astype(np.float32).T  # [N, R]
    k = min(k, sims.shape[1])
    return np.partition(sims, sims.shape[1] - k, axis=1)[:, -k:].mean(axis=1)


@dataclass
class AudioReference:
    """A checkpoint's dev clips (the neighbours a clip is scored against) and its test clips' scores."""

    audio: np.ndarray  # [R, D] float16 embeddings of the dev split
    calibration: np.ndarray  # [T] float32 scores of the test split
    meta: dict = field(default_factory=dict)  # corpus, splits, counts, K, PERCENTILE

    def judge(self, audio_emb: np.ndarray) -> Typicality:
        """A clip embedding [D] against the checkpoint's own held-out clips."""
        return _judge(float(audio_scores(audio_emb, self.audio, self.meta.get("k", K))[0]), self.calibration)

    def save(self, folder: str | os.PathLike) -> Path:
        path = Path(folder) / REFERENCE_FILE
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, audio=self.audio.astype(np.float16), calibration=self.calibration.astype(np.float32),
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
                audio, calibration = data["audio"], data["calibration"]
                meta = json.loads(str(data["meta"]))
        except (OSError, ValueError, KeyError):
            return None
        if audio.ndim != 2 or calibration.ndim != 1 or not len(audio) or not len(calibration):
            return None
        return cls(audio, calibration, meta if isinstance(meta, dict) else {})


def audio_reference(model: EmotionRankCLAP, manifest: Manifest, cache: FeatureCache | None = None,
                    reference_split: str = "dev", calibration_split: str = "test", corpus: str = "") -> AudioReference:
    """The clip reference of `model` from a manifest of its corpus: dev clips as neighbours, test clips scored
    against them. Clips are embedded as an upload is (global normalisation). Raises ValueError without both
    splits."""
    cache = cache or FeatureCache()
    parts = {}
    for split in (reference_split, calibration_split):
        rows = manifest.split_of(split)
        if len(rows) < K + 1:
            raise ValueError(f"the manifest needs at least {K + 1} {split!r} clips for a reference (it has "
                             f"{len(rows)})")
        feats = cache.audio_features(rows.path, model.audio_encoder, progress=False)
        parts[split] = model.embed_audio_features(feats.values, None)  # [M, D], as one upload
    reference = parts[reference_split]
    return AudioReference(reference.astype(np.float16), audio_scores(parts[calibration_split], reference),
                          {"corpus": corpus, "reference": reference_split, "calibration": calibration_split,
                           "clips": [len(parts[reference_split]), len(parts[calibration_split])], "k": K,
                           "percentile": PERCENTILE})
