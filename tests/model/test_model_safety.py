"""A model served to the public: waveforms checked like files, checkpoints validated at load, encoder drift caught."""
from __future__ import annotations

import json
import re
import time

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from emorank.data.audio import AudioLengthError, AudioReadError, SampleRateError, SilentAudioError
from emorank.cli import main
from emorank.encoders.registry import build_audio_encoder
from emorank.model.checkpoint import CheckpointError, fingerprint_identity
from emorank.model.core import EmotionRankCLAP, FeatureNormaliser, ModelConfig


def sine(freq: float, sr: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(sr * seconds))) / sr
    return (amp * (np.sin(2 * np.pi * freq * t) + 0.3 * np.sin(2 * np.pi * 3.1 * freq * t))).astype(np.float32)


def egemaps_model(**kw) -> EmotionRankCLAP:
    torch.manual_seed(0)
    norm = FeatureNormaliser("global").fit(np.random.default_rng(0).normal(size=(20, 88)))
    return EmotionRankCLAP(ModelConfig(audio_dim=88, text_dim=384, embed_dim=16, **kw), norm)


def small_model() -> EmotionRankCLAP:
    torch.manual_seed(0)
    norm = FeatureNormaliser("global").fit(np.random.default_rng(0).normal(size=(20, 6)))
    return EmotionRankCLAP(ModelConfig(audio_dim=6, text_dim=5, embed_dim=8), norm)


# -------------------------------------------------------------------------------------------------- waveforms


@pytest.mark.parametrize("dtype", [np.int16, np.int32])
def test_integer_waveforms_embed_like_the_same_float_clip(dtype):
    model = egemaps_model()
    x = sine(220.0, 16000, 1.0, amp=0.4)
    ints = np.round(x * np.iinfo(dtype).max).astype(dtype)
    a, b = model.encode_audio([x, ints])
    assert float(a @ b) > 0.999


def test_uint8_waveforms_are_centred_and_rescaled():
    model = egemaps_model()
    x = sine(220.0, 16000, 1.0, amp=0.4)
    a = model.encode_audio(x)[0]
    b = model.encode_audio(np.round(x * 127 + 128).astype(np.uint8))[0]
    assert float(a @ b) > 0.99


def test_waveforms_at_another_rate_are_resampled():
    model = egemaps_model()
    x16 = sine(220.0, 16000, 1.0, amp=0.4)
    x48 = sine(220.0, 48000, 1.0, amp=0.4)
    assert float(model.encode_audio(x16)[0] @ model.encode_audio(x48, sr=48000)[0]) > 0.99


def test_a_t_by_c_array_is_one_multichannel_waveform():
    """It was split into T waveforms of one sample each ("waveform 0: too short: 0.0000 s")."""
    model = egemaps_model()
    left, right = sine(220.0, 16000, 1.0, amp=0.4), sine(330.0, 16000, 1.0, amp=0.2)
    stereo = np.stack([left, right], axis=1)  # [T, 2]
    mono = model.encode_audio((left + right) / 2)
    for given in (stereo, torch.from_numpy(stereo), [stereo], np.round(stereo * 32767).astype(np.int16)):
        emb = model.encode_audio(given)
        assert emb.shape == (1, 16) and float(emb[0] @ mono[0]) > 0.999
    a, b = model.encode_audio([stereo, left])  # a list mixes [T, C] and [T] waveforms
    assert float(a @ mono[0]) > 0.999 and float(b @ model.encode_audio(left)[0]) > 0.999
    with pytest.raises(ValueError, match=r"one waveform of shape \[T, C\] with at most 64 channels, got shape "
                                         r"\(3, 16000\); to encode several waveforms pass a list of 1-D arrays"):
        model.encode_audio(np.stack([left, right, left])[:, :16000])


