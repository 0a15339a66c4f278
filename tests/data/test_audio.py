"""Tests for emorank.audio: reading, resampling, checks and their error messages, atomic writing."""
from __future__ import annotations

import hashlib
import math
import os
import pickle

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from emorank.data import audio
from emorank.data.audio import (TARGET_SR, AudioError, AudioLengthError, AudioReadError, SilentAudioError, audio_info,
                                crop_or_pad, load_audio, prepare_waveform, scan_audio, write_audio)


def sine(freq: float, sr: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(sr * seconds))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write(path, data, sr, subtype=None):
    sf.write(str(path), data, sr, subtype=subtype)
    return path


def dominant_freq(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(spec)])


def digest(path) -> tuple[str, int]:
    return hashlib.sha256(open(path, "rb").read()).hexdigest(), os.stat(path).st_mtime_ns


# ---------------------------------------------------------------------------------------------------- reading


@pytest.mark.parametrize("sr", [8000, 16000, 22050, 44100, 48000])
def test_load_resamples_to_16k_with_exact_rational_factor(tmp_path, sr):
    x = sine(440.0, sr, 0.5)
    path = write(tmp_path / "a.wav", x, sr, subtype="FLOAT")
    y = load_audio(path)
    assert y.dtype == np.float32 and y.ndim == 1
    assert len(y) == math.ceil(len(x) * TARGET_SR / sr)
    g = math.gcd(sr, TARGET_SR)
    oracle = x if sr == TARGET_SR else resample_poly(x.astype(np.float64), TARGET_SR // g, sr // g)
    np.testing.assert_allclose(y, oracle, atol=1e-6)
    assert dominant_freq(y, TARGET_SR) == pytest.approx(440.0, abs=3.0)


def test_load_other_target_rate(tmp_path):
    path = write(tmp_path / "a.wav", sine(300.0, 16000, 0.5), 16000)
    y = load_audio(path, sr=8000)
    assert len(y) == 4000
    assert dominant_freq(y, 8000) == pytest.approx(300.0, abs=3.0)


def test_stereo_is_averaged_to_mono(tmp_path):
    left, right = sine(200.0, 16000, 0.3), sine(700.0, 16000, 0.3, amp=0.25)
    path = write(tmp_path / "st.wav", np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(path), (left + right) / 2, atol=1e-7)


def test_flac_and_pcm16_read_close_to_source(tmp_path):
    x = sine(500.0, 16000, 0.25)
    for name in ("a.flac", "a.wav"):
        y = load_audio(write(tmp_path / name, x, 16000))
        np.testing.assert_allclose(y, x, atol=2.0 / 32768)


def test_audio_info_reads_header(tmp_path):
    path = write(tmp_path / "a.wav", np.zeros((22050, 2), np.float32) + 0.1, 44100)
    info = audio_info(path)
    assert (info.sample_rate, info.channels, info.frames) == (44100, 2, 22050)
    assert info.duration == pytest.approx(0.5)


def test_input_file_is_never_modified(tmp_path):
    path = write(tmp_path / "a.wav", sine(440.0, 44100, 0.2), 44100)
    before = digest(path)
    load_audio(path)
    audio_info(path)
    scan_audio([path])
    assert digest(path) == before


# ---------------------------------------------------------------------------------------------------- errors


def test_errors_are_value_errors_naming_the_file_and_survive_pickling(tmp_path):
    missing = tmp_path / "nope.wav"
    with pytest.raises(AudioReadError) as exc:
        load_audio(missing)
    assert isinstance(exc.value, ValueError) and isinstance(exc.value, AudioError)
    assert str(missing) in str(exc.value) and "not found" in str(exc.value)
    clone = pickle.loads(pickle.dumps(exc.value))
    assert type(clone) is AudioReadError and str(clone) == str(exc.value) and clone.path == str(missing)


@pytest.mark.parametrize("make, fragment", [
    (lambda p: p.mkdir(), "is a directory"),
    (lambda p: p.write_bytes(b""), "empty file (0 bytes)"),
    (lambda p: p.write_text("hello, this is a text file and not audio at all " * 20), "not a readable audio file"),
])
def test_unreadable_inputs(tmp_path, make, fragment):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioReadError, match="bad.wav") as exc:
        load_audio(path)
    assert fragment in str(exc.value)


