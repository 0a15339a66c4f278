"""Cross-modal supervised contrastive loss (SupConCLAP baseline)."""
from __future__ import annotations

from typing import Callable, ClassVar

from torch import Tensor, nn

from emorank.losses.functional import (
    LossInputError,
    as_logit_scale,
    check_classes,
    check_embeddings,
    check_labels,
    cosine_logits,
    same_class_mask,
    supcon_direction,
    va_quadrants,
)

__all__ = ["SupConLoss", "BINNINGS"]

# fallback category makers: labels [N, K] float64, split -> classes [N] int64
BINNINGS: dict[str, Callable[[Tensor, float], Tensor]] = {"quadrants": va_quadrants}


class SupConLoss(nn.Module):
    """Cross-modal SupCon: every caption of the anchor's emotion category is a positive.

    Khosla et al. 2020 (Supervised Contrastive Learning), in the cross-modal form of EmotionRankCLAP's
    SupConCLAP baseline. For an audio anchor i the candidates are all N captions; the positives P(i) are the
    captions whose category equals i's (the paired caption always, unknown categories (-1) only pair with
    themselves):

        loss_a2t = -1/N * sum_i 1/|P(i)| * sum_{p in P(i)} log softmax_k(s * cos(a_i, t_k))[p]

    with s = logit_scale (1 / temperature; default 1.0 as in the paper, the reference SupCon uses 1/0.07; the
    reference's extra temperature/base_temperature factor is omitted). |P(i)| is clamped at 1 (it is never 0 here,
    since the paired caption is always positive, but the guard keeps a custom mask from giving NaN).

    Categories: ``classes`` ([N] int64, -1 = unknown) when given and not all unknown. Otherwise, with
    ``bins="quadrants"`` (the default), the valence-arousal labels are binned into four quadrants, split at
    ``split`` on each axis (4.0 = middle of the 1..7 scale; a value equal to the split counts as high): our
    interpretation for corpora without categories. With ``bins=None`` the classes are required.

    Args:
        symmetric: average the audio->text and text->audio directions (default True, like CLIP's SCE; ours).
        bins: fallback binning of the labels when no classes are known: "quadrants" or None (no fallback).
        split: the valence and arousal threshold of the quadrants.

    Inputs:
        audio_emb [N, D], text_emb [N, D], logit_scale scalar; classes [N] int64, or labels [N, 2] (valence,
        arousal) for the fallback.

    Relations:
        With all classes distinct (or unknown) it equals ``SymmetricCrossEntropyLoss`` (symmetric=True).
        ``RankNContrastLoss`` replaces "same category" by a ranking of continuous label distances.

    Example:
        >>> import torch, torch.nn.functional as F
        >>> a, t = F.normalize(torch.randn(8, 16), dim=1), F.normalize(torch.randn(8, 16), dim=1)
        >>> loss = SupConLoss()(a, t, classes=torch.tensor([0, 0, 1, 1, 2, 2, 3, -1]))
    """

    uses: ClassVar[tuple[str, ...]] = ("classes", "labels")

    def __init__(self, symmetric: bool = True, bins: str | None = "quadrants", split: float = 4.0) -> None:
        super().__init__()
        if bins is not None and bins not in BINNINGS:
            raise ValueError(f"{type(self).__name__}: unknown bins {bins!r}; valid: {sorted(BINNINGS)} or None")
        self.symmetric = bool(symmetric)
        self.bins = bins
        self.split = float(split)

    def extra_repr(self) -> str:
        return f"symmetric={self.symmetric}, bins={self.bins!r}, split={self.split}"

    def categories(self, classes: Tensor | None, labels: Tensor | None, n: int, device) -> Tensor:
        """The category ids used for positives: classes, or binned labels when no class is known: [N] int64."""
        name = type(self).__name__
        c = None if classes is None else check_classes(classes, n, name, device)
        if c is not None and bool((c >= 0).any()):
            return c
        if self.bins is None:
            raise LossInputError(f"{name} needs `classes` ([N] int64 category ids, -1 = unknown) but got "
                                 f"{'None' if classes is None else 'only unknown (-1) classes'}; "
                                 "pass bins='quadrants' to bin valence-arousal labels instead")
        if labels is None:
            raise LossInputError(f"{name} needs `classes` ([N] int64 category ids) or, for the bins={self.bins!r} "
                                 "fallback, `labels` ([N, 2] valence, arousal); got neither")
        y = check_labels(labels, n, name, device)  # [N, K]
        if y.shape[1] < 2:
            raise LossInputError(f"{name}: bins={self.bins!r} needs `labels` [N, 2] (valence, arousal), "
                                 f"got {tuple(y.shape)}")
        return BINNINGS[self.bins](y, self.split)

    def forward(
        self,
        audio_emb: Tensor,
        text_emb: Tensor,
        labels: Tensor | None = None,
        logit_scale: Tensor | float | None = None,
        *,
        classes: Tensor | None = None,
        para: Tensor | None = None,
        teacher_logits: Tensor | None = None,
    ) -> Tensor:
        name = type(self).__name__
        n = check_embeddings(audio_emb, text_emb, name)
        positives = same_class_mask(self.categories(classes, labels, n, audio_emb.device))  # [N, N] bool
        logits = cosine_logits(audio_emb, text_emb, as_logit_scale(logit_scale, audio_emb, name))  # [N, N]
        loss = supcon_direction(logits, positives)
        if self.symmetric:
            loss = (loss + supcon_direction(logits.T, positives.T)) / 2
        return loss
