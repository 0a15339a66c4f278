"""emorank: EmotionRankCLAP and the emotion-CLAP family, offline by default.

Heavy modules (torch models, encoders, gradio, umap) are imported lazily so that
``import emorank`` stays cheap and free of side effects.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "EmotionRankCLAP": "emorank.model",
    "build_loss": "emorank.losses",
    "LOSSES": "emorank.losses",
    "LossInputError": "emorank.losses",
    "Manifest": "emorank.datasets",
    "read_csv_manifest": "emorank.datasets",
    "load_corpus": "emorank.datasets",
    "build_demo_corpus": "emorank.corpus",
    "SYSTEMS": "emorank.systems",
    "TrainConfig": "emorank.train",
    "ConfigError": "emorank.train",
    "train": "emorank.train",
    "evaluate": "emorank.evaluate",
    "Collection": "emorank.retrieval",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'emorank' has no attribute {name!r}")
