"""Render the example voices of the app's Analyse tab (synthetic: eSpeak NG through emorank.corpus).

    python assets/voices/make_voices.py          # rewrites assets/voices/synthetic-*.wav

Each clip is one sentence rendered for a target (valence, arousal) with the demo corpus's own prosody mapping and
post-processing (emorank.data.synthetic_plan.map_prosody, emorank.data.synthetic.post_process), a speaker with no
habitual offsets, and a fixed seed
per clip, so the same eSpeak NG build gives the same files. 16 kHz mono PCM16.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from emorank.data.audio import TARGET_SR
from emorank.data.synthetic_plan import ProsodyMapping, SpeakerStyle, map_prosody
from emorank.data.synthetic import post_process, to_pcm16
from emorank.data.espeak import Espeak

HERE = Path(__file__).resolve().parent
PLAIN = SpeakerStyle(rate_log=0.0, pitch=0.0, range=0.0, peak_db=0.0, tilt=0.0, breath=0.0, expressiveness=1.0)
# name: (valence, arousal, eSpeak voice, sentence), named by what each clip was rendered as.
VOICES = {
    "synthetic-angry-fast": (1.5, 6.5, "en-us+m3", "They changed the time again."),
    "synthetic-sad-slow": (2.0, 1.5, "en+f2", "She sent the letter."),
    "synthetic-neutral": (4.0, 4.0, "en-us+m1", "The keys are in the drawer."),
    "synthetic-happy-lively": (6.5, 6.0, "en-us+f1", "The green door is open."),
    "synthetic-calm-content": (6.5, 1.5, "en-gb-x-rp+m4", "The lamp is on."),
}


def render_voices(out_dir: Path = HERE, seed: int = 0) -> dict[str, float]:
    """Write every clip of VOICES to out_dir; returns {file name: seconds}."""
    engine, mapping, seconds = Espeak(), ProsodyMapping(), {}
    for k, (name, (valence, arousal, voice, sentence)) in enumerate(VOICES.items()):
        speech, effects = map_prosody(valence, arousal, voice, PLAIN, np.random.default_rng([seed, k]), mapping)
        raw, = engine.synthesize_many([(sentence, speech)])  # int16 [T0]
        samples = to_pcm16(post_process(raw, engine.sample_rate, effects, TARGET_SR))  # [T] at 16 kHz
        sf.write(out_dir / f"{name}.wav", samples, TARGET_SR, subtype="PCM_16", format="WAV")
        seconds[f"{name}.wav"] = samples.size / TARGET_SR
    return seconds


if __name__ == "__main__":
    for file, s in render_voices(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE).items():
        print(f"{file}: {s:.2f} s")
