"""Hostile or broken audio: sample-rate bombs, bounded resampling, truncated files, in-memory arrays."""
from __future__ import annotations

import struct
import time
import tracemalloc
from fractions import Fraction

import numpy as np
import pytest
import soundfile as sf

from emorank.data import audio
from emorank.data.audio import (MAX_RESAMPLE_FACTOR, AudioLengthError, AudioReadError, SampleRateError,
                                SilentAudioError, TruncatedAudioError, audio_info, load_audio, prepare_waveform,
                                resample, resample_factors, scan_audio)


def sine(freq: float, sr: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(sr * seconds))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def with_header_rate(src, dst, rate: int):
    """Copy a PCM-16 mono WAV, rewriting the sample rate (and byte rate) its header declares."""
    data = bytearray(src.read_bytes())
    assert data[12:16] == b"fmt "
    struct.pack_into("<II", data, 24, rate, rate * 2)
    dst.write_bytes(bytes(data))
    return dst


# ------------------------------------------------------------------------------------------- sample-rate bombs


def test_megahertz_header_is_refused_before_decoding(tmp_path, monkeypatch):
    src = tmp_path / "src.wav"
    sf.write(str(src), sine(440.0, 16000, 9.7), 16000)  # ~310 kB of samples
    bomb = with_header_rate(src, tmp_path / "bomb.wav", 1_000_003)

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded a file whose header rate is already out of range")

    monkeypatch.setattr(audio, "_read_frames", no_decoding)
    tracemalloc.start()
    t0 = time.perf_counter()
    with pytest.raises(SampleRateError, match=r"bomb.wav: sample rate 1000003 Hz is outside the supported range "
                                              r"4000..192000 Hz") as exc:
        load_audio(bomb)
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert seconds < 0.5 and peak < 5_000_000
    assert isinstance(exc.value, AudioReadError)  # callers that catch read errors keep working
    ok, skipped = scan_audio([bomb], decode=False)
    assert ok == [] and "sample rate 1000003 Hz" in skipped[0][1]


@pytest.mark.parametrize("rate", [3999, 192001, 1_000_003])
def test_rates_outside_the_range_are_refused_for_files_and_arrays(tmp_path, rate):
    src = tmp_path / "src.wav"
    sf.write(str(src), sine(440.0, 16000, 0.5), 16000)
    path = with_header_rate(src, tmp_path / "odd.wav", rate)
    with pytest.raises(SampleRateError, match=f"sample rate {rate} Hz"):
        audio_info(path)
    with pytest.raises(SampleRateError, match=f"mic: sample rate {rate} Hz"):
        prepare_waveform(sine(440.0, 16000, 0.5), rate, name="mic")


@pytest.mark.parametrize("rate", [4000, 192000])
def test_the_range_ends_are_accepted(tmp_path, rate):
    path = tmp_path / "edge.wav"
    sf.write(str(path), sine(440.0, rate, 0.3), rate)
    y = load_audio(path)
    assert len(y) == int(np.ceil(0.3 * rate * 16000 / rate))


def test_common_rates_keep_exact_factors():
    for sr in (8000, 11025, 22050, 32000, 37800, 44100, 48000, 88200, 96000, 176400, 192000):
        up, down = resample_factors(sr, 16000)
        assert Fraction(up, down) == Fraction(16000, sr)


def test_odd_rates_get_bounded_factors_and_a_tiny_rate_error():
    worst = 0.0
    for sr in list(range(4001, 192000, 997)) + [191999, 176089, 159983]:
        up, down = resample_factors(sr, 16000)
        assert max(up, down) <= MAX_RESAMPLE_FACTOR
        worst = max(worst, abs(up / down * sr / 16000 - 1))
    assert worst <= 1.0 / MAX_RESAMPLE_FACTOR


