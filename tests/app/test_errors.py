"""Messages visitors read: the library's own reason for a refused upload (rate, truncation, NaN), never a server
path or the file's contents."""
import struct

import numpy as np
import pytest

import gradio as gr

from emorank.app.bounds import DEMO_TEST
from emorank.app.build import plan_demo
from emorank.app.handlers import Handlers
from emorank.app.jobs import TrainingJobs
from emorank.app.workspace import Workspace


def wav_bytes(sr: int, samples: np.ndarray, float_samples: bool = False, data_size: int | None = None) -> bytes:
    """A mono RIFF/WAVE file; `data_size` overrides what its data chunk's header claims."""
    data, bits = samples.tobytes(), samples.dtype.itemsize * 8
    block = bits // 8
    fmt = struct.pack("<HHIIHH", 3 if float_samples else 1, 1, sr, sr * block, block, bits)
    return (b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data"
            + struct.pack("<I", len(data) if data_size is None else data_size) + data)


TONE = (3000 * np.sin(np.arange(16000) / 5.0)).astype("<i2")  # 1 s at 16 kHz
NAN = np.sin(np.arange(16000) / 5.0).astype("<f4")
NAN[100:110] = np.nan
FULL = wav_bytes(16000, TONE)
UPLOADS = {  # file: (bytes, what the visitor must read)
    "rate-1000003.wav": (wav_bytes(1_000_003, TONE), "sample rate 1000003 Hz is outside the supported range"),
    "rate-4.wav": (wav_bytes(4, TONE[:40]), "sample rate 4 Hz is outside the supported range 4000..192000 Hz"),
    "rate-192001.wav": (wav_bytes(192_001, TONE), "sample rate 192001 Hz is outside the supported range"),
    "huge.wav": (wav_bytes(16000, TONE, data_size=0xFFFFFFF0), "truncated: header declares"),
    "cut.wav": (FULL[:len(FULL) // 2], "truncated: header declares 16000 frames"),
    "nan.wav": (wav_bytes(16000, NAN, float_samples=True), "contains 10 non-finite sample(s) (NaN or inf)"),
    "text.wav": (b"hello, this is not audio at all " * 20, "not a readable audio file ("),
}


@pytest.fixture(scope="module")
def h(tmp_path_factory):
    """Handlers over a workspace with nothing built: an upload is refused before any model or index is needed."""
    ws = Workspace(plan_demo(tmp_path_factory.mktemp("errors") / "data", checkpoint_dirs=[]), allow_local_paths=True)
    return Handlers(ws, TrainingJobs(on_checkpoint=ws.add_checkpoint, cache_path=ws.assets.cache_path))


@pytest.mark.parametrize("name", list(UPLOADS))
def test_a_refused_upload_says_why(h, tmp_path, name):
    body, reason = UPLOADS[name]
    path = tmp_path / name
    path.write_bytes(body)
    for call in (lambda: h.analyse(str(path), "emotionrankclap", DEMO_TEST),
                 lambda: h.api_analyse(str(path), "emotionrankclap", DEMO_TEST, 3)):
        with pytest.raises(gr.Error) as err:
            call()
        message = err.value.message
        assert message.startswith(f"{name}: ") and reason in message, message
        assert "upload" in message or "convert" in message  # what to do about it
        assert str(tmp_path) not in message and "/" not in message.replace("..", "") and "hello" not in message
