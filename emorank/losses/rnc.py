"""Cross-modal Rank-N-Contrast, the EmotionRankCLAP objective (paper section 3.2, eq. 3-4)."""
from __future__ import annotations

import math
from typing import ClassVar

from torch import Tensor, nn

from emorank.losses.functional import (
    DISTANCES,
    as_logit_scale,
    check_embeddings,
    check_labels,
    cosine_logits,
    cross_entropy_symmetric,
    label_distance,
    label_tie_tolerance,
    rank_n_contrast_terms,
)

__all__ = ["RankNContrastLoss", "RankNContrastSCELoss"]


class RankNContrastLoss(nn.Module):
    """Cross-modal Rank-N-Contrast (RNC-CM): captions are ranked by how far their emotion is from the anchor's.

    EmotionRankCLAP (Suresh Chandra et al. 2025, section 3.2), after Rank-N-Contrast (Zha et al., NeurIPS 2023).
    For an audio anchor i every text j of the batch is a positive in turn; its negatives are the texts whose
    (valence, arousal) labels are at least as far from the anchor's as j's are:

        S_ij = {k : d(y_i, y_k) >= d(y_i, y_j)}
        P(t_j | a_i, S_ij) = exp(s * cos(a_i, t_j)) / sum_{k in S_ij} exp(s * cos(a_i, t_k))      (eq. 3)
        loss = 1/N^2 * sum_i sum_j -log P(t_j | a_i, S_ij)                                        (eq. 4)

    with s = logit_scale = 1 / temperature and d the L2 distance in the valence-arousal plane. Minimising it
    orders each anchor's similarities like its label distances, and the j = i term (the paired caption, at
    distance 0, whose S_ii is the whole batch) is the usual InfoNCE term, which pulls the two modalities together.

    Why ">=" and not the paper's ">": with a strict inequality j is not in its own denominator, so "P" is not a
    probability (it can exceed 1 and the loss can go negative without bound), and for the farthest caption S_ij
    is empty (log of 0). With ">=" (j included, tied captions included, the paired caption included) every term
    is a true log-probability, which is what the paper's description of normalised likelihoods requires and
    what the released Rank-N-Contrast code computes. Two distances within a tolerance of each other are ties
    (our interpretation: consensus ratings are means of integer votes, k/5 or k/6, and distances that are equal
    in exact arithmetic differ in the last bits of the labels' float type; identical label vectors always tie).
    The tolerance follows the labels' own precision, dtype and magnitude (``label_tie_tolerance``): k/5 labels
    given as float32 (torch's default) tie as they do in float64, and float64 labels keep apart distances that
    differ by 4.5e-11 (means of up to 15 ratings on 1..7). Pass labels in float64 to resolve such differences.

    Cost: O(N^2 log N) time and O(N^2) memory, exact values and gradients (sort each row by label distance, a
    running log-sum-exp, each caption reads the end of its tie group: see ``rank_n_contrast_terms``); the
    released formulation is O(N^3) in both.

    Args:
        distance: label distance, "l2" (paper) or "l1" (sum of absolute differences, the released RNC's choice).
        symmetric: if True, also use every text as an anchor against the audio clips and average the two
            directions (our extension; the paper uses audio anchors only). Default False.
        tie_tol: label distances within this much (absolute, label units) are ties. None (default): from the
            labels' precision, see ``label_tie_tolerance`` (for labels on 1..7: 7.5e-14 in float64, 1.3e-5 in
            float32, 0.11 in float16). 0 = exact equality.

    Inputs:
        audio_emb [N, D], text_emb [N, D] (L2-normalised, row i = pair i); labels [N, 2] float (valence, arousal;
        any [N, K] label vectors work, [N] is treated as [N, 1]); logit_scale scalar tensor (default 1.0, the
        paper's initial temperature).

    Relations:
        When all labels are equal every S_ij is the whole batch and the loss is the mean over all (i, j) of the
        softmax cross-entropy of caption j, a label-free smoothing. ``SupConLoss`` uses categorical positives
        instead of a ranking; ``SymmetricCrossEntropyLoss`` keeps only the j = i term and symmetrises.

    Example:
        >>> import torch, torch.nn.functional as F
        >>> a, t = F.normalize(torch.randn(8, 16), dim=1), F.normalize(torch.randn(8, 16), dim=1)
        >>> va = 1 + 6 * torch.rand(8, 2)
        >>> loss = RankNContrastLoss()(a, t, labels=va, logit_scale=torch.tensor(1.0))
        >>> bool(loss > 0)
        True
    """

    uses: ClassVar[tuple[str, ...]] = ("labels",)

    def __init__(self, distance: str = "l2", symmetric: bool = False, tie_tol: float | None = None) -> None:
        super().__init__()
        if distance not in DISTANCES:
            raise ValueError(f"{type(self).__name__}: unknown distance {distance!r}; valid: {sorted(DISTANCES)}")
        if tie_tol is not None and (isinstance(tie_tol, bool) or not (tie_tol >= 0 and math.isfinite(tie_tol))):
            raise ValueError(f"{type(self).__name__}: tie_tol must be None (from the labels' precision) or a "
                             f"finite number >= 0, got {tie_tol!r}")
        self.distance = distance
        self.symmetric = bool(symmetric)
        self.tie_tol = None if tie_tol is None else float(tie_tol)

    def extra_repr(self) -> str:
        tol = "from the labels" if self.tie_tol is None else f"{self.tie_tol:g}"
        return f"distance={self.distance!r}, symmetric={self.symmetric}, tie_tol={tol}"

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
        y = check_labels(labels, n, name, audio_emb.device)  # [N, K] float64
        tol = label_tie_tolerance(labels, y) if self.tie_tol is None else self.tie_tol
        logits = cosine_logits(audio_emb, text_emb, as_logit_scale(logit_scale, audio_emb, name))  # [N, N]
        distance = label_distance(y, y, self.distance)  # [N, N]; d(anchor i, caption k)
        loss = rank_n_contrast_terms(logits, distance, tol).mean()
        if self.symmetric:
            loss = (loss + rank_n_contrast_terms(logits.T, distance.T, tol).mean()) / 2
        return loss


