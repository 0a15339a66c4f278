"""The SYNTHETIC demo corpus: emotional-ish speech rendered by eSpeak NG, with noisy valence/arousal labels.

THIS CORPUS IS SYNTHETIC. It is not recorded human emotional speech and says nothing about how any system performs
on real data. It exists so that the library, the app, the tests and the benchmarks run anywhere, offline, in
seconds, with data whose structure resembles a dimensional speech-emotion corpus (MSP-Podcast-like columns,
speakers disjoint between splits, labels on the 1..7 scale). Real corpora plug in through :mod:`emorank.datasets`.

How a clip is made (every choice below is *our interpretation*; all numbers live in :class:`DemoCorpusConfig` and
:class:`ProsodyMapping`):

1. **Category and target.** A category is drawn (neutral, calm, happy, sad, angry, fear, disgust, surprise,
   boredom) with its valence-arousal prototype from the NRC VAD lexicon noun norms (REFERENCE.md section 7,
   mapped to 1..7 as ``1 + 6x``). An intensity ``s ~ U(0.5, 1)`` moves the point away from the *neutral* prototype
   (``neutral + s * (prototype - neutral)``; neutral itself has no intensity), then an isotropic spread
   (sd 0.45) makes the target continuous. Targets are clipped to [1, 7].
2. **Rendering follows the target.** Speaking rate, pitch level, pitch range, pauses between words and the voice
   (the speaker's eSpeak variant and accent) are set in eSpeak; loudness (peak level), spectral tilt (first-order
   filter), harshness (soft saturation), tremolo and breathiness (envelope-shaped high-passed noise) are applied
   in numpy/scipy. Each cue is a function of the target (valence, arousal) scaled by the speaker's
   expressiveness, plus a per-speaker offset and per-clip jitter. Arousal drives more cues, and more strongly,
   than valence, as in real speech.
3. **Written labels are the target plus rater noise** (sd 0.6, clipped to [1, 7]), so labels are noisy functions
   of the audio, as with averaged human ratings. Dominance is not rendered and is left empty (unknown).
4. **Text is emotionally neutral** and drawn independently of the label, so the words never give it away.

Splits are speaker-disjoint (12 speakers: 8 train, 2 dev, 2 test, one man and one woman in each held-out split);
clips go to splits in a fixed 70/15/15 proportion. The build is deterministic: the same ``seed`` gives
byte-identical audio and tables whatever the number of workers (clips are synthesised in fixed groups of
consecutive indices, each group from eSpeak's pristine state, see :mod:`emorank.espeak`, and every random draw
comes from a per-clip seed), and a corpus of ``n`` clips is the first ``n`` clips of any larger one with the same
seed.

Output folder::

    DIR/audio/<speaker>_<index>.wav   16 kHz mono PCM_16
    DIR/manifest.csv                  path,valence,arousal,dominance,emotion,speaker,gender,split,caption
    DIR/render.csv                    per-clip targets and rendering parameters (for analysis and debugging)
    DIR/corpus.json                   generation parameters; "synthetic": true
"""
from __future__ import annotations

import csv
import functools
import json
import math
import multiprocessing
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import soundfile as sf
from scipy.signal import butter, firwin, resample_poly, sosfilt

from emorank.audio import TARGET_SR
from emorank.espeak import Espeak, EspeakError, SpeechParams

CORPUS_VERSION = "1"
SPLITS = ("train", "dev", "test")
MANIFEST_COLUMNS = ("path", "valence", "arousal", "dominance", "emotion", "speaker", "gender", "split", "caption")
SYNTHETIC_NOTICE = ("SYNTHETIC corpus: speech rendered by eSpeak NG with prosody set from sampled valence/arousal "
                    "targets; labels are the targets plus simulated rater noise. Not real emotional speech; for "
                    "demos, tests and benchmarks of the software only.")

# NRC VAD Lexicon v1 (Mohammad, ACL 2018) noun norms on 0..1 (valence, arousal); REFERENCE.md section 7.
NRC_VA = {
    "neutral": (0.469, 0.184), "calm": (0.875, 0.100), "happy": (0.960, 0.732), "sad": (0.052, 0.288),
    "angry": (0.167, 0.865), "fear": (0.073, 0.840), "disgust": (0.052, 0.775), "surprise": (0.875, 0.875),
    "boredom": (0.167, 0.139),
}
NRC_WORD = {"happy": "happiness", "sad": "sadness", "angry": "anger"}  # the lexicon entry used for these labels

