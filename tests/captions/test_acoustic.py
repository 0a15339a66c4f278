"""Tests of the Parselmouth measures, the paralinguistic encoder and the ParaCLAP acoustic captions."""
from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import soundfile as sf
from sklearn.preprocessing import QuantileTransformer

from emorank.data.audio import load_audio
from emorank.data.manifest import Manifest
from emorank.captions.emotion import CaptionError
from emorank.captions.acoustic import (FEATURE_NAMES, FEATURE_PHRASES, AcousticCaptionBuilder, ParalinguisticConfig,
                                       ParalinguisticEncoder, ParalinguisticError, measure, quantile_of,
                                       reference_points)

SR = 16000
P = len(FEATURE_NAMES)


# ---------------------------------------------------------------- synthetic signals
def harmonic(f0, seconds: float = 1.0, amp: float = 0.5) -> np.ndarray:
    """A harmonic-rich periodic signal; ``f0`` may be an array (a glide) of per-sample frequencies."""
    n = int(seconds * SR)
    phase = 2 * np.pi * np.cumsum(np.broadcast_to(np.asarray(f0, dtype=float), (n,))) / SR
    x = sum(np.sin(k * phase) / k for k in range(1, 8))
    return (amp * x / np.abs(x).max()).astype(np.float32)


def syllables(rate: float, seconds: float = 2.0, floor: float = 0.15) -> np.ndarray:
    """A voiced tone whose loudness rises and falls ``rate`` times a second (syllable-like bursts, no pauses)."""
    t = np.arange(int(seconds * SR)) / SR
    envelope = floor + (1 - floor) * 0.5 * (1 - np.cos(2 * np.pi * rate * t))
    return harmonic(150.0, seconds) * envelope.astype(np.float32)


