"""CLIP symmetric cross-entropy and its soft-target variants (SmoothCLAP, RA-CLAP stage 2)."""
from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from emorank.losses.functional import (
    LossInputError,
    as_logit_scale,
    check_embeddings,
    check_square,
    cosine_logits,
    cosine_self_similarity,
    cross_entropy_symmetric,
    soft_cross_entropy,
    soft_targets,
    zscore,
)

__all__ = ["SymmetricCrossEntropyLoss", "SmoothCLAPLoss", "RACLAPLoss"]


def _check_fraction(value: float, name: str, owner: str) -> float:
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{owner}: `{name}` must be in [0, 1], got {value}")
    return float(value)


def _check_positive(value: float, name: str, owner: str) -> float:
    if not float(value) > 0.0:
        raise ValueError(f"{owner}: `{name}` must be > 0, got {value}")
    return float(value)


class SymmetricCrossEntropyLoss(nn.Module):
    """CLIP / CLAP symmetric cross-entropy (SCE): each audio must pick its own caption among the batch, and back.

    Radford et al. 2021 (CLIP), Elizalde et al. 2023 (CLAP). logits = logit_scale * A @ T^T on L2-normalised
    embeddings; loss = mean of the row-wise (audio -> text) and column-wise (text -> audio) cross-entropy with the
    pairing as target. Every non-paired caption is an equally wrong negative, whatever its emotion.

    Args:
        none.

    Inputs:
        audio_emb [N, D], text_emb [N, D] (L2-normalised; row i of each is pair i); logit_scale scalar tensor
        (1 / temperature, default 1.0 as in the EmotionRankCLAP paper). labels, classes, para, teacher_logits
        are accepted and ignored.

    Relations:
        The baseline loss of CLAP-SCE, CLAP-template, CLAP4emo and ParaCLAP. ``SmoothCLAPLoss`` and ``RACLAPLoss``
        are subclasses that replace the one-hot targets by soft ones and equal this loss when their hard-target
        weight is 1. ``RankNContrastLoss`` with all labels distinct keeps this loss's diagonal term as one of its
        N terms per anchor.

    Example:
        >>> import torch, torch.nn.functional as F
        >>> a, t = F.normalize(torch.randn(8, 16), dim=1), F.normalize(torch.randn(8, 16), dim=1)
        >>> loss = SymmetricCrossEntropyLoss()(a, t, logit_scale=torch.tensor(14.3))
        >>> loss.shape
        torch.Size([])
    """

    uses: ClassVar[tuple[str, ...]] = ()  # inputs read beyond the embeddings and the logit scale

    def __init__(self) -> None:
        super().__init__()

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
        check_embeddings(audio_emb, text_emb, name)
        logits = cosine_logits(audio_emb, text_emb, as_logit_scale(logit_scale, audio_emb, name))  # [N, N]
        targets = self.target_distributions(audio_emb, text_emb, para=para, teacher_logits=teacher_logits)
        if targets is None:
            return cross_entropy_symmetric(logits)
        a2t, t2a = (x.to(logits.dtype) for x in targets)  # [N, N] each, rows sum to 1
        return (soft_cross_entropy(logits, a2t) + soft_cross_entropy(logits.T, t2a)) / 2

    def target_distributions(
        self, audio_emb: Tensor, text_emb: Tensor, *, para: Tensor | None, teacher_logits: Tensor | None
    ) -> tuple[Tensor, Tensor] | None:
        """Target distributions (audio->text rows, text->audio rows), or None for the one-hot pairing."""
        return None


