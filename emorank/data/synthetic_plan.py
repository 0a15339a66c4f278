"""What each clip of the SYNTHETIC demo corpus should sound like: categories and their V-A prototypes, speakers
and their styles, the prosody mapping from (valence, arousal) to eSpeak NG settings and effects, and the seeded
plan of every clip (:func:`plan_demo_corpus`). Rendering and writing live in :mod:`emorank.data.synthetic`.
"""
import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from emorank.data.audio import TARGET_SR
from emorank.data.espeak import SpeechParams

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