def test_waveforms_get_the_file_limits_before_any_feature_work():
    model = egemaps_model()
    t0 = time.perf_counter()
    with pytest.raises(AudioLengthError, match=r"waveform 1: too long: 600.00 s exceeds the limit of 60 s"):
        model.encode_audio([sine(220.0, 16000, 0.5), np.zeros(600 * 16000, np.int16)])
    assert time.perf_counter() - t0 < 1.0  # was ~38 s of openSMILE before the check
    with pytest.raises(SilentAudioError, match="waveform 0: silent audio"):
        model.encode_audio(np.zeros(16000, np.float32))
    bad = sine(220.0, 16000, 0.5)
    bad[10] = np.inf
    with pytest.raises(AudioReadError, match=r"waveform 0: contains 1 non-finite sample"):
        model.encode_audio(bad)
    with pytest.raises(SampleRateError, match="waveform 0: sample rate 1000003 Hz"):
        model.encode_audio(sine(220.0, 16000, 0.5), sr=1_000_003)


# ------------------------------------------------------------------------------------------ checkpoint at load


def test_non_finite_head_weights_are_refused_at_load(tmp_path):
    path = small_model().save(tmp_path / "ckpt")
    state = load_file(str(path / "heads.safetensors"))
    state["audio_proj.linear.weight"][0, 0] = float("nan")
    state["log_logit_scale"] = torch.tensor(float("inf"))
    save_file(state, str(path / "heads.safetensors"))
    with pytest.raises(CheckpointError, match=r"NaN or infinite weights in audio_proj.linear.weight, "
                                              r"log_logit_scale; .*retrain it"):
        EmotionRankCLAP.from_checkpoint(path)


def test_cli_refuses_a_nan_checkpoint_with_exit_2(tmp_path, capsys):
    path = small_model().save(tmp_path / "ckpt")
    state = load_file(str(path / "heads.safetensors"))
    state["text_proj.linear.bias"][:] = float("nan")
    save_file(state, str(path / "heads.safetensors"))
    rc = main(["evaluate", "--checkpoint", str(path), "--manifest", str(tmp_path / "missing.csv"),
               "--cache", str(tmp_path / "c.sqlite")])
    err = capsys.readouterr().err
    assert rc == 2 and "NaN or infinite weights in text_proj.linear.bias" in err and "Traceback" not in err


CRAFTED_LOAD = """
import json, resource, sys, time
from emorank.model import CheckpointError, EmotionRankCLAP

good, crafted = sys.argv[1:3]
EmotionRankCLAP.from_checkpoint(good)  # lazy imports and first allocations happen here, not in the measure
vm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmSize:")) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + (3 << 29), resource.RLIM_INFINITY))  # a guard: 1.5 GB more at most
before, start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter()
try:
    EmotionRankCLAP.from_checkpoint(crafted)
    message = "loaded"
except CheckpointError as err:
    message = str(err)
except BaseException as err:
    message = f"{type(err).__name__}: {err}"
seconds = time.perf_counter() - start
grew = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
print(json.dumps({"message": message, "seconds": seconds, "grew_mb": grew}))
"""