class SmoothCLAPLoss(SymmetricCrossEntropyLoss):
    """SmoothCLAP: SCE against targets softened by intra-modal and paralinguistic similarity.

    SmoothCLAP (arXiv 2601.12591, ICASSP 2026; no public code, abstract only) mixes the hard pairing with soft
    targets derived from how similar the items of a batch are to each other, so that a caption of a similar
    emotion is less wrong than one of an opposite emotion. Our reading (our interpretation throughout):

        S = (w_audio * cos(A, A) + w_text * cos(T, T) + w_para * cos(z(P), z(P))) / (sum of the weights used)
        targets = lam * I + (1 - lam) * softmax(S / soft_tau)  row-wise, with S detached
        loss = mean of soft CE(logits rows, targets) and soft CE(logits columns, targets of S^T)

    where A, T are the embeddings of the batch, P the paralinguistic feature vectors (e.g. eGeMAPS functionals),
    z-scored per feature within the batch. The paralinguistic term is used only when ``para`` is passed; the
    weights are then renormalised over the sources present.

    Args:
        lam: weight of the hard (identity) targets, in [0, 1]. lam = 1 gives exactly SCE. Default 0.7 (ours).
        audio_weight, text_weight, para_weight: non-negative weights of the three similarity sources (ours:
            equal weights).
        soft_tau: temperature of the softmax over similarities (cosines in [-1, 1]); default 0.1 (ours).

    Inputs:
        audio_emb [N, D], text_emb [N, D], logit_scale scalar; optional para [N, P] float.

    Relations:
        Subclass of ``SymmetricCrossEntropyLoss``; ``RACLAPLoss`` softens the targets with a teacher model instead
        of batch similarities. Unlike ``RankNContrastLoss`` it needs no emotion labels.

    Example:
        >>> import torch, torch.nn.functional as F
        >>> a, t = F.normalize(torch.randn(8, 16), dim=1), F.normalize(torch.randn(8, 16), dim=1)
        >>> loss = SmoothCLAPLoss(lam=0.7)(a, t, para=torch.randn(8, 88))
    """

    uses: ClassVar[tuple[str, ...]] = ("para",)

    def __init__(
        self,
        lam: float = 0.7,
        audio_weight: float = 1.0,
        text_weight: float = 1.0,
        para_weight: float = 1.0,
        soft_tau: float = 0.1,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.lam = _check_fraction(lam, "lam", owner)
        self.soft_tau = _check_positive(soft_tau, "soft_tau", owner)
        weights = {"audio_weight": audio_weight, "text_weight": text_weight, "para_weight": para_weight}
        for key, value in weights.items():
            if not float(value) >= 0.0:
                raise ValueError(f"{owner}: `{key}` must be >= 0, got {value}")
        if audio_weight + text_weight == 0.0 and para_weight == 0.0:
            raise ValueError(f"{owner}: at least one similarity weight must be > 0")
        self.audio_weight = float(audio_weight)
        self.text_weight = float(text_weight)
        self.para_weight = float(para_weight)

    def extra_repr(self) -> str:
        return (
            f"lam={self.lam}, audio_weight={self.audio_weight}, text_weight={self.text_weight}, "
            f"para_weight={self.para_weight}, soft_tau={self.soft_tau}"
        )

    def batch_similarity(self, audio_emb: Tensor, text_emb: Tensor, para: Tensor | None) -> Tensor:
        """The detached similarity mix S: [N, N]."""
        n, name = audio_emb.shape[0], type(self).__name__
        with torch.no_grad():
            parts = [(self.audio_weight, cosine_self_similarity(audio_emb)),
                     (self.text_weight, cosine_self_similarity(text_emb))]  # [N, N] each
            if para is not None:
                p = torch.as_tensor(para, device=audio_emb.device)
                if p.dim() != 2 or p.shape[0] != n or not p.is_floating_point():
                    raise LossInputError(f"{name}: `para` must be a float tensor [N={n}, P], got {tuple(p.shape)}")
                if not torch.isfinite(p).all():
                    raise LossInputError(f"{name}: `para` contains non-finite values")
                parts.append((self.para_weight, cosine_self_similarity(zscore(p.to(audio_emb.dtype)))))
            total = sum(w for w, _ in parts)
            if total == 0.0:
                raise LossInputError(f"{name}: only `para_weight` is > 0 but `para` was not given")
            return sum(w * s for w, s in parts) / total

    def target_distributions(
        self, audio_emb: Tensor, text_emb: Tensor, *, para: Tensor | None, teacher_logits: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        sim = self.batch_similarity(audio_emb, text_emb, para)  # [N, N]
        return soft_targets(sim, self.lam, self.soft_tau), soft_targets(sim.T, self.lam, self.soft_tau)


class RACLAPLoss(SymmetricCrossEntropyLoss):
    """RA-CLAP stage 2: SCE against targets mixed from the pairing and a teacher's audio-text distribution.

    RA-CLAP / ESS-CLAP (no public code, abstract only): stage 1 trains a CLAP model with InfoNCE (= SCE); stage 2
    self-distils, using the stage-1 model's audio-text similarities as soft targets so that partial matches
    (captions that fit a clip in part) are not pushed away as hard negatives:

        targets_a2t = alpha * I + (1 - alpha) * softmax(teacher_logits / teacher_temperature)  row-wise
        targets_t2a = alpha * I + (1 - alpha) * softmax(teacher_logits^T / teacher_temperature)  row-wise
        loss = mean of soft CE(logits rows, targets_a2t) and soft CE(logits columns, targets_t2a)

    The teacher (frozen stage-1 model or an EMA of the student) is the training loop's choice; the teacher logits
    are detached here. The mixing weight and teacher temperature are our interpretation.

    Args:
        alpha: weight of the hard (identity) targets, in [0, 1]; alpha = 1 gives exactly SCE. Default 0.5 (ours).
        teacher_temperature: divides the teacher logits before the softmax; default 1.0 (ours: the logits are
            already scaled by the teacher's own logit scale).

    Inputs:
        audio_emb [N, D], text_emb [N, D], logit_scale scalar, teacher_logits [N, N] (required: the teacher's
        scaled audio x text similarities for the same batch, rows = audio).

    Relations:
        Subclass of ``SymmetricCrossEntropyLoss``; ``SmoothCLAPLoss`` softens targets from batch similarities
        instead of a teacher.

    Example:
        >>> import torch, torch.nn.functional as F
        >>> a, t = F.normalize(torch.randn(8, 16), dim=1), F.normalize(torch.randn(8, 16), dim=1)
        >>> teacher = 10 * a @ t.T
        >>> loss = RACLAPLoss(alpha=0.5)(a, t, teacher_logits=teacher)
    """

    uses: ClassVar[tuple[str, ...]] = ("teacher_logits",)

    def __init__(self, alpha: float = 0.5, teacher_temperature: float = 1.0) -> None:
        super().__init__()
        owner = type(self).__name__
        self.alpha = _check_fraction(alpha, "alpha", owner)
        self.teacher_temperature = _check_positive(teacher_temperature, "teacher_temperature", owner)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, teacher_temperature={self.teacher_temperature}"

    def target_distributions(
        self, audio_emb: Tensor, text_emb: Tensor, *, para: Tensor | None, teacher_logits: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        hint = "[N, N] audio x text logits of the teacher model for this batch"
        teacher = check_square(teacher_logits, audio_emb.shape[0], "teacher_logits", type(self).__name__, hint)
        teacher = teacher.detach().to(device=audio_emb.device)  # [N, N]
        tau = self.teacher_temperature
        return soft_targets(teacher, self.alpha, tau), soft_targets(teacher.T, self.alpha, tau)