class RankNContrastSCELoss(RankNContrastLoss):
    """Cross-modal Rank-N-Contrast plus a weighted CLIP term: ``rnc + sce_weight * sce`` (our recipe).

    Rank-N-Contrast orders every caption of the batch by its label distance from the anchor, but it barely
    separates the paired caption from others at the same label point; the symmetric cross-entropy (CLIP) term
    is exactly that pairing pressure. The mixture keeps the ordinal structure and recovers retrieval of the
    right caption. Not in any paper: the ``emotionrankclap-plus`` system uses it.

    Args:
        sce_weight: weight of the symmetric cross-entropy term (0 = plain ``RankNContrastLoss``). Default 0.5.
        distance, symmetric, tie_tol: as in :class:`RankNContrastLoss`.

    Relations:
        ``sce_weight=0`` equals :class:`RankNContrastLoss`; the extra term equals
        :class:`~emorank.losses.clip.SymmetricCrossEntropyLoss` on the same logits.
    """

    def __init__(self, sce_weight: float = 0.5, distance: str = "l2", symmetric: bool = False,
                 tie_tol: float | None = None) -> None:
        super().__init__(distance=distance, symmetric=symmetric, tie_tol=tie_tol)
        if not (sce_weight >= 0 and math.isfinite(sce_weight)):
            raise ValueError(f"{type(self).__name__}: sce_weight must be a finite number >= 0, got {sce_weight!r}")
        self.sce_weight = float(sce_weight)

    def extra_repr(self) -> str:
        return f"sce_weight={self.sce_weight:g}, " + super().extra_repr()

    def forward(self, audio_emb: Tensor, text_emb: Tensor, labels: Tensor | None = None,
                logit_scale: Tensor | float | None = None, **unused) -> Tensor:
        rnc = super().forward(audio_emb, text_emb, labels, logit_scale)
        if self.sce_weight == 0.0:
            return rnc
        scale = as_logit_scale(logit_scale, audio_emb, type(self).__name__)
        return rnc + self.sce_weight * cross_entropy_symmetric(cosine_logits(audio_emb, text_emb, scale))
