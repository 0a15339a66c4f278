"""Audio-text contrastive losses, one class each, all called the same way.

    loss(audio_emb, text_emb, labels=None, logit_scale=None, *, classes=None, para=None, teacher_logits=None)
        audio_emb, text_emb  [N, D] L2-normalised, row i of each is pair i
        labels               [N, 2] float (valence, arousal) on the 1..7 scale
        logit_scale          scalar tensor = 1 / temperature (None = 1.0, the EmotionRankCLAP paper's value)
        classes              [N] int64 category ids (-1 = unknown)
        para                 [N, P] paralinguistic feature vectors
        teacher_logits       [N, N] a teacher model's audio x text logits for the batch
    -> scalar tensor

A loss ignores inputs it does not use (its class attribute ``uses`` names the ones it reads) and raises
``LossInputError`` (a ValueError) naming any input it needs but did not get.
"""
from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from emorank.losses.clip import RACLAPLoss, SmoothCLAPLoss, SymmetricCrossEntropyLoss
from emorank.losses.functional import LossInputError
from emorank.losses.rnc import RankNContrastLoss, RankNContrastSCELoss
from emorank.losses.supcon import SupConLoss

__all__ = [
    "LOSSES",
    "build_loss",
    "LossInputError",
    "SymmetricCrossEntropyLoss",
    "RankNContrastLoss",
    "RankNContrastSCELoss",
    "SupConLoss",
    "SmoothCLAPLoss",
    "RACLAPLoss",
]

LOSSES: dict[str, type[nn.Module]] = {
    "sce": SymmetricCrossEntropyLoss,
    "rnc": RankNContrastLoss,
    "rnc-sce": RankNContrastSCELoss,
    "supcon": SupConLoss,
    "smooth": SmoothCLAPLoss,
    "ra": RACLAPLoss,
}


def build_loss(name: str, **kwargs: Any) -> nn.Module:
    """Instantiate the loss registered under ``name`` with its keyword parameters.

    Raises ValueError for an unknown name (listing the valid ones) or a parameter the loss does not take
    (listing the ones it does).
    """
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid: {', '.join(sorted(LOSSES))}")
    cls = LOSSES[name]
    accepted = [p for p in inspect.signature(cls).parameters if p != "self"]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(
            f"loss {name!r} ({cls.__name__}) has no parameter(s) {unknown}; "
            f"it takes: {', '.join(accepted) if accepted else 'no parameters'}"
        )
    return cls(**kwargs)