NEUTRAL_SENTENCES = (
    "The meeting is on Tuesday in the second room.",
    "Please put the folder on the table by the door.",
    "The train leaves the station at ten past nine.",
    "I will check the schedule and call you back later.",
    "The report has four sections and a short summary.",
    "We moved the chairs to the other side of the hall.",
    "The library opens at eight on weekdays.",
    "She parked the car next to the blue building.",
    "The package arrived this morning with the other mail.",
    "He wrote the numbers down on a piece of paper.",
    "The window in the kitchen faces the street.",
    "They are painting the fence on Saturday.",
    "The bus stops at the corner near the bank.",
    "Turn left at the second light and go straight on.",
    "The file is saved in the folder on the desktop.",
    "The shop sells bread, milk and coffee.",
    "We need two more boxes for the books.",
    "The lamp is on the shelf above the radio.",
    "It usually takes twenty minutes to walk there.",
    "The keys are in the drawer under the phone.",
    "The river runs past the old mill and the bridge.",
    "I read the instructions before I started.",
    "The class starts after lunch in the east wing.",
    "He put the cups back in the cupboard.",
    "The form asks for your name and address.",
    "The plane lands at the airport in the afternoon.",
    "The clock in the hall is ten minutes fast.",
    "She sent the letter on Monday.",
    "There is a map of the city on the wall.",
    "The printer is next to the copy machine.",
    "We talked about the plan for next week.",
    "The green door leads to the garden.",
    "Most of the boxes are stacked in the garage.",
    "The store closes at six in the evening.",
    "He is going to the market on Thursday.",
    "The chairs are made of wood and metal.",
    "I will be at the office until five.",
    "The road goes north along the coast.",
    "The notes from the meeting are on the table.",
    "They changed the time of the appointment.",
)


class CorpusError(ValueError):
    """Bad arguments to the demo-corpus builder."""


class CorpusExistsError(CorpusError):
    """The output folder exists and is not empty (and may not be overwritten)."""


@dataclass(frozen=True)
class Speaker:
    """One synthetic speaker: an eSpeak ``language+variant`` voice."""

    id: str
    voice: str
    gender: str


SPEAKERS = (
    Speaker("us_m1", "en-us+m1", "male"), Speaker("gb_m2", "en+m2", "male"), Speaker("us_m3", "en-us+m3", "male"),
    Speaker("rp_m4", "en-gb-x-rp+m4", "male"), Speaker("us_m5", "en-us+m5", "male"),
    Speaker("gb_m6", "en+m6", "male"), Speaker("ny_m7", "en-us-nyc+m7", "male"),
    Speaker("us_f1", "en-us+f1", "female"), Speaker("gb_f2", "en+f2", "female"),
    Speaker("us_f3", "en-us+f3", "female"), Speaker("sc_f4", "en-gb-scotland+f4", "female"),
    Speaker("us_f5", "en-us+f5", "female"),
)


@dataclass
class ProsodyMapping:
    """How targets become acoustics. With ``a = (arousal - 4) / 3`` and ``v = (valence - 4) / 3`` in [-1, 1]
    (scaled by the speaker's expressiveness), each cue = base + coefficients x (a, v) + speaker offset + jitter.
    Arousal drives rate, pitch, range, pauses, loudness, tilt, breathiness and tremolo rate; valence drives pitch
    range, a little pitch and tilt, tremolo depth (negative valence), harshness (negative valence at high arousal)
    and breathiness. Our interpretation of the usual findings on vocal emotion; every number is a parameter."""

    rate_wpm: float = 165.0
    rate_per_a: float = 0.22          # log-rate per unit a
    rate_per_v: float = 0.03
    rate_jitter: float = 0.07         # sd of per-clip log-rate jitter
    pitch: float = 50.0               # eSpeak pitch 0..100
    pitch_per_a: float = 16.0
    pitch_per_v: float = 3.0
    pitch_jitter: float = 5.0
    range: float = 50.0               # eSpeak pitch range 0..100
    range_per_a: float = 20.0
    range_per_v: float = 10.0
    range_jitter: float = 9.0
    gap_per_low_a: float = 3.0        # extra word gap (x 10 ms) per unit of low arousal
    gap_jitter: float = 1.0
    peak_dbfs: float = -9.0           # peak level of the clip
    peak_per_a: float = 5.0
    peak_jitter: float = 2.0
    tilt_per_a: float = 0.40          # first-order tilt coefficient (+ = brighter)
    tilt_per_v: float = 0.05
    tilt_jitter: float = 0.08
    tremolo_per_neg_v: float = 0.12   # amplitude-modulation depth per unit of negative valence
    tremolo_jitter: float = 0.02
    tremolo_hz: float = 5.5
    tremolo_hz_per_a: float = 1.5
    breath: float = 0.03              # breath-noise level relative to the speech envelope
    breath_per_low_a: float = 0.10
    breath_per_neg_v: float = 0.03
    breath_jitter: float = 0.01
    harsh_per_av: float = 2.0         # saturation drive per unit of (high arousal x negative valence)
    harsh_jitter: float = 0.1
    floor_dbfs: float = -64.0         # room-tone RMS level


