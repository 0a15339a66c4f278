"""Encoders: frozen audio and text encoders, one module per kind, and the feature cache (layer 1; may import
:mod:`emorank.data` only).

:mod:`~emorank.encoders.base` defines the interfaces every encoder follows; :mod:`~emorank.encoders.opensmile`
(eGeMAPS, ComParE), :mod:`~emorank.encoders.hf_audio`, :mod:`~emorank.encoders.odyssey` (the paper's WavLM SER
model) and :mod:`~emorank.encoders.text` (MiniLM, DistilRoBERTa-emotion, any Hugging Face text model) implement it,
:mod:`~emorank.encoders.hub` pins Hugging Face models, and :mod:`~emorank.encoders.registry` maps names to classes.
:mod:`~emorank.encoders.cache` stores features once per file content and encoder fingerprint (SQLite).
"""
from __future__ import annotations

from emorank.encoders.base import (AudioEncoder, EncoderInputError, EncoderUnavailableError,
                                   RemoteCodeNotTrustedError, TextEncoder)
from emorank.encoders.registry import AUDIO_ENCODERS, TEXT_ENCODERS, build_audio_encoder, build_text_encoder

__all__ = [
    "AUDIO_ENCODERS",
    "AudioEncoder",
    "EncoderInputError",
    "EncoderUnavailableError",
    "RemoteCodeNotTrustedError",
    "TEXT_ENCODERS",
    "TextEncoder",
    "build_audio_encoder",
    "build_text_encoder",
]