def test_truncated_header_is_a_read_error(tmp_path):
    good = write(tmp_path / "good.wav", sine(440.0, 16000, 0.2), 16000)
    cut = tmp_path / "cut.wav"
    cut.write_bytes(good.read_bytes()[:20])
    with pytest.raises(AudioReadError, match="cut.wav.*not a readable audio file"):
        load_audio(cut)


def test_zero_length_audio(tmp_path):
    path = write(tmp_path / "empty.wav", np.zeros(0, np.float32), 16000)
    with pytest.raises(SilentAudioError, match="empty.wav.*zero-length"):
        load_audio(path, allow_silent=True)


def test_silent_audio_rejected_unless_allowed(tmp_path):
    path = write(tmp_path / "quiet.wav", np.zeros(8000, np.float32), 16000)
    with pytest.raises(SilentAudioError, match="quiet.wav.*silent audio.*allow_silent=True"):
        load_audio(path)
    y = load_audio(path, allow_silent=True)
    assert len(y) == 8000 and not y.any()


def test_silence_threshold_is_a_parameter(tmp_path):
    path = write(tmp_path / "soft.wav", sine(440.0, 16000, 0.2, amp=0.01), 16000, subtype="FLOAT")
    assert load_audio(path).size > 0
    with pytest.raises(SilentAudioError, match="below the threshold"):
        load_audio(path, silence_threshold=0.05)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples(tmp_path, bad):
    x = sine(440.0, 16000, 0.2)
    x[100:103] = bad
    path = write(tmp_path / "nan.wav", x, 16000, subtype="FLOAT")
    with pytest.raises(AudioReadError, match=r"nan.wav.*3 non-finite sample\(s\)"):
        load_audio(path)


def test_too_long_is_rejected_from_the_header_without_decoding(tmp_path, monkeypatch):
    # 61 s at 4 kHz (the lowest accepted rate): a long file that is small on disk.
    path = write(tmp_path / "long.wav", sine(50.0, 4000, 61.0), 4000)

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded a file that the header already shows is too long")

    monkeypatch.setattr(audio, "_read_frames", no_decoding)
    with pytest.raises(AudioLengthError, match=r"long.wav.*too long: 61.00 s exceeds the limit of 60 s"):
        load_audio(path)
    with pytest.raises(AudioLengthError, match="limit of 30 s"):
        load_audio(path, max_seconds=30.0)


def test_max_seconds_none_disables_the_limit(tmp_path):
    path = write(tmp_path / "long.wav", sine(50.0, 4000, 61.0), 4000)
    assert len(load_audio(path, max_seconds=None)) == 61 * 16000


def test_decoding_stops_at_the_limit_when_the_header_understates(tmp_path, monkeypatch):
    path = write(tmp_path / "liar.wav", sine(50.0, 4000, 5.0), 4000)
    real_info = audio.audio_info
    seen = {}

    def lying_info(p):
        info = real_info(p)
        return audio.AudioInfo(info.path, info.sample_rate, info.channels, 4000, info.format, info.subtype)

    real_read = audio._read_frames

    def spy(p, max_frames):
        data, sr = real_read(p, max_frames)
        seen["frames"] = data.shape[0]
        return data, sr

    monkeypatch.setattr(audio, "audio_info", lying_info)
    monkeypatch.setattr(audio, "_read_frames", spy)
    with pytest.raises(AudioLengthError, match="too long"):
        load_audio(path, max_seconds=2.0)
    assert seen["frames"] == 8001  # one frame past the limit, not the whole 20000


def test_too_short(tmp_path):
    path = write(tmp_path / "blip.wav", sine(440.0, 16000, 0.01), 16000)
    with pytest.raises(AudioLengthError, match=r"blip.wav.*too short: 0.0100 s is below the minimum of 0.05 s"):
        load_audio(path)
    assert len(load_audio(path, min_seconds=None)) == 160


# ---------------------------------------------------------------------------------------------------- in memory


def test_prepare_waveform_matches_load_audio(tmp_path):
    x = np.stack([sine(300.0, 22050, 0.3), sine(600.0, 22050, 0.3)], axis=1)
    path = write(tmp_path / "a.wav", x, 22050, subtype="FLOAT")
    np.testing.assert_allclose(prepare_waveform(x, 22050), load_audio(path), atol=1e-7)


def test_prepare_waveform_int16_and_errors():
    x = (sine(440.0, 16000, 0.2) * 32767).astype(np.int16)
    y = prepare_waveform(x, 16000)
    np.testing.assert_allclose(y, x / 32768.0, atol=1e-7)
    with pytest.raises(SilentAudioError, match="mic.*zero-length"):
        prepare_waveform(np.zeros(0, np.float32), 16000, name="mic", min_seconds=None)
    with pytest.raises(AudioReadError, match="shape"):
        prepare_waveform(np.zeros((2, 2, 2)), 16000)