@dataclass
class SpeakerSpread:
    """Standard deviations of the per-speaker offsets (drawn once per speaker and seed)."""

    rate_log: float = 0.07
    pitch: float = 6.0
    range: float = 7.0
    peak_db: float = 1.5
    tilt: float = 0.10
    breath: float = 0.01
    expressiveness: tuple[float, float] = (0.6, 1.25)  # uniform range of the factor applied to (a, v)


@dataclass
class DemoCorpusConfig:
    """Sampling, labelling and splitting of the demo corpus (our interpretation throughout)."""

    categories: tuple[str, ...] = tuple(NRC_VA)
    category_weights: tuple[float, ...] | None = None   # None = uniform
    intensity: tuple[float, float] = (0.5, 1.0)         # U(lo, hi) scale of the offset from the neutral prototype
    target_spread: float = 0.45                         # sd of the continuous target around the scaled prototype
    rater_sd: float = 0.6                               # sd of the label noise added to the target
    split_fractions: tuple[float, float, float] = (0.70, 0.15, 0.15)
    speakers: tuple[Speaker, ...] = SPEAKERS
    sentences: tuple[str, ...] = NEUTRAL_SENTENCES
    sample_rate: int = TARGET_SR
    clips_per_fork: int = 10   # clips synthesised in one pristine eSpeak child (fixed groups of clip indices)
    prosody: ProsodyMapping = field(default_factory=ProsodyMapping)
    speaker_spread: SpeakerSpread = field(default_factory=SpeakerSpread)

    def validate(self) -> None:
        """Raise :class:`CorpusError` naming the first inconsistent field."""
        unknown = [c for c in self.categories if c not in NRC_VA]
        if not self.categories or unknown:
            raise CorpusError(f"DemoCorpusConfig.categories has unknown names {unknown}; valid: {sorted(NRC_VA)}")
        if self.category_weights is not None and (len(self.category_weights) != len(self.categories)
                                                  or min(self.category_weights) < 0
                                                  or sum(self.category_weights) <= 0):
            raise CorpusError("DemoCorpusConfig.category_weights needs one non-negative weight per category "
                              f"with a positive sum, got {self.category_weights}")
        lo, hi = self.intensity
        if not 0 <= lo <= hi:
            raise CorpusError(f"DemoCorpusConfig.intensity={self.intensity} must satisfy 0 <= lo <= hi")
        if self.target_spread < 0 or self.rater_sd < 0:
            raise CorpusError(f"target_spread={self.target_spread} and rater_sd={self.rater_sd} must be >= 0")
        fractions = self.split_fractions
        if len(fractions) != 3 or min(fractions) <= 0 or not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
            raise CorpusError(f"DemoCorpusConfig.split_fractions={fractions} must be three positive numbers "
                              "summing to 1 (train, dev, test)")
        if len(self.speakers) < 3 or len({s.id for s in self.speakers}) != len(self.speakers):
            raise CorpusError("DemoCorpusConfig.speakers needs at least three speakers with distinct ids")
        if not self.sentences:
            raise CorpusError("DemoCorpusConfig.sentences is empty")
        if self.clips_per_fork < 1:
            raise CorpusError(f"DemoCorpusConfig.clips_per_fork={self.clips_per_fork} must be >= 1")


@dataclass(frozen=True)
class SpeakerStyle:
    """A speaker's habitual offsets from the mapping (drawn once per speaker and seed)."""

    rate_log: float
    pitch: float
    range: float
    peak_db: float
    tilt: float
    breath: float
    expressiveness: float


@dataclass(frozen=True)
class EffectParams:
    """Post-processing of one clip (numpy/scipy, after eSpeak)."""

    peak_dbfs: float
    tilt: float
    tremolo_depth: float
    tremolo_hz: float
    tremolo_phase: float
    breath: float
    harshness: float
    lead_s: float
    tail_s: float
    floor_dbfs: float
    noise_seed: int


@dataclass(frozen=True)
class ClipPlan:
    """Everything needed to render and label one clip; a pure function of (seed, index, config)."""

    index: int
    path: str                 # relative to the corpus root, e.g. "audio/us_m1_00000.wav"
    speaker: str
    gender: str
    split: str
    emotion: str
    intensity: float
    target_valence: float
    target_arousal: float
    valence: float            # written label = target + rater noise
    arousal: float
    sentence: str
    speech: SpeechParams
    effects: EffectParams


# ----------------------------------------------------------------------------------------------------- planning

def category_prototypes() -> dict[str, tuple[float, float]]:
    """Valence-arousal prototype of each category on the 1..7 scale (NRC VAD nouns, ``1 + 6x``)."""
    return {name: (1.0 + 6.0 * v, 1.0 + 6.0 * a) for name, (v, a) in NRC_VA.items()}


