"""Captions: the speaking-style text paired with each clip (layer 1; may import :mod:`emorank.data` only).

:mod:`~emorank.captions.va` writes valence-arousal captions ("The person is speaking in a ... voice", 13 ordered
levels per axis, optional LLM backend with the paper's Figure 2 prompt); :mod:`~emorank.captions.emotion` the
category captions of CLAP-template and the lexicon captions of CLAP4emo; :mod:`~emorank.captions.acoustic` the
ParaCLAP-style captions from measured pitch, loudness and rate (Parselmouth).
"""
from __future__ import annotations

from emorank.captions.va import CaptionValueError, VACaptionBuilder, va_caption

__all__ = [
    "CaptionValueError",
    "VACaptionBuilder",
    "va_caption",
]