def test_resampling_an_odd_rate_is_cheap_and_keeps_the_pitch():
    sr = 191999  # reduced exactly, 16000/191999 would need a filter of 3.8 million taps
    x = sine(1000.0, sr, 2.0)
    tracemalloc.start()
    t0 = time.perf_counter()
    y = resample(x, sr)
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert seconds < 0.5 and peak < 40_000_000
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    assert float(np.fft.rfftfreq(len(y), 1 / 16000)[np.argmax(spec)]) == pytest.approx(1000.0, abs=2.0)


# ------------------------------------------------------------------------------------------------- truncation


def test_truncated_wav_is_refused_with_both_frame_counts(tmp_path):
    good = tmp_path / "good.wav"
    sf.write(str(good), sine(440.0, 16000, 1.0), 16000)  # 16000 frames, PCM-16
    raw = good.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(raw[:44 + (len(raw) - 44) // 3])
    message = r"cut.wav: truncated: header declares 16000 frames, file holds 5333"
    with pytest.raises(TruncatedAudioError, match=message):
        load_audio(cut)
    with pytest.raises(TruncatedAudioError, match=message):
        audio_info(cut)
    ok, skipped = scan_audio([good, cut], decode=False)
    assert ok == [str(good)] and "truncated" in skipped[0][1]
    assert len(load_audio(good)) == 16000


def test_wav_with_extra_chunks_and_odd_sizes_is_not_mistaken_for_truncated(tmp_path):
    good = tmp_path / "good.wav"
    sf.write(str(good), sine(440.0, 16000, 0.5), 16000)
    raw = good.read_bytes()
    # Insert an odd-sized LIST chunk (padded to even) between fmt and data, and fix the RIFF size.
    fmt_end = 12 + 8 + struct.unpack("<I", raw[16:20])[0]
    extra = b"LIST" + struct.pack("<I", 5) + b"INFOx" + b"\x00"
    body = raw[:fmt_end] + extra + raw[fmt_end:]
    body = body[:4] + struct.pack("<I", len(body) - 8) + body[8:]
    path = tmp_path / "chunks.wav"
    path.write_bytes(body)
    assert audio_info(path).frames == 8000
    assert len(load_audio(path)) == 8000


def test_truncated_compressed_file_is_refused(tmp_path):
    good = tmp_path / "good.flac"
    sf.write(str(good), np.random.default_rng(0).uniform(-0.5, 0.5, 16000).astype(np.float32), 16000)
    cut = tmp_path / "cut.flac"
    cut.write_bytes(good.read_bytes()[:good.stat().st_size // 3])
    with pytest.raises(AudioReadError, match="cut.flac"):
        load_audio(cut)


# ---------------------------------------------------------------------------------------------- in-memory arrays


@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.uint8])
def test_integer_arrays_are_rescaled_to_full_scale(dtype):
    x = sine(440.0, 16000, 0.3, amp=0.8)
    info = np.iinfo(dtype)
    if info.min == 0:  # unsigned 8-bit PCM: 128 is silence
        ints = np.round(x * 127 + 128).astype(dtype)
    else:
        ints = np.round(x * info.max).astype(dtype)
    y = prepare_waveform(ints, 16000)
    np.testing.assert_allclose(y, x, atol=2.0 / (info.max // 2 + 1) + 1e-6)


def test_arrays_get_the_same_length_silence_and_finiteness_checks_as_files():
    with pytest.raises(AudioLengthError, match=r"mic: too long: 600.00 s exceeds the limit of 60 s"):
        prepare_waveform(np.zeros(600 * 16000, np.int16), 16000, name="mic")
    with pytest.raises(SilentAudioError, match="mic: silent audio"):
        prepare_waveform(np.full(8000, 128, np.uint8), 16000, name="mic")
    x = sine(440.0, 16000, 0.3)
    x[5] = np.nan
    with pytest.raises(AudioReadError, match=r"mic: contains 1 non-finite sample"):
        prepare_waveform(x, 16000, name="mic")
    with pytest.raises(AudioReadError, match="mic: invalid sample rate"):
        prepare_waveform(x, 0, name="mic")
    with pytest.raises(AudioReadError, match="mic: expected real-valued audio samples"):
        prepare_waveform(np.ones(8000, bool), 16000, name="mic")