def assign_speaker_splits(speakers: Sequence[Speaker], seed: int,
                          fractions: Sequence[float] = (0.70, 0.15, 0.15)) -> dict[str, str]:
    """Speaker id -> split. Speakers are shuffled within gender and interleaved, so each held-out split gets
    ``max(1, round(n_speakers * fraction))`` speakers of alternating gender (one man, one woman for 12)."""
    rng = np.random.default_rng([seed, 1])
    by_gender: dict[str, list[Speaker]] = {}
    for speaker in speakers:
        by_gender.setdefault(speaker.gender, []).append(speaker)
    queues = [[group[i] for i in rng.permutation(len(group))] for _, group in sorted(by_gender.items())]
    interleaved = [queue[i] for i in range(max(map(len, queues))) for queue in queues if i < len(queue)]
    n_dev, n_test = (max(1, round(len(speakers) * f)) for f in fractions[1:])
    if n_dev + n_test >= len(speakers):
        raise CorpusError(f"{len(speakers)} speakers are too few for speaker-disjoint splits {tuple(fractions)}")
    splits = ["dev"] * n_dev + ["test"] * n_test + ["train"] * (len(speakers) - n_dev - n_test)
    return {speaker.id: split for speaker, split in zip(interleaved, splits)}


def split_sequence(n: int, fractions: Sequence[float]) -> list[str]:
    """Split of each clip index: the split furthest behind its quota takes the next clip (largest remainder),
    so every prefix of the corpus keeps the proportions as closely as integers allow."""
    counts = np.zeros(len(SPLITS))
    out = []
    for i in range(n):
        k = int(np.argmax(np.asarray(fractions) * (i + 1) - counts))
        counts[k] += 1
        out.append(SPLITS[k])
    return out


def draw_speaker_styles(speakers: Sequence[Speaker], seed: int, spread: SpeakerSpread) -> dict[str, SpeakerStyle]:
    """Per-speaker offsets, one independent stream per speaker position."""
    styles = {}
    for k, speaker in enumerate(speakers):
        rng = np.random.default_rng([seed, 2, k])
        styles[speaker.id] = SpeakerStyle(
            rate_log=rng.normal(0, spread.rate_log), pitch=rng.normal(0, spread.pitch),
            range=rng.normal(0, spread.range), peak_db=rng.normal(0, spread.peak_db),
            tilt=rng.normal(0, spread.tilt), breath=rng.normal(0, spread.breath),
            expressiveness=rng.uniform(*spread.expressiveness))
    return styles


def sample_target(rng: np.random.Generator, config: DemoCorpusConfig) -> tuple[str, float, float, float]:
    """(category, intensity, target valence, target arousal) for one clip."""
    weights = np.ones(len(config.categories)) if config.category_weights is None else np.asarray(
        config.category_weights, dtype=float)
    emotion = config.categories[int(rng.choice(len(config.categories), p=weights / weights.sum()))]
    prototypes = category_prototypes()
    origin = np.asarray(prototypes["neutral"])
    intensity = 1.0 if emotion == "neutral" else float(rng.uniform(*config.intensity))
    point = origin + intensity * (np.asarray(prototypes[emotion]) - origin)
    target = np.clip(point + rng.normal(0.0, config.target_spread, size=2), 1.0, 7.0)
    return emotion, intensity, float(target[0]), float(target[1])


def _clipped(value: float, lo: float, hi: float) -> float:
    return float(min(max(value, lo), hi))


def map_prosody(valence: float, arousal: float, voice: str, style: SpeakerStyle, rng: np.random.Generator,
                mapping: ProsodyMapping) -> tuple[SpeechParams, EffectParams]:
    """eSpeak parameters and post-processing for a target (valence, arousal) on 1..7, a speaker and jitter."""
    m, e = mapping, style.expressiveness
    a, v = e * (arousal - 4.0) / 3.0, e * (valence - 4.0) / 3.0
    neg_v, low_a, high_a = max(0.0, -v), max(0.0, -a), max(0.0, a)
    rate = m.rate_wpm * math.exp(m.rate_per_a * a + m.rate_per_v * v + style.rate_log + rng.normal(0, m.rate_jitter))
    speech = SpeechParams(
        voice=voice,
        rate=int(round(_clipped(rate, 90, 320))),
        pitch=int(round(_clipped(m.pitch + m.pitch_per_a * a + m.pitch_per_v * v + style.pitch
                                 + rng.normal(0, m.pitch_jitter), 0, 100))),
        pitch_range=int(round(_clipped(m.range + m.range_per_a * a + m.range_per_v * v + style.range
                                       + rng.normal(0, m.range_jitter), 0, 100))),
        word_gap=int(round(_clipped(m.gap_per_low_a * low_a + rng.normal(0, m.gap_jitter), 0, 8))),
        seed=int(rng.integers(1, 2**31 - 1)))
    effects = EffectParams(
        peak_dbfs=_clipped(m.peak_dbfs + m.peak_per_a * a + style.peak_db + rng.normal(0, m.peak_jitter), -24, -1),
        tilt=_clipped(m.tilt_per_a * a + m.tilt_per_v * v + style.tilt + rng.normal(0, m.tilt_jitter), -0.85, 0.85),
        tremolo_depth=_clipped(m.tremolo_per_neg_v * neg_v + rng.normal(0, m.tremolo_jitter), 0, 0.4),
        tremolo_hz=_clipped(m.tremolo_hz + m.tremolo_hz_per_a * a + rng.normal(0, 0.5), 3, 9),
        tremolo_phase=float(rng.uniform(0, 2 * math.pi)),
        breath=_clipped(m.breath + m.breath_per_low_a * low_a + m.breath_per_neg_v * neg_v + style.breath
                        + rng.normal(0, m.breath_jitter), 0, 0.3),
        harshness=_clipped(m.harsh_per_av * high_a * neg_v + rng.normal(0, m.harsh_jitter), 0, 4),
        lead_s=float(rng.uniform(0.1, 0.3)), tail_s=float(rng.uniform(0.1, 0.3)),
        floor_dbfs=m.floor_dbfs + float(rng.normal(0, 2.0)),
        noise_seed=int(rng.integers(0, 2**63 - 1)))
    return speech, effects


