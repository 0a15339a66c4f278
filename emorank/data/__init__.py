"""Data in: everything between audio files on disk and a :class:`Manifest` (layer 0; imports nothing else from emorank).

:mod:`~emorank.data.audio` reads, checks and resamples audio; :mod:`~emorank.data.manifest` holds the Manifest and
the generic CSV loader; corpus loaders come one module per family (:mod:`~emorank.data.acted`: RAVDESS, CREMA-D,
EmoDB, TESS; :mod:`~emorank.data.rated`: MSP-Podcast, IEMOCAP; :mod:`~emorank.data.hf`: any Hugging Face audio
dataset) behind one registry (:mod:`~emorank.data.corpora`); :mod:`~emorank.data.proxies` turns categories into
valence-arousal points and :mod:`~emorank.data.splits` makes speaker-disjoint splits. The synthetic demo corpus
(:mod:`~emorank.data.synthetic`) and its speech engine (:mod:`~emorank.data.espeak`) live here too.
"""
from __future__ import annotations

from emorank.data.corpora import CORPORA, load_corpus
from emorank.data.manifest import LABEL_MAX, LABEL_MIN, SPLITS, Manifest, ManifestError, read_csv_manifest
from emorank.data.proxies import CATEGORY_VA, category_va, soft_category_va
from emorank.data.splits import speaker_disjoint_split, split_by_speakers

__all__ = [
    "CATEGORY_VA",
    "CORPORA",
    "LABEL_MAX",
    "LABEL_MIN",
    "Manifest",
    "ManifestError",
    "SPLITS",
    "category_va",
    "load_corpus",
    "load_hf_dataset",
    "read_csv_manifest",
    "soft_category_va",
    "speaker_disjoint_split",
    "split_by_speakers",
]


def __getattr__(name: str):
    # Lazy: the Hugging Face loader imports `datasets` (slow) when it runs, and is rarely needed.
    if name == "load_hf_dataset":
        from emorank.data.hf import load_hf_dataset
        return load_hf_dataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