def pulse_train(f0: float = 120.0, seconds: float = 1.0, period_jitter: float = 0.0, amp_jitter: float = 0.0,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Glottal-like pulses through a short resonance; returns (wave, pulse sample positions)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    x = np.zeros(n)
    positions, t = [], 0.005
    while t < seconds - 0.01:
        i = int(round(t * SR))
        x[i] = 1.0 + amp_jitter * rng.standard_normal()
        positions.append(i)
        t += (1.0 / f0) * (1.0 + period_jitter * rng.standard_normal())
    k = np.arange(160)
    y = np.convolve(x, np.exp(-k / 30.0) * np.sin(2 * np.pi * 700 * k / SR))[:n]
    return (0.5 * y / np.abs(y).max()).astype(np.float32), np.asarray(positions)


def naive_jitter(positions: np.ndarray) -> float:
    """Jitter (local) by its definition: mean |T_i - T_(i-1)| / mean T over the pulse periods."""
    periods = np.diff(positions) / SR
    return float(np.mean(np.abs(np.diff(periods))) / np.mean(periods))


# ---------------------------------------------------------------- measures
@pytest.mark.parametrize("f0", [100.0, 220.0])
def test_f0_in_semitones_re_27_5_hz(f0):
    m = measure(harmonic(f0))
    assert list(m) == list(FEATURE_NAMES)
    assert m["f0_semitone_mean"] == pytest.approx(12 * np.log2(f0 / 27.5), abs=0.05)
    assert m["f0_variation"] < 1e-3
    assert m["duration"] == pytest.approx(1.0)


def test_pulse_train_f0():
    wave, _ = pulse_train(f0=200.0)
    assert measure(wave)["f0_semitone_mean"] == pytest.approx(12 * np.log2(200 / 27.5), abs=0.1)


def test_glide_has_more_pitch_variation():
    steady = measure(harmonic(150.0))["f0_variation"]
    glide = measure(harmonic(np.linspace(110, 260, SR)))["f0_variation"]
    assert glide > steady + 0.02


def test_louder_signal_has_higher_intensity():
    quiet = measure(harmonic(150.0, amp=0.05))["intensity_mean_db"]
    loud = measure(harmonic(150.0, amp=0.5))["intensity_mean_db"]
    assert loud - quiet == pytest.approx(20.0, abs=0.2)  # ten times the amplitude = +20 dB


def test_jitter_matches_its_definition_and_shimmer_grows():
    for pj in (0.01, 0.03):
        wave, positions = pulse_train(period_jitter=pj)
        assert measure(wave)["jitter_local"] == pytest.approx(naive_jitter(positions), rel=0.25)
    shimmers = [measure(pulse_train(amp_jitter=aj)[0])["shimmer_local_db"] for aj in (0.0, 0.1, 0.3)]
    assert shimmers[0] < shimmers[1] < shimmers[2]


def test_more_syllables_per_second_raise_articulation_rate():
    rates = [measure(syllables(r))["articulation_rate"] for r in (2.0, 4.0, 7.0)]
    assert rates[0] < rates[1] < rates[2]
    assert rates[0] == pytest.approx(2.0, abs=0.5)
    assert measure(harmonic(150.0))["articulation_rate"] == 0.0  # steady vowel: no nuclei


@pytest.mark.parametrize("wave", [np.zeros(SR, np.float32), np.full(SR, 1e-6, np.float32), np.zeros(0, np.float32)])
def test_silence_gives_nan_without_crash(wave):
    m = measure(wave)
    assert m["duration"] == pytest.approx(len(wave) / SR)
    assert all(np.isnan(m[n]) for n in FEATURE_NAMES if n != "duration")


def test_noise_has_intensity_but_no_pitch():
    m = measure(0.1 * np.random.default_rng(0).standard_normal(SR).astype(np.float32))
    assert np.isfinite(m["intensity_mean_db"])
    for name in ("f0_semitone_mean", "f0_variation", "jitter_local", "shimmer_local_db", "articulation_rate"):
        assert np.isnan(m[name]), name


def test_clip_too_short_for_analysis_does_not_crash():
    m = measure(harmonic(150.0, seconds=0.03))
    assert m["duration"] == pytest.approx(0.03)
    assert np.isnan(m["intensity_mean_db"]) and np.isnan(m["articulation_rate"])


@pytest.mark.parametrize("wave,sr,match", [
    (np.zeros((2, 100), np.float32), SR, "shape"),
    (np.array([0.0, np.nan, 0.1]), SR, "NaN"),
    (np.zeros(100, np.float32), 0, "sampling rate"),
])
def test_bad_input_raises(wave, sr, match):
    with pytest.raises(ParalinguisticError, match=match):
        measure(wave, sr)


# ---------------------------------------------------------------- encoder
def test_encoder_rows_follow_feature_names(tmp_path):
    enc = ParalinguisticEncoder()
    waves = [harmonic(120.0), np.zeros(SR // 2, np.float32), syllables(4.0, seconds=1.0)]
    out = enc.encode(waves)
    assert out.shape == (3, P) and out.dtype == np.float32 and enc.dim == P
    for row, wave in zip(out, waves):
        expected = np.array([measure(wave)[n] for n in FEATURE_NAMES], dtype=np.float32)
        np.testing.assert_array_equal(row, expected)
    path = tmp_path / "a.wav"
    sf.write(path, waves[0], SR)
    np.testing.assert_array_equal(enc.encode_files([str(path)]), enc.encode([load_audio(str(path))]))
    assert enc.encode(waves[0]).shape == (1, P)


def test_encoder_fingerprint_and_pickle():
    enc = ParalinguisticEncoder()
    assert enc.name == "paralinguistic"
    assert enc.fingerprint() == ParalinguisticEncoder().fingerprint()
    assert enc.fingerprint() != ParalinguisticEncoder(pitch_floor=60.0).fingerprint()
    clone = pickle.loads(pickle.dumps(enc))
    assert clone.fingerprint() == enc.fingerprint()
    wave = harmonic(180.0, seconds=0.5)
    np.testing.assert_array_equal(clone.encode([wave]), enc.encode([wave]))


def test_config_changes_measures():
    wave = harmonic(150.0, amp=0.5)
    assert np.isnan(measure(wave, config=ParalinguisticConfig(silence_threshold=0.9))["f0_semitone_mean"])


# ---------------------------------------------------------------- ParaCLAP captions
def manifest(n: int, emotion=None, gender=None, valence=None, arousal=None) -> Manifest:
    return Manifest(path=[f"/c/{i}.wav" for i in range(n)],
                    valence=np.full(n, 4.0) if valence is None else valence,
                    arousal=np.full(n, 4.0) if arousal is None else arousal, emotion=emotion, gender=gender)


def column_matrix(values: np.ndarray, column: int = 0) -> np.ndarray:
    feats = np.full((len(values), P), np.nan)
    feats[:, column] = values
    return feats


def test_quantile_thresholds_are_exact():
    values = np.arange(11, dtype=float)  # quantile of value k is k / 10
    m = manifest(11)
    builder = AcousticCaptionBuilder(features=["f0_semitone_mean"]).fit(m, column_matrix(values))
    expected = ["low"] * 4 + ["normal"] * 3 + ["high"] * 4  # <= 0.3 low, >= 0.7 high
    phrase = {"low": "has a low pitch", "normal": "has a normal pitch", "high": "has a high pitch"}
    assert builder.build(m, column_matrix(values)) == [f"speaker {phrase[e]}" for e in expected]
    probe = np.array([2.99, 3.0, 3.01, 6.99, 7.0, 7.01, -5.0, 50.0])
    got = builder.levels(probe, builder.reference["f0_semitone_mean"])
    np.testing.assert_array_equal(got, [0, 0, 1, 1, 2, 2, 0, 2])


def test_thresholds_are_parameters():
    values = np.arange(11, dtype=float)
    m = manifest(11)
    builder = AcousticCaptionBuilder(features=["duration"], low=0.1, high=0.9)
    builder.fit(m, column_matrix(values, FEATURE_NAMES.index("duration")))
    levels = builder.levels(values, builder.reference["duration"])
    np.testing.assert_array_equal(levels, [0, 0] + [1] * 7 + [2, 2])
    with pytest.raises(CaptionError, match="low < high"):
        AcousticCaptionBuilder(low=0.8, high=0.2)


def naive_quantile(x: float, train: np.ndarray) -> float:
    """Empirical quantile by hand: rank k of n sits at k / (n - 1); a tied run at its middle rank; linear between."""
    ref = np.sort(train)
    n = len(ref)
    if x <= ref[0] or x >= ref[-1]:
        hits = np.flatnonzero(ref == x)
        if hits.size:
            return (hits[0] + hits[-1]) / 2 / (n - 1)
        return 0.0 if x < ref[0] else 1.0
    hits = np.flatnonzero(ref == x)
    if hits.size:
        return (hits[0] + hits[-1]) / 2 / (n - 1)
    k = np.searchsorted(ref, x) - 1  # ref[k] < x < ref[k + 1]
    return (k + (x - ref[k]) / (ref[k + 1] - ref[k])) / (n - 1)


def test_quantile_matches_naive_ranks_with_ties():
    rng = np.random.default_rng(0)
    train = np.round(rng.normal(size=60), 1)  # rounding makes ties
    probe = np.concatenate([train, rng.normal(size=40) * 1.5])
    got = quantile_of(probe, reference_points(train, 1000))
    np.testing.assert_allclose(got, [naive_quantile(x, train) for x in probe], atol=1e-12)


def test_quantile_matches_sklearn_without_ties():
    rng = np.random.default_rng(2)
    train = rng.normal(size=80)
    probe = rng.normal(size=50) * 1.5
    qt = QuantileTransformer(n_quantiles=len(train)).fit(train[:, None])
    np.testing.assert_allclose(quantile_of(probe, reference_points(train, 1000)), qt.transform(probe[:, None])[:, 0],
                               atol=1e-9)


def test_reference_ignores_nan_and_subsamples():
    values = np.array([3.0, np.nan, 1.0, 2.0, np.nan])
    assert reference_points(values, 10) == [1.0, 2.0, 3.0]
    assert reference_points(np.full(4, np.nan), 10) is None
    many = np.arange(1001, dtype=float)
    ref = reference_points(many, 11)
    np.testing.assert_allclose(ref, np.linspace(0, 1000, 11))


def test_nan_measures_are_omitted_and_labels_added():
    train = np.tile(np.arange(10, dtype=float)[:, None], (1, P))  # every measure 0..9
    m_train = manifest(10)
    builder = AcousticCaptionBuilder().fit(m_train, train)
    rows = np.full((3, P), 9.0)
    rows[1, :] = np.nan
    rows[2, FEATURE_NAMES.index("intensity_mean_db")] = 0.0
    rows[2, FEATURE_NAMES.index("jitter_local")] = np.nan
    m = manifest(3, emotion=["Anger", "", "other"], gender=["F", "male", ""])
    captions = builder.build(m, rows)
    high = [FEATURE_PHRASES[n][2] for n in FEATURE_NAMES]
    assert captions[0] == "speaker " + " and ".join(high + ["emotion is angry", "is female"])
    assert captions[1] == "speaker is male"
    third = [FEATURE_PHRASES[n][0 if n == "intensity_mean_db" else 2] for n in FEATURE_NAMES if n != "jitter_local"]
    assert captions[2] == "speaker " + " and ".join(third)
    quiet = AcousticCaptionBuilder(include_emotion=False, include_gender=False).fit(m_train, train)
    assert quiet.build(m, rows)[0] == "speaker " + " and ".join(high)


def test_all_nan_training_column_is_never_described():
    train = np.tile(np.arange(10, dtype=float)[:, None], (1, P))
    train[:, FEATURE_NAMES.index("jitter_local")] = np.nan
    builder = AcousticCaptionBuilder(include_gender=False, include_emotion=False).fit(manifest(10), train)
    caption = builder.build(manifest(1), np.full((1, P), 5.0))[0]
    assert "jitter" not in caption and "shimmer" in caption


def test_include_va_describes_label_quantiles():
    n = 11
    va = np.linspace(1, 7, n)
    m = manifest(n, valence=va, arousal=va[::-1])
    builder = AcousticCaptionBuilder(features=[], include_va=True).fit(m, np.full((n, P), np.nan))
    captions = builder.build(m, np.full((n, P), np.nan))
    assert captions[0] == "speaker has low valence and has high arousal"
    assert captions[5] == "speaker valence is at an average level and arousal is at an average level"


def test_builder_errors():
    m = manifest(4)
    builder = AcousticCaptionBuilder()
    with pytest.raises(CaptionError, match="not fitted"):
        builder.build(m, np.zeros((4, P)))
    with pytest.raises(CaptionError, match=r"shape \[4, 7\]"):
        builder.fit(m, np.zeros((3, P)))
    with pytest.raises(CaptionError, match="needs the paralinguistic features"):
        builder.fit(m, None)
    with pytest.raises(CaptionError, match="valid"):
        AcousticCaptionBuilder(features=["pitch"])


def test_serialisation_round_trip():
    rng = np.random.default_rng(1)
    train = rng.normal(size=(300, P))
    train[rng.random(train.shape) < 0.1] = np.nan
    m_train = manifest(300, emotion=["sad"] * 300, gender=["female"] * 300, valence=rng.uniform(1, 7, 300),
                       arousal=rng.uniform(1, 7, 300))
    builder = AcousticCaptionBuilder(include_va=True, n_quantiles=51).fit(m_train, train)
    spec = json.loads(json.dumps(builder.to_dict(), allow_nan=False))
    rebuilt = AcousticCaptionBuilder.from_dict(spec)
    assert rebuilt.reference == builder.reference
    test = rng.normal(size=(50, P))
    m_test = m_train.subset(np.arange(50))
    assert rebuilt.build(m_test, test) == builder.build(m_test, test)
    with pytest.raises(CaptionError, match="unknown"):
        AcousticCaptionBuilder.from_dict({**spec, "colour": 1})
    with pytest.raises(CaptionError, match="not 'acoustic'"):
        AcousticCaptionBuilder.from_dict({**spec, "builder": "lexicon"})