def plan_demo_corpus(n: int, seed: int = 0, config: DemoCorpusConfig | None = None) -> list[ClipPlan]:
    """The full, deterministic plan of a demo corpus (no audio). Clip ``i`` depends only on (seed, i, config)."""
    config = DemoCorpusConfig() if config is None else config
    config.validate()
    speakers = {s.id: s for s in config.speakers}
    speaker_split = assign_speaker_splits(config.speakers, seed, config.split_fractions)
    by_split = {split: [sid for sid in speakers if speaker_split[sid] == split] for split in SPLITS}
    order_rng = np.random.default_rng([seed, 3])
    by_split = {split: [ids[i] for i in order_rng.permutation(len(ids))] for split, ids in by_split.items()}
    styles = draw_speaker_styles(config.speakers, seed, config.speaker_spread)
    seen = dict.fromkeys(SPLITS, 0)
    plans = []
    for index, split in enumerate(split_sequence(n, config.split_fractions)):
        speaker = speakers[by_split[split][seen[split] % len(by_split[split])]]  # round-robin within the split
        seen[split] += 1
        rng = np.random.default_rng([seed, 4, index])
        emotion, intensity, target_v, target_a = sample_target(rng, config)
        labels = np.clip(np.array([target_v, target_a]) + rng.normal(0.0, config.rater_sd, size=2), 1.0, 7.0)
        sentence = config.sentences[int(rng.integers(len(config.sentences)))]
        speech, effects = map_prosody(target_v, target_a, speaker.voice, styles[speaker.id], rng, config.prosody)
        plans.append(ClipPlan(
            index=index, path=f"audio/{speaker.id}_{index:05d}.wav", speaker=speaker.id, gender=speaker.gender,
            split=split, emotion=emotion, intensity=round(intensity, 3), target_valence=round(target_v, 3),
            target_arousal=round(target_a, 3), valence=round(float(labels[0]), 3),
            arousal=round(float(labels[1]), 3), sentence=sentence, speech=speech, effects=effects))
    return plans


# ---------------------------------------------------------------------------------------------------- rendering

def apply_harshness(x: np.ndarray, drive: float) -> np.ndarray:
    """Soft saturation ``tanh(drive * x / peak) / tanh(drive)``: adds harmonics (a rough, pressed voice)."""
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if drive < 1e-3 or peak == 0.0:
        return x
    return np.tanh(drive * x / peak) / math.tanh(drive) * peak


def apply_spectral_tilt(x: np.ndarray, coefficient: float) -> np.ndarray:
    """First-order filter ``y[n] = x[n] - c x[n-1]``: c > 0 brightens (vocal effort), c < 0 darkens."""
    y = x.copy()
    y[1:] -= coefficient * x[:-1]
    return y


def apply_tremolo(x: np.ndarray, sr: int, depth: float, rate_hz: float, phase: float) -> np.ndarray:
    """Amplitude modulation ``1 - depth * (1 + sin(2 pi f t + phase)) / 2`` (a shaky voice)."""
    t = np.arange(x.size) / sr
    return x * (1.0 - depth * 0.5 * (1.0 + np.sin(2 * np.pi * rate_hz * t + phase)))


@functools.lru_cache(maxsize=8)
def _breath_highpass(sr: int) -> np.ndarray:
    return butter(2, 1500.0, btype="highpass", fs=sr, output="sos")