# ---------------------------------------------------------------------------------------------------- crop/pad


def test_crop_keeps_the_start_and_pad_appends_zeros():
    x = np.arange(10, dtype=np.float32)
    copy = x.copy()
    np.testing.assert_array_equal(crop_or_pad(x, 4), x[:4])
    padded = crop_or_pad(x, 15)
    np.testing.assert_array_equal(padded[:10], x)
    assert not padded[10:].any() and padded.dtype == x.dtype
    np.testing.assert_array_equal(crop_or_pad(x, 10), x)
    np.testing.assert_array_equal(x, copy)
    assert crop_or_pad(x, 10) is not x


def test_crop_or_pad_rejects_bad_arguments():
    with pytest.raises(ValueError, match="positive integer"):
        crop_or_pad(np.zeros(4), 0)
    with pytest.raises(ValueError, match="mono"):
        crop_or_pad(np.zeros((4, 2)), 3)


# ---------------------------------------------------------------------------------------------------- writing


def test_write_round_trip_and_no_temp_files(tmp_path):
    x = sine(440.0, 16000, 0.3)
    target = tmp_path / "sub" / "out.wav"
    write_audio(target, x, 16000)
    y, sr = sf.read(str(target), dtype="float32")
    assert sr == 16000 and sf.info(str(target)).subtype == "PCM_16"
    np.testing.assert_allclose(y, x, atol=1.0 / 32768)
    assert os.listdir(target.parent) == ["out.wav"]
    assert os.stat(target).st_mode & 0o777 == 0o644


def test_write_replaces_existing_file_and_clips_pcm(tmp_path):
    target = tmp_path / "out.flac"
    write_audio(target, sine(440.0, 16000, 0.2), 16000)
    loud = np.array([2.0, -3.0, 0.5] * 1000, dtype=np.float32)
    write_audio(target, loud, 16000)
    y, _ = sf.read(str(target), dtype="float32")
    np.testing.assert_allclose(y, np.clip(loud, -1, 1), atol=1.0 / 32768)


def test_interrupted_write_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "out.wav"
    write_audio(target, sine(440.0, 16000, 0.2), 16000)
    before = digest(target)

    def broken_write(f, data, sr, **kwargs):
        f.write(b"RIFF partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(audio.sf, "write", broken_write)
    with pytest.raises(KeyboardInterrupt):
        write_audio(target, sine(880.0, 16000, 0.2), 16000)
    assert digest(target) == before
    assert os.listdir(tmp_path) == ["out.wav"]


def test_write_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match=r"out.xyz.*extension '.xyz'"):
        write_audio(tmp_path / "out.xyz", np.zeros(10), 16000)
    with pytest.raises(ValueError, match="NaN or inf"):
        write_audio(tmp_path / "n.wav", np.array([0.0, np.nan]), 16000)
    with pytest.raises(ValueError, match="sample rate"):
        write_audio(tmp_path / "s.wav", np.zeros(10), 0)
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------------------------------------------- scanning


def test_scan_audio_separates_good_and_bad(tmp_path):
    good = write(tmp_path / "good.wav", sine(440.0, 16000, 0.2), 16000)
    silent = write(tmp_path / "silent.wav", np.zeros(4000, np.float32), 16000)
    long = write(tmp_path / "long.wav", sine(50.0, 4000, 61.0), 4000)
    junk = tmp_path / "junk.wav"
    junk.write_text("not audio " * 50)
    paths = [good, silent, tmp_path / "missing.wav", junk, long]
    ok, skipped = scan_audio(paths)
    assert ok == [str(good)]
    reasons = dict(skipped)
    assert list(reasons) == [str(p) for p in paths[1:]]
    assert "silent" in reasons[str(silent)] and "not found" in reasons[str(tmp_path / "missing.wav")]
    assert "not a readable audio file" in reasons[str(junk)] and "too long" in reasons[str(long)]

    ok, skipped = scan_audio(paths, allow_silent=True, max_seconds=None)
    assert ok == [str(good), str(silent), str(long)]

    # Header-only scan: silence is not detected (it needs decoding), the rest is.
    ok, skipped = scan_audio(paths, decode=False)
    assert ok == [str(good), str(silent)] and len(skipped) == 3