@pytest.mark.parametrize("dims, message", [
    ({"embed_dim": 2_000_000}, r"model.embed_dim = 2000000 is outside 1..8192"),  # 3.9 GB and 48 s before
    ({"audio_dim": 20_000, "text_dim": 20_000, "embed_dim": 4096},  # in bounds; 650 MB before the mismatch
     r"does not match its own config.json: heads.safetensors holds audio_proj.linear.weight of shape \[8, 6\], "
     r"the config asks for \[4096, 20000\]"),
])
def test_a_crafted_1kb_checkpoint_is_refused_fast_without_allocating(tmp_path, dims, message):
    import subprocess
    import sys

    good = small_model().save(tmp_path / "good")
    crafted = small_model().save(tmp_path / "crafted")
    cfg = json.loads((crafted / "config.json").read_text())
    cfg["model"].update(dims)
    (crafted / "config.json").write_text(json.dumps(cfg))
    assert sum(f.stat().st_size for f in crafted.iterdir()) < 2048
    out = subprocess.run([sys.executable, "-c", CRAFTED_LOAD, str(good), str(crafted)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["seconds"] < 1.0 and result["grew_mb"] < 50, result
    assert re.search(message, result["message"]), result["message"]


@pytest.mark.parametrize("field, value", [("temperature_init", 0.0), ("max_logit_scale", -1.0),
                                          ("audio_dim", 0), ("text_dim", -5)])
def test_sizes_and_scales_out_of_bounds_are_refused(tmp_path, field, value):
    path = small_model().save(tmp_path / "ckpt")
    cfg = json.loads((path / "config.json").read_text())
    cfg["model"][field] = value
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=f"model.{field} = .* is outside"):
        EmotionRankCLAP.from_checkpoint(path)


def test_a_heads_file_shorter_than_its_header_says_is_refused(tmp_path):
    path = small_model().save(tmp_path / "ckpt")
    data = (path / "heads.safetensors").read_bytes()
    (path / "heads.safetensors").write_bytes(data[:-4])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        EmotionRankCLAP.from_checkpoint(path)


@pytest.mark.parametrize("mutate, message", [
    (lambda n: n.update(mean=n["mean"][:-1]), "the normaliser mean has 5 values but the audio features have 6"),
    (lambda n: n.update(std=n["std"] + [1.0]), "the normaliser std has 7 values but the audio features have 6"),
    (lambda n: n.update(std=[0.0] * 6), "the normaliser std holds NaN, infinite or .*non-positive"),
    (lambda n: n.update(mean=None), "the global normaliser has no mean"),
    (lambda n: n.update(mean=["a"] * 6), "invalid config.json"),
    (lambda n: n.pop("mode"), "invalid config.json"),
])
def test_inconsistent_normaliser_is_refused_at_load(tmp_path, mutate, message):
    path = small_model().save(tmp_path / "ckpt")
    cfg = json.loads((path / "config.json").read_text())
    mutate(cfg["normaliser"])
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=message):
        EmotionRankCLAP.from_checkpoint(path)


# ------------------------------------------------------------------------------------------------ fingerprints


def test_changed_audio_encoder_settings_are_caught_by_encode_audio(tmp_path):
    current = build_audio_encoder("egemaps").fingerprint()
    other = current.replace("min_seconds=0.1", "min_seconds=0.5")
    path = egemaps_model(audio_fingerprint=other).save(tmp_path / "ckpt")
    model = EmotionRankCLAP.from_checkpoint(path)
    with pytest.raises(CheckpointError, match=r"trained on audio features .*min_seconds=0.5.* now produces "
                                              r".*min_seconds=0.1.*; retrain"):
        model.encode_audio(sine(220.0, 16000, 0.5))


def test_a_package_version_bump_alone_is_accepted(tmp_path):
    current = build_audio_encoder("egemaps").fingerprint()
    bumped = current.replace("opensmile=", "opensmile=0.0.1+")
    assert bumped != current and fingerprint_identity(bumped) == fingerprint_identity(current)
    model = EmotionRankCLAP.from_checkpoint(egemaps_model(audio_fingerprint=bumped).save(tmp_path / "ckpt"))
    assert model.encode_audio(sine(220.0, 16000, 0.5)).shape == (1, 16)


def test_changed_text_encoder_is_caught_by_encode_text(tmp_path):
    model = small_model()
    model.config.text_fingerprint = "minilm|model=folder:0000000000000000|pool=mean|norm=1|max_length=256"
    with pytest.raises(CheckpointError, match=r"trained on text features 'minilm\|model=folder:0000000000000000"):
        model.encode_text("The person is speaking in a calm voice.")


def test_max_seconds_is_a_parameter_for_waveforms_and_files(tmp_path):
    import soundfile as sf

    model = egemaps_model()
    x = sine(220.0, 16000, 2.0)
    with pytest.raises(AudioLengthError, match="limit of 1 s"):
        model.encode_audio(x, max_seconds=1.0)
    sf.write(tmp_path / "a.wav", x, 16000, subtype="FLOAT")
    with pytest.raises(AudioLengthError, match="a.wav: too long: 2.00 s exceeds the limit of 1 s"):
        model.encode_audio([tmp_path / "a.wav"], max_seconds=1.0)
    np.testing.assert_allclose(model.encode_audio(str(tmp_path / "a.wav")), model.encode_audio(x), atol=1e-5)