def moving_average(x: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average [T] (cumulative sums, O(T)); the edges average over the available samples."""
    csum = np.concatenate([[0.0], np.cumsum(x)])
    start = np.arange(x.size) - width // 2
    lo, hi = np.clip(start, 0, x.size), np.clip(start + width, 0, x.size)
    return (csum[hi] - csum[lo]) / np.maximum(hi - lo, 1)


def add_breath_noise(x: np.ndarray, sr: int, level: float, rng: np.random.Generator) -> np.ndarray:
    """Add high-passed (> 1.5 kHz) noise shaped by the 10 ms speech envelope, at ``level`` x the envelope."""
    envelope = moving_average(np.abs(x), max(1, int(0.010 * sr)))
    noise = sosfilt(_breath_highpass(sr), rng.standard_normal(x.size))
    noise /= max(float(np.sqrt(np.mean(noise ** 2))), 1e-12)
    return x + level * envelope * noise


@functools.lru_cache(maxsize=8)
def _resampling_filter(up: int, down: int) -> np.ndarray:
    """The anti-aliasing FIR that ``resample_poly`` designs by default (Kaiser, beta 5), designed once."""
    max_rate = max(up, down)
    return firwin(2 * 10 * max_rate + 1, 1.0 / max_rate, window=("kaiser", 5.0))


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Polyphase resampling by the reduced rational factor (22050 -> 16000 is up 320, down 441)."""
    if sr_in == sr_out:
        return x
    g = math.gcd(sr_in, sr_out)
    up, down = sr_out // g, sr_in // g
    return resample_poly(x, up, down, window=_resampling_filter(up, down))


def finish_level(x: np.ndarray, sr: int, effects: EffectParams, rng: np.random.Generator) -> np.ndarray:
    """Pad with silence, set the peak to ``effects.peak_dbfs`` and add room tone; never reaches full scale."""
    x = np.concatenate([np.zeros(int(effects.lead_s * sr)), x, np.zeros(int(effects.tail_s * sr))])
    x = x * (10 ** (effects.peak_dbfs / 20) / max(float(np.max(np.abs(x))), 1e-12))
    return x + 10 ** (effects.floor_dbfs / 20) * rng.standard_normal(x.size)


def post_process(raw: np.ndarray, sr: int, effects: EffectParams, sample_rate: int = TARGET_SR) -> np.ndarray:
    """eSpeak int16 samples [T0] at ``sr`` -> finished float64 clip [T] at ``sample_rate``, peak below 0 dBFS."""
    rng = np.random.default_rng(effects.noise_seed)
    x = raw.astype(np.float64) / 32768.0
    x = apply_harshness(x, effects.harshness)
    x = apply_spectral_tilt(x, effects.tilt)
    x = apply_tremolo(x, sr, effects.tremolo_depth, effects.tremolo_hz, effects.tremolo_phase)
    x = add_breath_noise(x, sr, effects.breath, rng)
    return finish_level(resample(x, sr, sample_rate), sample_rate, effects, rng)


def render_clips(plans: Sequence[ClipPlan], engine: Espeak, sample_rate: int = TARGET_SR) -> list[np.ndarray]:
    """Render planned clips (synthesised in order in one pristine eSpeak child): float64 mono [T_i] each."""
    raws = engine.synthesize_many([(plan.sentence, plan.speech) for plan in plans])       # int16 [T0_i]
    out = []
    for plan, raw in zip(plans, raws):
        if raw.size == 0 or not np.any(raw):
            raise EspeakError(f"eSpeak produced no audio for clip {plan.path} ({plan.sentence!r}, {plan.speech})")
        out.append(post_process(raw, engine.sample_rate, plan.effects, sample_rate))
    return out


def to_pcm16(x: np.ndarray) -> np.ndarray:
    """Float in [-1, 1] -> int16 by rounding (values outside are clipped, which the renderer never produces)."""
    return np.clip(np.round(x * 32767.0), -32767, 32767).astype(np.int16)


@functools.lru_cache(maxsize=1)
def _worker_engine() -> Espeak:
    """One eSpeak per worker process, initialised on first use."""
    return Espeak()


def _render_task(task: tuple[list[ClipPlan], str, int]) -> list[tuple[int, float]]:
    """Worker entry point: render a group of clips, write them as 16-bit WAV, return (index, seconds) pairs."""
    plans, root, sample_rate = task
    out = []
    for plan, wav in zip(plans, render_clips(plans, _worker_engine(), sample_rate)):
        samples = to_pcm16(wav)
        sf.write(os.path.join(root, plan.path), samples, sample_rate, subtype="PCM_16", format="WAV")
        out.append((plan.index, samples.size / sample_rate))
    return out


# ------------------------------------------------------------------------------------------------------ writing

def _progress_reporter(progress: bool | Callable[[int, int], None] | None,
                       total: int) -> tuple[Callable[[int], None], Callable[[], None]]:
    """A (update(done), close()) pair for tqdm, a user callable(done, total), or nothing."""
    if callable(progress):
        return (lambda done: progress(done, total)), (lambda: None)
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=total, desc="demo corpus", unit="clip")
        return (lambda done: bar.update(done - bar.n)), bar.close
    return (lambda done: None), (lambda: None)


