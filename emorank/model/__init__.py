"""The model: frozen encoders (by name) + trainable projection heads + a learnable temperature, its checkpoint
folder, and checkpoints on the Hugging Face Hub (layer 2; may import :mod:`emorank.encoders` and :mod:`emorank.data`).

:mod:`~emorank.model.core` is :class:`EmotionRankCLAP`; :mod:`~emorank.model.checkpoint` the folder format and
``config.json``; :mod:`~emorank.model.hub` resolves a Hub id or folder; :mod:`~emorank.model.card` writes model cards
and pushes to the Hub.
"""
from __future__ import annotations

from emorank.model.checkpoint import (CONFIG_FILE, HEADS_FILE, CheckpointError, ModelConfig, list_checkpoints,
                                      read_checkpoint_config, recover_checkpoint)
from emorank.model.core import EmotionRankCLAP, FeatureNormaliser

__all__ = [
    "CONFIG_FILE",
    "CheckpointError",
    "EmotionRankCLAP",
    "FeatureNormaliser",
    "HEADS_FILE",
    "ModelConfig",
    "list_checkpoints",
    "read_checkpoint_config",
    "recover_checkpoint",
]
