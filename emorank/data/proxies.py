"""Valence-arousal proxies for categorical labels.

Categorical corpora have no dimensional ratings: a category's V-A point is the NRC VAD Lexicon norm of the
category word (Mohammad, ACL 2018) mapped to 1..7 with ``1 + 6x``, moved towards neutral (:data:`NEUTRAL_VA`, the
scale's centre) by an intensity factor (:data:`INTENSITY_FACTORS`). Where a corpus gives per-emotion votes or
scores (CREMA-D's crowd ratings), a clip sits at the vote-weighted mean of the category points
(:func:`soft_category_va`).
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Mapping, Sequence

import numpy as np

from emorank.data.manifest import LABEL_MAX, LABEL_MIN, ManifestError, normalise_emotion

# NRC VAD Lexicon v1 (Mohammad, ACL 2018; free for research and non-commercial use), noun forms, on 0..1.
_NRC_VAD = {
    "neutral": (0.469, 0.184, 0.357), "calm": (0.875, 0.100, 0.282), "happy": (0.960, 0.732, 0.850),
    "sad": (0.052, 0.288, 0.164), "angry": (0.167, 0.865, 0.657), "fear": (0.073, 0.840, 0.293),
    "disgust": (0.052, 0.775, 0.317), "surprise": (0.875, 0.875, 0.562), "boredom": (0.167, 0.139, 0.255),
}
# Our interpretation for categories without a norm at hand, derived from neighbouring norms (0..1 scale):
_DERIVED_VAD = {
    # contempt: placed near disgust (not looked up): disgust's valence, arousal a little lower, dominance higher
    # (contempt is a "looking down on" emotion).
    "contempt": (0.052, 0.675, 0.550),
    # frustration: midway between anger and sadness (negative, moderately aroused).
    "frustration": tuple(round((a + s) / 2, 4) for a, s in zip(_NRC_VAD["angry"], _NRC_VAD["sad"])),
    # excited: happiness with arousal raised halfway to the top of the scale.
    "excited": (0.960, round((0.732 + 1.0) / 2, 4), 0.850),
}
NEUTRAL_VA: tuple[float, float, float] = (4.0, 4.0, 4.0)
"""Where a neutral utterance sits on 1..7: the centre of the scale, for valence, arousal and dominance.

Our interpretation. The NRC word "neutral" has arousal .184 (2.10 on 1..7), below "sadness" (.288) and near
"calm" (.100): it rates the *word*, and a neutral utterance is ordinary speech, not a calm one. In the circumplex
neutral is the origin that every category moves away from, so it sits at the scale's midpoint; calm, boredom and
sadness then lie below it in arousal, as they should. Every proxy takes a ``neutral=`` override."""

CATEGORY_VA: Mapping[str, tuple[float, float, float]] = MappingProxyType({
    **{name: tuple(round(1.0 + 6.0 * x, 4) for x in vad) for name, vad in {**_NRC_VAD, **_DERIVED_VAD}.items()},
    "neutral": NEUTRAL_VA,
})
"""Read-only: category name -> (valence, arousal, dominance) on 1..7. A proxy for categorical corpora.

NRC VAD norms ``1 + 6x`` for calm, happy, sad, angry, fear, disgust, surprise, boredom; contempt, frustration and
excited are derived from neighbouring norms (our interpretation, see ``_DERIVED_VAD``); neutral is
:data:`NEUTRAL_VA` (the scale's centre, our interpretation). ``other`` has no coordinates and is absent."""

INTENSITY_FACTORS: Mapping[str, float] = MappingProxyType({"low": 0.5, "normal": 0.75, "strong": 1.0})
"""How far an acted category sits from neutral (1.0 = the full norm). Our interpretation: a normal-intensity
rendition lies three quarters of the way from neutral to the category norm, a strong one at the norm, a low one
half way."""

def _neutral_point(neutral: Sequence[float] | None) -> np.ndarray:
    point = np.asarray(NEUTRAL_VA if neutral is None else neutral, dtype=np.float64).reshape(-1)  # [3]
    if point.shape != (3,) or not np.all((point >= LABEL_MIN) & (point <= LABEL_MAX)):
        raise ManifestError(f"neutral point must be (valence, arousal, dominance) within 1..7, got {neutral!r}")
    return point


def _norm(emotion: str, neutral: np.ndarray) -> np.ndarray:
    key = normalise_emotion(emotion)
    if key not in CATEGORY_VA:
        raise ManifestError(f"no valence-arousal norm for emotion {emotion!r}; known: {', '.join(CATEGORY_VA)}")
    return neutral if key == "neutral" else np.array(CATEGORY_VA[key])


def category_va(emotion: str, intensity: float = 1.0, *,
                neutral: Sequence[float] | None = None) -> tuple[float, float, float]:
    """(valence, arousal, dominance) proxy on 1..7: neutral + intensity * (norm(emotion) - neutral).

    ``intensity`` 1.0 gives the category norm itself, 0.0 gives neutral; see :data:`INTENSITY_FACTORS`.
    ``neutral`` defaults to :data:`NEUTRAL_VA`.
    """
    n = _neutral_point(neutral)
    v, a, d = n + float(intensity) * (_norm(emotion, n) - n)
    return float(v), float(a), float(d)


def soft_category_va(scores: Mapping[str, float], intensity: float | Mapping[str, float] = 1.0, *,
                     neutral: Sequence[float] | None = None) -> tuple[float, float, float]:
    """Vote-weighted proxy: neutral + sum_k w_k * f_k * (norm(k) - neutral), with w_k = s_k / sum(s).

    ``scores`` maps emotion names to vote counts or probabilities (non-negative). The point is the weighted mean
    of the category points :func:`category_va` (k, f_k): unanimous votes give that category's point, votes split
    between two categories land on the segment between them, neutral votes pull towards neutral. ``intensity``
    is one factor for every category or one per category (missing ones count 1.0). Emotions without a norm
    (e.g. ``other``) are left out and the rest re-weighted; our interpretation.
    """
    n = _neutral_point(neutral)
    point, total = np.zeros(3), 0.0  # [3]
    for emotion, score in scores.items():
        score = float(score)
        if not np.isfinite(score) or score < 0:
            raise ManifestError(f"emotion score for {emotion!r} must be a non-negative number, got {score!r}")
        if score == 0 or normalise_emotion(emotion) not in CATEGORY_VA:
            continue
        f = float(intensity.get(emotion, 1.0) if isinstance(intensity, Mapping) else intensity)
        point += score * f * (_norm(emotion, n) - n)
        total += score
    if total == 0:
        raise ManifestError(f"no votes for any emotion with a norm in {dict(scores)!r}")
    v, a, d = n + point / total
    return float(v), float(a), float(d)


def _intensity(factors: Mapping[str, float] | None, level: str) -> float:
    table = {**INTENSITY_FACTORS, **(factors or {})}
    if level not in table:
        raise ManifestError(f"unknown intensity level {level!r}; valid: {', '.join(table)}")
    return float(table[level])
