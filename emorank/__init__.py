"""emorank: EmotionRankCLAP and the emotion-CLAP family, offline by default.

The package follows the data's path, one subpackage per stage (lower layers never import higher ones)::

    data        audio files, manifests, corpus loaders, the synthetic demo corpus        (layer 0)
    losses      the contrastive losses (pure torch)                                       (layer 0)
    metrics     the evaluation metrics (pure numpy)                                       (layer 0)
    captions    the speaking-style text paired with each clip                             (layer 1)
    encoders    frozen audio and text encoders and the feature cache                      (layer 1)
    model       EmotionRankCLAP: heads + temperature, checkpoints, the Hub                (layer 2)
    training    systems and the trainer                                                   (layer 3)
    search      the index and retrieval: caption or V-A point -> clips, clip -> V-A       (layer 3)
    evaluation  the paper's protocol, zero-shot, comparisons, maps and figures            (layer 4)
    app, cli    the Gradio app's workspace and handlers, the command line                 (layer 5)

Heavy modules (torch models, encoders, gradio, umap) are imported lazily so that ``import emorank`` stays cheap:
the public names below resolve on first use.
"""
from __future__ import annotations

import importlib
from typing import Any

from emorank import _moved

__version__ = "0.2.0"

_LAZY = {
    "EmotionRankCLAP": "emorank.model.core",
    "build_loss": "emorank.losses",
    "LOSSES": "emorank.losses",
    "LossInputError": "emorank.losses",
    "Manifest": "emorank.data.manifest",
    "read_csv_manifest": "emorank.data.manifest",
    "load_corpus": "emorank.data.corpora",
    "build_demo_corpus": "emorank.data.synthetic",
    "SYSTEMS": "emorank.training.systems",
    "TrainConfig": "emorank.training.trainer",
    "ConfigError": "emorank.training.trainer",
    "train": "emorank.training.trainer",
    "evaluate": "emorank.evaluation.evaluate",
    "Collection": "emorank.search.retrieval",
}

__all__ = sorted(_LAZY) + ["__version__"]

_moved.install()


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'emorank' has no attribute {name!r}")