def _default_workers(n: int) -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cpus, 8, math.ceil(n / 50)))


def _executor(workers: int) -> ProcessPoolExecutor:
    """Worker processes for rendering.

    Where ``fork`` exists: a 'forkserver' pool (workers fork from a clean server that imported this module once, so
    later builds in the same process start at once and the caller's threads never reach a worker; asking the
    server to preload this module is a process-wide multiprocessing setting). Elsewhere (Windows) eSpeak cannot be
    isolated per call, so each group of clips gets a fresh spawned process (slower, equally deterministic)."""
    if hasattr(os, "fork") and "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        return ProcessPoolExecutor(max_workers=workers, mp_context=context)
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               max_tasks_per_child=1)


def _render_all(plans: list[ClipPlan], root: Path, workers: int, config: DemoCorpusConfig,
                progress: bool | Callable[[int, int], None] | None) -> dict[int, float]:
    """Render every clip in a pool of worker processes (each owns one eSpeak); returns index -> duration.

    Clips go out in fixed groups of ``config.clips_per_fork`` consecutive indices, each synthesised in one
    pristine eSpeak child, so the audio does not depend on the number of workers or on ``n``. On any exception
    (Ctrl-C included) pending groups are cancelled and running ones are awaited, so no worker writes afterwards."""
    size = config.clips_per_fork
    tasks = [(plans[i:i + size], str(root), config.sample_rate) for i in range(0, len(plans), size)]
    update, close = _progress_reporter(progress, len(plans))
    durations: dict[int, float] = {}
    executor = _executor(workers)
    try:
        for future in as_completed([executor.submit(_render_task, task) for task in tasks]):
            durations.update(future.result())
            update(len(durations))
    except BrokenProcessPool as exc:
        raise CorpusError("the corpus worker processes died; if build_demo_corpus is called from a script, put "
                          "the call under `if __name__ == \"__main__\":` (multiprocessing re-imports the main "
                          "module in each worker)") from exc
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
        close()
    return durations


