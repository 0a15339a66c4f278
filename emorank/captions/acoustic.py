"""Paralinguistic measures with Parselmouth (Praat) and the ParaCLAP acoustic captions built from them.

EmotionRankCLAP's ParaCLAP baseline describes pitch, jitter, shimmer and articulation rate measured with Parselmouth
(Jadoul et al., 2018); ParaCLAP (Jing et al., Interspeech 2024) turns each measure into "low" / "normal" / "high" by
its quantile over the training set and joins the phrases into "speaker has a high pitch and is loud and ...".

    enc = ParalinguisticEncoder()
    para = enc.encode_files(manifest.path)                  # [N, P] float32, NaN where undefined
    builder = AcousticCaptionBuilder().fit(train_manifest, para[train_rows])
    captions = builder.build(manifest, para)

:data:`FEATURE_NAMES` fixes the column order of the measures:

* ``f0_semitone_mean`` -- mean F0 of the voiced frames in semitones re 27.5 Hz (A0; the eGeMAPS convention),
  Praat autocorrelation pitch, floor 75 Hz, ceiling 600 Hz, 10 ms step.
* ``f0_variation`` -- coefficient of variation (stddev / mean) of that semitone contour (eGeMAPS "stddevNorm").
* ``intensity_mean_db`` -- Praat intensity contour averaged in the energy domain (Praat's "Get mean", "energy"),
  in dB re 2e-5 with the waveform taken as pascals (Praat's convention): a full-scale sine is about 91 dB. Only
  differences between clips matter.
* ``jitter_local`` -- Praat "Get jitter (local)" (a fraction, e.g. 0.01 = 1 %), periods 0.1-20 ms, factor 1.3.
* ``shimmer_local_db`` -- Praat "Get shimmer (local_dB)", same period limits, amplitude factor 1.6.
* ``articulation_rate`` -- syllable nuclei per second of voiced speech. Nuclei follow de Jong & Wempe (2009),
  simplified (our interpretation): peaks of the intensity contour (minimum pitch 50 Hz) above the 99th percentile
  minus 25 dB, with a prominence of at least 2 dB (the "dip" on each side), that fall in a voiced pitch frame.
  Voiced time = number of voiced pitch frames x the time step, so pauses do not count (articulation, not speech
  rate).
* ``duration`` -- seconds.

Undefined measures are NaN and never raise: near-silent audio (peak below ``silence_threshold``) leaves everything
but the duration NaN; unvoiced audio leaves the pitch-based measures NaN; clips too short for an analysis window
leave that analysis NaN.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
import parselmouth
from parselmouth.praat import call
from scipy.signal import find_peaks

from emorank.data.audio import DEFAULT_SILENCE_THRESHOLD, TARGET_SR, load_audio
from emorank.captions.emotion import CaptionError, canonical_emotion, config_from_spec

FEATURE_NAMES: tuple[str, ...] = ("f0_semitone_mean", "f0_variation", "intensity_mean_db", "jitter_local",
                                  "shimmer_local_db", "articulation_rate", "duration")
SEMITONE_REFERENCE_HZ = 27.5
MEASURE_VERSION = "1"  # bump when the meaning of a measure changes (part of the encoder fingerprint)


class ParalinguisticError(ValueError):
    """The input cannot be measured at all (not a 1-D finite waveform, bad sampling rate)."""


@dataclass(frozen=True)
class ParalinguisticConfig:
    """Analysis settings (Praat defaults where Praat has one; de Jong & Wempe's for the syllable nuclei)."""

    pitch_floor: float = 75.0  # Hz
    pitch_ceiling: float = 600.0  # Hz
    time_step: float = 0.01  # s, pitch frames
    intensity_min_pitch: float = 50.0  # Hz; sets the intensity window (de Jong & Wempe use 50 Hz)
    silence_db: float = 25.0  # nuclei lie above the 99th-percentile intensity minus this
    min_dip_db: float = 2.0  # a nucleus stands out from its surroundings by at least this (peak prominence)
    min_voiced_seconds: float = 0.05  # below this much voiced time the articulation rate is NaN
    silence_threshold: float = DEFAULT_SILENCE_THRESHOLD  # peak amplitude under which audio counts as silent


# ---------------------------------------------------------------- measurement
def _check_wave(wave: np.ndarray, sr: int) -> np.ndarray:
    x = np.asarray(wave)
    if x.ndim != 1:
        raise ParalinguisticError(f"expected a mono waveform of shape [T], got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number):
        raise ParalinguisticError(f"expected a numeric waveform, got dtype {x.dtype}")
    if not np.all(np.isfinite(x)):
        raise ParalinguisticError("waveform contains NaN or infinite samples")
    if not (isinstance(sr, (int, np.integer)) and sr > 0):
        raise ParalinguisticError(f"sampling rate must be a positive integer, got {sr!r}")
    return x.astype(np.float64)


def _pitch_measures(pitch_hz: np.ndarray) -> tuple[float, float]:
    """(mean, coefficient of variation) of the semitone contour of the voiced frames; NaN when none."""
    voiced = pitch_hz[pitch_hz > 0]  # [V]
    if voiced.size == 0:
        return float("nan"), float("nan")
    semitones = 12.0 * np.log2(voiced / SEMITONE_REFERENCE_HZ)  # [V]
    mean = float(semitones.mean())
    return mean, float(semitones.std() / mean) if mean > 0 else float("nan")


def _energy_mean_db(intensity_db: np.ndarray) -> float:
    """Mean of a dB contour in the energy domain: 10 log10(mean(10^(I/10)))."""
    return float(10.0 * np.log10(np.mean(10.0 ** (intensity_db / 10.0))))


def count_syllable_nuclei(intensity_db: np.ndarray, voiced: np.ndarray, silence_db: float = 25.0,
                          min_dip_db: float = 2.0) -> int:
    """Intensity peaks above (99th percentile - ``silence_db``) with prominence >= ``min_dip_db`` in voiced frames.

    ``intensity_db`` [K] is the contour; ``voiced`` [K] bool says whether each of its frames is voiced.
    """
    if intensity_db.size < 3:
        return 0
    threshold = max(float(np.quantile(intensity_db, 0.99)) - silence_db, float(intensity_db.min()))
    peaks, _ = find_peaks(intensity_db, height=threshold, prominence=min_dip_db)  # [M] frame indices
    return int(np.count_nonzero(voiced[peaks]))


def _voiced_at(times: np.ndarray, pitch: "parselmouth.Pitch", voiced_frames: np.ndarray) -> np.ndarray:
    """Whether the pitch frame nearest to each time is voiced; times outside the pitch frames are unvoiced."""
    if voiced_frames.size == 0:
        return np.zeros(times.shape, dtype=bool)
    idx = np.rint((times - pitch.t1) / pitch.dt).astype(int)  # [K]
    inside = (idx >= 0) & (idx < voiced_frames.size)
    return inside & voiced_frames[np.clip(idx, 0, voiced_frames.size - 1)]


def _safe(fn, *args, **kwargs) -> Any:
    """Run a Praat analysis; a clip that is too short for it (PraatError) gives None."""
    try:
        return fn(*args, **kwargs)
    except parselmouth.PraatError:
        return None


def _nan_measures(duration: float) -> dict[str, float]:
    out = {name: float("nan") for name in FEATURE_NAMES}
    out["duration"] = duration
    return out


def measure(wave: np.ndarray, sr: int = TARGET_SR, config: ParalinguisticConfig | None = None) -> dict[str, float]:
    """Paralinguistic measures of one waveform ``[T]`` as ``{name: value}`` in :data:`FEATURE_NAMES` order.

    Undefined measures are NaN (silence, unvoiced audio, clips too short for an analysis); bad input (not 1-D,
    non-finite samples, bad ``sr``) raises :class:`ParalinguisticError`.
    """
    cfg = config or ParalinguisticConfig()
    x = _check_wave(wave, sr)  # [T]
    out = _nan_measures(float(x.size / sr))
    if x.size == 0 or np.max(np.abs(x)) < cfg.silence_threshold:
        return out
    sound = parselmouth.Sound(x, sampling_frequency=float(sr))
    pitch = _safe(sound.to_pitch, time_step=cfg.time_step, pitch_floor=cfg.pitch_floor,
                  pitch_ceiling=cfg.pitch_ceiling)
    hz = pitch.selected_array["frequency"] if pitch is not None else np.zeros(0)  # [F], 0 = unvoiced
    out["f0_semitone_mean"], out["f0_variation"] = _pitch_measures(hz)

    intensity = _safe(sound.to_intensity, minimum_pitch=cfg.intensity_min_pitch)
    if intensity is not None:
        contour = intensity.values[0]  # [K] dB
        out["intensity_mean_db"] = _energy_mean_db(contour)
        voiced_seconds = np.count_nonzero(hz > 0) * cfg.time_step
        if pitch is not None and voiced_seconds >= cfg.min_voiced_seconds:
            voiced = _voiced_at(intensity.xs(), pitch, hz > 0)
            nuclei = count_syllable_nuclei(contour, voiced, cfg.silence_db, cfg.min_dip_db)
            out["articulation_rate"] = float(nuclei / voiced_seconds)

    if pitch is not None and np.any(hz > 0):
        out["jitter_local"], out["shimmer_local_db"] = _jitter_shimmer(sound, pitch)
    return out


def _jitter_shimmer(sound: "parselmouth.Sound", pitch: "parselmouth.Pitch") -> tuple[float, float]:
    """Praat jitter (local) and shimmer (local, dB) over glottal pulses found by cross-correlation; NaN if undefined.

    Praat's standard arguments: whole clip, periods 0.1-20 ms, period factor 1.3, amplitude factor 1.6.
    """
    points = _safe(call, [sound, pitch], "To PointProcess (cc)")
    if points is None:
        return float("nan"), float("nan")
    jitter = _safe(call, points, "Get jitter (local)", 0, 0, 0.0001, 0.02, 1.3)
    shimmer = _safe(call, [sound, points], "Get shimmer (local_dB)", 0, 0, 0.0001, 0.02, 1.3, 1.6)
    return _as_float(jitter), _as_float(shimmer)


def _as_float(value: Any) -> float:
    """Praat's "--undefined--" (None or NaN here) -> NaN."""
    return float("nan") if value is None else float(value)


# ---------------------------------------------------------------- encoder
class ParalinguisticEncoder:
    """Audio "encoder" giving the :data:`FEATURE_NAMES` measures, with the interface of emorank's audio encoders.

    ``encode(waves)`` -> ``[N, P]`` float32 (NaN where undefined); ``encode_files(paths)`` reads each file with
    :func:`emorank.data.audio.load_audio` at 16 kHz. Plain CPU code, safe to run in worker processes.
    """

    name = "paralinguistic"
    parallel_safe = True

    def __init__(self, config: ParalinguisticConfig | None = None, **kwargs: Any) -> None:
        self.config = config or ParalinguisticConfig(**kwargs)
        self.dim = len(FEATURE_NAMES)
        self.feature_names = FEATURE_NAMES

    def fingerprint(self) -> str:
        """Changes with the settings, the measure definitions and the Praat version (cache key)."""
        spec = {"names": FEATURE_NAMES, "config": asdict(self.config), "version": MEASURE_VERSION,
                "praat": parselmouth.PRAAT_VERSION}
        digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
        return f"{self.name}-{digest}"

    def encode(self, waves: Sequence[np.ndarray] | np.ndarray, sr: int = TARGET_SR) -> np.ndarray:
        """Measures of each waveform: ``[N, P]`` float32. A single 1-D array counts as one waveform."""
        if isinstance(waves, np.ndarray) and waves.ndim == 1:
            waves = [waves]
        rows = [[measure(w, sr, self.config)[n] for n in FEATURE_NAMES] for w in waves]
        return np.asarray(rows, dtype=np.float32).reshape(len(rows), self.dim)  # [N, P]

    def encode_files(self, paths: Sequence[str]) -> np.ndarray:
        """Measures of each audio file: ``[N, P]`` float32 (files read and resampled to 16 kHz)."""
        return self.encode([load_audio(p, TARGET_SR) for p in paths], TARGET_SR)


# ---------------------------------------------------------------- ParaCLAP captions
# Phrases for the levels (low, normal, high) of each measure and label (ParaCLAP's wording where it has one).
FEATURE_PHRASES: dict[str, tuple[str, str, str]] = {
    "f0_semitone_mean": ("has a low pitch", "has a normal pitch", "has a high pitch"),
    "f0_variation": ("has a low pitch variation", "has a normal pitch variation", "has a high pitch variation"),
    "intensity_mean_db": ("is quiet", "has a normal loudness", "is loud"),
    "jitter_local": ("has a low jitter", "has a normal jitter", "has a high jitter"),
    "shimmer_local_db": ("has a low shimmer", "has a normal shimmer", "has a high shimmer"),
    "articulation_rate": ("has a slow speaking rate", "has a normal speaking rate", "has a fast speaking rate"),
    "duration": ("is short", "is of average length", "is long"),
    "valence": ("has low valence", "valence is at an average level", "has high valence"),
    "arousal": ("has low arousal", "arousal is at an average level", "has high arousal"),
}
LABEL_NAMES = ("valence", "arousal")
_WORD_RE = re.compile(r"^[a-z][a-z \-]*$")  # a gender word fit for a caption (no digits)


@dataclass
class AcousticCaptionConfig:
    """Settings of :class:`AcousticCaptionBuilder` (ParaCLAP's thresholds 0.3 / 0.7)."""

    features: list[str] = field(default_factory=lambda: list(FEATURE_NAMES))  # measures described, in order
    low: float = 0.3  # quantile <= low -> "low"
    high: float = 0.7  # quantile >= high -> "high"
    n_quantiles: int = 101  # reference points stored per measure (all values when there are fewer rows)
    include_va: bool = False  # also describe the valence/arousal labels' quantiles (ParaCLAP does; see class doc)
    include_emotion: bool = True
    include_gender: bool = True
    seed: int = 0  # unused (captions are deterministic); accepted so that every builder takes ``seed=``


def reference_points(values: np.ndarray, n_quantiles: int) -> list[float] | None:
    """Sorted reference values of one measure ignoring NaN: all of them when there are at most ``n_quantiles``,
    else the ``n_quantiles`` evenly spaced quantiles. None when no value is finite."""
    finite = np.sort(values[np.isfinite(values)]).astype(np.float64)  # [M]
    if finite.size == 0:
        return None
    if finite.size > n_quantiles:
        finite = np.quantile(finite, np.arange(n_quantiles) / (n_quantiles - 1))
    return [float(v) for v in finite]


def quantile_of(values: np.ndarray, reference: Sequence[float] | None) -> np.ndarray:
    """Empirical quantile (0..1) of each value against sorted ``reference`` points; NaN stays NaN.

    Reference point k of K sits at level k / (K - 1); values between points interpolate linearly, values beyond
    the ends clip to 0 or 1. Ties are resolved as scikit-learn's QuantileTransformer does (ParaCLAP's tool): the
    mean of the interpolation from below and from above, so a value equal to a run of tied points gets the level
    of the run's middle.
    """
    x = np.asarray(values, dtype=np.float64)  # [N]
    if reference is None:
        return np.full(x.shape, np.nan)
    ref = np.asarray(reference, dtype=np.float64)  # [K]
    if ref.size == 1:
        ref = np.repeat(ref, 2)
    levels = np.arange(ref.size) / (ref.size - 1)  # [K]; k / (K - 1) is exact at 0.3, 0.7, ...
    upward = np.interp(x, ref, levels)
    downward = -np.interp(-x, -ref[::-1], -levels[::-1])
    q = 0.5 * (upward + downward)
    return np.where(np.isfinite(x), q, np.nan)


class AcousticCaptionBuilder:
    """ParaCLAP captions: "speaker " + phrases joined with " and ", one phrase per measure level.

    ``fit(manifest, features)`` stores reference quantiles of each measure over the training rows (NaN ignored);
    ``build(manifest, features)`` places each row's value among them: quantile >= ``high`` -> "high", <= ``low``
    -> "low", otherwise "normal" (:data:`FEATURE_PHRASES`). NaN measures are left out. The emotion category
    ("emotion is angry") and gender ("is female") follow when known. ``include_va`` adds the valence/arousal
    labels' levels as ParaCLAP does; it is off by default (our interpretation) because EmotionRankCLAP's ParaCLAP
    baseline describes acoustic properties only, and A-V guided captions are what the paper's own rows add.
    ``features`` is always the full ``[N, P]`` matrix in :data:`FEATURE_NAMES` order. Deterministic.
    """

    kind = "acoustic"
    needs_features = True

    def __init__(self, config: AcousticCaptionConfig | None = None, **kwargs: Any) -> None:
        self.config = config or AcousticCaptionConfig(**kwargs)
        self.config.features = list(self.config.features)
        _check_config(self.config)
        self.reference: dict[str, list[float] | None] | None = None

    def fit(self, manifest, features: np.ndarray | None) -> "AcousticCaptionBuilder":
        """Reference quantiles of each described measure (and label, with ``include_va``) over these rows."""
        columns = self._columns(manifest, features)
        self.reference = {name: reference_points(col, self.config.n_quantiles) for name, col in columns.items()}
        return self

    def build(self, manifest, features: np.ndarray | None, keys=None) -> list[str]:
        """One caption per row of ``manifest``; ``features`` [N, P] are that manifest's measures (``keys`` is
        accepted like every builder's; these captions have no phrasing to seed)."""
        if self.reference is None:
            raise CaptionError("AcousticCaptionBuilder is not fitted: call fit(train_manifest, train_features) "
                               "or rebuild it with from_dict")
        columns = self._columns(manifest, features)
        levels = {name: self.levels(col, self.reference[name]) for name, col in columns.items()}  # name -> [N]
        captions = []
        for i in range(len(manifest)):
            phrases = [FEATURE_PHRASES[name][lv[i]] for name, lv in levels.items() if lv[i] >= 0]
            phrases += self._label_phrases(manifest, i)
            captions.append("speaker " + " and ".join(phrases) if phrases else "speaker")
        return captions

    def levels(self, values: np.ndarray, reference: Sequence[float] | None) -> np.ndarray:
        """Level per value: 0 low, 1 normal, 2 high, -1 undefined (NaN value or no reference)."""
        q = quantile_of(values, reference)  # [N]
        out = np.where(q >= self.config.high, 2, np.where(q <= self.config.low, 0, 1))
        return np.where(np.isnan(q), -1, out).astype(np.int64)

    def _columns(self, manifest, features: np.ndarray | None) -> dict[str, np.ndarray]:
        """The described columns, name -> [N], from the features matrix and (with include_va) the labels."""
        if features is None:
            raise CaptionError("AcousticCaptionBuilder needs the paralinguistic features [N, P] of the rows "
                               "(ParalinguisticEncoder output)")
        feats = np.asarray(features, dtype=np.float64)
        if feats.ndim != 2 or feats.shape != (len(manifest), len(FEATURE_NAMES)):
            raise CaptionError(f"features must have shape [{len(manifest)}, {len(FEATURE_NAMES)}] (rows of the "
                               f"manifest x {', '.join(FEATURE_NAMES)}), got {feats.shape}")
        columns = {name: feats[:, FEATURE_NAMES.index(name)] for name in self.config.features}
        if self.config.include_va:
            columns["valence"] = np.asarray(manifest.valence, dtype=np.float64)
            columns["arousal"] = np.asarray(manifest.arousal, dtype=np.float64)
        return columns

    def _label_phrases(self, manifest, i: int) -> list[str]:
        phrases = []
        if self.config.include_emotion:
            emotion = canonical_emotion(manifest.emotion[i], where=f"row {i}: ")
            if emotion:
                phrases.append(f"emotion is {emotion}")
        gender = str(manifest.gender[i]).strip().lower()
        if self.config.include_gender and _WORD_RE.match(gender):
            phrases.append(f"is {gender}")
        return phrases

    def to_dict(self) -> dict:
        """JSON-serialisable settings and fitted reference points (store it in a checkpoint's config)."""
        return {"builder": self.kind, **asdict(self.config), "reference": self.reference}

    @classmethod
    def from_dict(cls, spec: dict) -> "AcousticCaptionBuilder":
        """Rebuild a (fitted) builder from :meth:`to_dict`."""
        builder = cls(config_from_spec(AcousticCaptionConfig, spec, cls.kind, extra=("reference",)))
        reference = spec.get("reference")
        if reference is not None:
            builder.reference = {k: None if v is None else [float(x) for x in v] for k, v in reference.items()}
            missing = set(builder._described()) - set(builder.reference)
            if missing:
                raise CaptionError(f"stored reference lacks {sorted(missing)}")
        return builder

    def _described(self) -> list[str]:
        return list(self.config.features) + (list(LABEL_NAMES) if self.config.include_va else [])


def _check_config(cfg: AcousticCaptionConfig) -> None:
    unknown = [f for f in cfg.features if f not in FEATURE_NAMES]
    if unknown:
        raise CaptionError(f"unknown paralinguistic features {unknown}; valid: {', '.join(FEATURE_NAMES)}")
    if len(set(cfg.features)) != len(cfg.features):
        raise CaptionError(f"features listed twice: {cfg.features}")
    if not 0.0 <= cfg.low < cfg.high <= 1.0:
        raise CaptionError(f"thresholds must satisfy 0 <= low < high <= 1, got low={cfg.low}, high={cfg.high}")
    if isinstance(cfg.n_quantiles, bool) or not isinstance(cfg.n_quantiles, int) or cfg.n_quantiles < 2:
        raise CaptionError(f"n_quantiles must be an integer >= 2, got {cfg.n_quantiles!r}")
