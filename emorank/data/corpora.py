"""The corpus registry: name -> loader, and :func:`load_corpus`.

``csv`` (:mod:`emorank.data.manifest`), ``msp-podcast`` and ``iemocap`` (:mod:`emorank.data.rated`), ``ravdess``,
``crema-d``, ``emodb`` and ``tess`` (:mod:`emorank.data.acted`). Hugging Face audio datasets come in through
:func:`emorank.data.hf.load_hf_dataset`.
"""
from __future__ import annotations

import os
from typing import Callable

from emorank.data.acted import load_crema_d, load_emodb, load_ravdess, load_tess
from emorank.data.manifest import Manifest, ManifestError, read_csv_manifest
from emorank.data.rated import load_iemocap, load_msp_podcast

CORPORA: dict[str, Callable[..., Manifest]] = {
    "csv": read_csv_manifest,
    "msp-podcast": load_msp_podcast,
    "iemocap": load_iemocap,
    "ravdess": load_ravdess,
    "crema-d": load_crema_d,
    "emodb": load_emodb,
    "tess": load_tess,
}
"""Corpus name -> loader(root, **kwargs). For ``csv`` the root is the CSV file itself."""


def load_corpus(name: str, root: str | os.PathLike, **kwargs) -> Manifest:
    """Load corpus ``name`` (see :data:`CORPORA`; case and ``_`` vs ``-`` do not matter) from ``root``."""
    key = str(name).strip().lower().replace("_", "-")
    key = {"msp": "msp-podcast", "msppodcast": "msp-podcast", "cremad": "crema-d", "emo-db": "emodb"}.get(key, key)
    if key not in CORPORA:
        raise ManifestError(f"unknown corpus {name!r}; valid: {', '.join(CORPORA)}")
    return CORPORA[key](root, **kwargs)