def _write_csv(path: Path, header: Sequence[str], rows: list[list]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def write_manifest(path: Path, plans: list[ClipPlan]) -> None:
    """The generic CSV manifest (relative paths, dominance and caption empty)."""
    rows = [[p.path, f"{p.valence:.3f}", f"{p.arousal:.3f}", "", p.emotion, p.speaker, p.gender, p.split, ""]
            for p in plans]
    _write_csv(path, MANIFEST_COLUMNS, rows)


def write_render_table(path: Path, plans: list[ClipPlan], durations: dict[int, float]) -> None:
    """Per-clip targets and rendering parameters (not needed for training; for analysis)."""
    header = ["path", "speaker", "split", "emotion", "intensity", "target_valence", "target_arousal", "valence",
              "arousal", "sentence", "voice", "rate_wpm", "pitch", "pitch_range", "word_gap", "peak_dbfs", "tilt",
              "tremolo_depth", "tremolo_hz", "breath", "harshness", "duration_s"]
    rows = []
    for p in plans:
        s, fx = p.speech, p.effects
        rows.append([p.path, p.speaker, p.split, p.emotion, f"{p.intensity:.3f}", f"{p.target_valence:.3f}",
                     f"{p.target_arousal:.3f}", f"{p.valence:.3f}", f"{p.arousal:.3f}", p.sentence, s.voice, s.rate,
                     s.pitch, s.pitch_range, s.word_gap, f"{fx.peak_dbfs:.2f}", f"{fx.tilt:.3f}",
                     f"{fx.tremolo_depth:.3f}", f"{fx.tremolo_hz:.2f}", f"{fx.breath:.3f}", f"{fx.harshness:.3f}",
                     f"{durations[p.index]:.4f}"])
    _write_csv(path, header, rows)


def describe_corpus(n: int, seed: int, config: DemoCorpusConfig, plans: list[ClipPlan]) -> dict:
    """The content of ``corpus.json`` (no timestamps, so it is reproducible too)."""
    from emorank import __version__
    try:
        espeak_version = metadata.version("espeakng-loader")
    except metadata.PackageNotFoundError:
        espeak_version = "unknown"
    split_of = assign_speaker_splits(config.speakers, seed, config.split_fractions)
    return {
        "name": "emorank-demo", "synthetic": True, "notice": SYNTHETIC_NOTICE, "version": CORPUS_VERSION,
        "generator": "emorank.corpus.build_demo_corpus", "emorank_version": __version__,
        "espeakng_loader_version": espeak_version, "seed": seed, "n": n, "sample_rate": config.sample_rate,
        "label_scale": [1, 7], "labels": "target (valence, arousal) + N(0, rater_sd) rater noise, clipped to [1, 7]; "
                                         "dominance not rendered, left empty",
        "clips_per_split": {s: sum(p.split == s for p in plans) for s in SPLITS},
        "speakers": [{**asdict(s), "split": split_of[s.id]} for s in config.speakers],
        "category_prototypes": {c: list(va) for c, va in category_prototypes().items() if c in config.categories},
        "nrc_vad_words": {c: NRC_WORD.get(c, c) for c in config.categories},
        "config": asdict(config),
    }


def _is_demo_corpus(folder: Path) -> bool:
    try:
        info = json.loads((folder / "corpus.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and info.get("generator") == "emorank.corpus.build_demo_corpus"


def _check_destination(out_dir: Path, overwrite: bool) -> None:
    """Refuse a file, or a non-empty folder unless ``overwrite`` and it holds an earlier demo corpus."""
    if out_dir.exists() and not out_dir.is_dir():
        raise CorpusExistsError(f"output path {out_dir} exists and is not a folder")
    if not out_dir.is_dir() or not any(out_dir.iterdir()):
        return
    if not overwrite:
        raise CorpusExistsError(f"output folder {out_dir} exists and is not empty; refusing to overwrite it "
                                "(pass overwrite=True to replace an earlier demo corpus, or choose another folder)")
    if not _is_demo_corpus(out_dir):
        raise CorpusExistsError(f"output folder {out_dir} is not empty and does not hold an emorank demo corpus "
                                "(no corpus.json from build_demo_corpus); refusing to delete it even with "
                                "overwrite=True")


def _publish(staging: Path, out_dir: Path, overwrite: bool) -> None:
    """Move the finished corpus into place by renames, so ``out_dir`` is never half-written."""
    _check_destination(out_dir, overwrite)
    if out_dir.is_dir() and any(out_dir.iterdir()):
        trash = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
        os.replace(out_dir, trash / "corpus")
        os.replace(staging, out_dir)
        shutil.rmtree(trash, ignore_errors=True)
        return
    if out_dir.is_dir():
        out_dir.rmdir()
    os.replace(staging, out_dir)


def _check_arguments(n: int, seed: int, workers: int | None) -> None:
    for name, value, lo in (("n", n, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
            raise CorpusError(f"{name} must be an integer >= {lo}, got {value!r}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, (int, np.integer))
                                or workers < 1):
        raise CorpusError(f"workers must be None (automatic) or an integer >= 1, got {workers!r}")


def build_demo_corpus(out_dir: str | os.PathLike, n: int = 1000, seed: int = 0, workers: int | None = None,
                      progress: bool | Callable[[int, int], None] | None = True, *, overwrite: bool = False,
                      config: DemoCorpusConfig | None = None) -> Path:
    """Generate the SYNTHETIC demo corpus into ``out_dir``; returns the path of ``out_dir/manifest.csv``.

    Args:
        out_dir: destination folder; must not exist or be empty (see ``overwrite``).
        n: number of clips (about 2-3.5 s each).
        seed: the corpus is a deterministic function of (n, seed, config): byte-identical audio and tables.
        workers: worker processes (each initialises eSpeak once). ``None`` = one per CPU, at most 8 and one per
            50 clips. The output does not depend on it.
        progress: ``True`` for a tqdm bar, a callable ``(done, total)``, or ``False``/``None`` for silence.
        overwrite: replace ``out_dir`` if it holds an earlier demo corpus (a folder with anything else is never
            deleted).
        config: sampling, labelling and prosody parameters (:class:`DemoCorpusConfig`).

    The corpus is built in a hidden folder beside ``out_dir`` and renamed into place at the end, so an interrupted
    run never leaves a half corpus that looks complete (a killed run may leave a hidden ``.NAME.partial-*``
    folder). Workers are separate processes, so a script that calls this must do so under
    ``if __name__ == "__main__":``.
    """
    _check_arguments(n, seed, workers)
    config = DemoCorpusConfig() if config is None else config
    out_dir = Path(out_dir).expanduser().resolve()
    _check_destination(out_dir, overwrite)
    plans = plan_demo_corpus(int(n), int(seed), config)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        (staging / "audio").mkdir()
        durations = _render_all(plans, staging, workers or _default_workers(n), config, progress)
        write_manifest(staging / "manifest.csv", plans)
        write_render_table(staging / "render.csv", plans, durations)
        description = describe_corpus(int(n), int(seed), config, plans)
        (staging / "corpus.json").write_text(json.dumps(description, indent=2, sort_keys=True) + "\n",
                                             encoding="utf-8")
        _publish(staging, out_dir, overwrite)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # no-op after a successful publish (staging was renamed)
    return out_dir / "manifest.csv"
