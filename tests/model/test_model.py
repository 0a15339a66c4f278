import json
import os

import numpy as np
import pytest
import torch

from emorank.model.checkpoint import CheckpointError, ModelConfig, list_checkpoints, read_checkpoint_config
from emorank.model.core import EmotionRankCLAP, FeatureNormaliser


def small_model(**kw) -> EmotionRankCLAP:
    torch.manual_seed(0)
    cfg = ModelConfig(audio_dim=6, text_dim=5, embed_dim=8, **kw)
    norm = FeatureNormaliser("global").fit(np.random.default_rng(0).normal(size=(20, 6)))
    return EmotionRankCLAP(cfg, norm)


def test_forward_returns_unit_embeddings_and_scale():
    model = small_model(temperature_init=0.5)
    out = model(torch.randn(4, 6), torch.randn(4, 5))
    assert set(out) == {"audio", "text", "logit_scale"}
    assert out["audio"].shape == (4, 8) and out["text"].shape == (4, 8)
    assert torch.allclose(out["audio"].norm(dim=1), torch.ones(4), atol=1e-5)
    assert float(out["logit_scale"].detach()) == pytest.approx(2.0)


def test_logit_scale_is_clamped_at_max():
    model = small_model(max_logit_scale=100.0)
    with torch.no_grad():
        model.log_logit_scale.fill_(10.0)
    model.clamp_logit_scale()
    assert model.logit_scale.item() == pytest.approx(100.0, rel=1e-5)


def test_checkpoint_round_trip_gives_identical_embeddings(tmp_path):
    model = small_model()
    feats = np.random.default_rng(1).normal(size=(7, 6)).astype(np.float32)
    path = model.save(tmp_path / "ckpt", metrics={"x": 1.5}, system={"name": "emotionrankclap"})
    loaded = EmotionRankCLAP.from_checkpoint(path)
    np.testing.assert_array_equal(model.embed_audio_features(feats), loaded.embed_audio_features(feats))
    assert loaded.extra["metrics"] == {"x": 1.5}
    assert loaded.config == model.config
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "heads.safetensors"]


def test_save_replaces_existing_checkpoint_without_leftovers(tmp_path):
    model = small_model()
    model.save(tmp_path / "ckpt")
    with torch.no_grad():
        model.audio_proj.linear.bias.add_(1.0)
    model.save(tmp_path / "ckpt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    loaded = EmotionRankCLAP.from_checkpoint(tmp_path / "ckpt")
    assert torch.equal(loaded.audio_proj.linear.bias, model.audio_proj.linear.bias)


def test_interrupted_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    model = small_model()
    model.save(tmp_path / "ckpt")
    before = (tmp_path / "ckpt" / "heads.safetensors").read_bytes()

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr("safetensors.torch.save_file", boom)
    with pytest.raises(KeyboardInterrupt):
        model.save(tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "heads.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_strict_loading_rejects_mismatched_weights(tmp_path):
    path = small_model().save(tmp_path / "ckpt")
    cfg = json.loads((path / "config.json").read_text())
    cfg["model"]["audio_dim"] = 99
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="does not match"):
        EmotionRankCLAP.from_checkpoint(path)


@pytest.mark.parametrize("mutate, message", [
    (lambda p: (p / "config.json").unlink(), "config.json is missing"),
    (lambda p: (p / "config.json").write_text("{not json"), "corrupt"),
    (lambda p: (p / "config.json").write_text(json.dumps({"format": "other"})), "not an emorank checkpoint"),
    (lambda p: (p / "heads.safetensors").write_bytes(b"garbage"), "cannot read"),
])
def test_broken_checkpoints_give_clear_errors(tmp_path, mutate, message):
    path = small_model().save(tmp_path / "ckpt")
    mutate(path)
    with pytest.raises(CheckpointError, match=message):
        EmotionRankCLAP.from_checkpoint(path)


def test_missing_checkpoint_and_unknown_config_keys(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        read_checkpoint_config(tmp_path / "nope")
    path = small_model().save(tmp_path / "ckpt")
    cfg = json.loads((path / "config.json").read_text())
    cfg["model"]["future_option"] = 1
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="future_option"):
        EmotionRankCLAP.from_checkpoint(path)


def test_speaker_normalisation_removes_speaker_offsets():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(40, 3)).astype(np.float32)
    speakers = ["a"] * 20 + ["b"] * 20
    shifted = base.copy()
    shifted[20:] += 50.0  # a speaker with a very different voice
    norm = FeatureNormaliser("speaker").fit(shifted)
    out = norm(shifted, speakers)
    for spk in ("a", "b"):
        rows = [i for i, s in enumerate(speakers) if s == spk]
        np.testing.assert_allclose(out[rows].mean(axis=0), 0.0, atol=1e-5)
        np.testing.assert_allclose(out[rows].std(axis=0), 1.0, atol=1e-4)
    # unknown speakers and single clips fall back to the global statistics
    single = norm(shifted[:1], [""])
    np.testing.assert_allclose(single, (shifted[:1] - norm.mean) / norm.std, rtol=1e-5)


def test_normaliser_round_trip_and_nan_features():
    x = np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32)
    norm = FeatureNormaliser("global").fit(x)
    again = FeatureNormaliser.from_dict(json.loads(json.dumps(norm.to_dict())))
    x[0, 0] = np.nan
    assert np.isfinite(again(x)).all()
    np.testing.assert_allclose(again(x[1:]), norm(x[1:]))
    with pytest.raises(ValueError, match="valid: speaker, global, utterance, none"):
        FeatureNormaliser("zscore")


def test_speaker_normalisation_matches_a_mask_per_speaker_oracle():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 6)).astype(np.float32) * rng.uniform(0.5, 3.0, size=6).astype(np.float32)
    names = np.array(["", "a", "b", "c", "rare", "d"], dtype=object)
    speakers = list(names[rng.choice(6, size=400, p=[0.1, 0.3, 0.3, 0.2, 0.005, 0.095])])
    norm = FeatureNormaliser("speaker").fit(x)
    want = (x - norm.mean) / norm.std  # the former code: one boolean mask over every row per speaker
    spk = np.asarray(speakers, dtype=object)
    for name in np.unique(spk):
        rows = np.flatnonzero(spk == name)
        if name and len(rows) >= norm.min_speaker_rows:
            want[rows] = (x[rows] - x[rows].mean(axis=0)) / np.maximum(x[rows].std(axis=0), 1e-6)
    got = norm(x, speakers)
    np.testing.assert_array_equal(got, want.astype(np.float32))
    assert got.dtype == np.float32
    # rare and unknown speakers keep the global statistics; known ones are z-scored within themselves
    rare = spk == "rare"
    np.testing.assert_array_equal(got[rare], ((x[rare] - norm.mean) / norm.std).astype(np.float32))
    np.testing.assert_allclose(got[spk == "a"].mean(axis=0), 0.0, atol=1e-5)


# ------------------------------------------------------------------------------- saving, killed at any instant
KILLED_SAVE = """
import os, signal, sys
import torch
from emorank.model import EmotionRankCLAP, FeatureNormaliser, ModelConfig

path, mode = sys.argv[1], sys.argv[2]
torch.manual_seed(0)
model = EmotionRankCLAP(ModelConfig(audio_dim=6, text_dim=5, embed_dim=8), FeatureNormaliser("none"))
model.save(path)
with torch.no_grad():
    model.audio_proj.linear.bias.fill_(7.0)  # the new checkpoint: every audio bias 7
kill = lambda: os.kill(os.getpid(), signal.SIGKILL)
if mode == "between renames":  # a system without an atomic swap: two renames, killed after the first
    try:
        import emorank.model.atomic
        emorank.model.atomic.exchange = lambda a, b: False
    except ImportError:
        pass
    real = os.replace
    def replace(src, dst):
        real(src, dst)
        if os.path.abspath(src) == os.path.abspath(path):
            kill()
    os.replace = replace
elif mode == "after the swap":
    import emorank.model.atomic
    real = emorank.model.atomic.exchange
    emorank.model.atomic.exchange = lambda a, b: (real(a, b), kill())
elif mode == "while writing":
    import safetensors.torch
    real = safetensors.torch.save_file
    safetensors.torch.save_file = lambda *a, **k: (real(*a, **k), kill())
model.save(path)
"""


def killed_save(path, mode: str):
    """Save a checkpoint at `path`, then a second one (audio bias 7) in a child process killed with SIGKILL at
    `mode`."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", KILLED_SAVE, str(path), mode], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == -9, out.stderr[-2000:]


@pytest.mark.parametrize("mode, new", [("between renames", True), ("after the swap", True),
                                       ("while writing", False)])
def test_a_save_killed_at_any_point_leaves_a_checkpoint_and_the_next_load_cleans_up(tmp_path, mode, new):
    killed_save(tmp_path / "ckpt", mode)
    loaded = EmotionRankCLAP.from_checkpoint(tmp_path / "ckpt")  # "not found" when killed between the renames
    assert bool((loaded.audio_proj.linear.bias == 7.0).all()) == new
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # temporary folders of the dead save: gone


def test_a_run_whose_save_was_killed_between_renames_is_listed(tmp_path):
    run = tmp_path / "runs" / "mine"
    run.mkdir(parents=True)
    killed_save(run / "checkpoint", "between renames")
    assert not (run / "checkpoint").exists()  # so the app listed no such run
    assert list(list_checkpoints([], tmp_path / "runs")) == ["runs/mine"]
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint"]


def test_no_instant_of_a_save_leaves_the_path_without_a_checkpoint(tmp_path, monkeypatch):
    """After every rename or removal a save makes, the path holds a whole checkpoint (old or new)."""
    from emorank.model import atomic

    model, path = small_model(), tmp_path / "ckpt"
    model.save(path)
    steps = []

    def checked(fn):
        def run(*args, **kwargs):
            out = fn(*args, **kwargs)
            steps.append(fn.__name__)
            read_checkpoint_config(path)  # raises CheckpointError "not found" in a gap
            assert (path / "heads.safetensors").is_file()
            return out
        return run

    monkeypatch.setattr("os.replace", checked(os.replace))
    monkeypatch.setattr(atomic, "exchange", checked(atomic.exchange))
    monkeypatch.setattr(atomic, "remove", checked(atomic.remove))
    with torch.no_grad():
        model.audio_proj.linear.bias.fill_(3.0)
    model.save(path)
    assert steps and bool((EmotionRankCLAP.from_checkpoint(path).audio_proj.linear.bias == 3.0).all())


def test_leftovers_of_a_live_save_are_left_alone_and_old_style_leftovers_are_recovered(tmp_path):
    import subprocess

    model = small_model()
    with subprocess.Popen(["sleep", "30"]) as live:
        in_progress = tmp_path / f".ckpt.tmp-{live.pid}-abc123"
        model.save(in_progress)
        model.save(tmp_path / "ckpt")
        read_checkpoint_config(tmp_path / "ckpt")
        assert in_progress.is_dir()  # another process is writing it
        live.kill()
    live.wait()
    read_checkpoint_config(tmp_path / "ckpt")
    assert not in_progress.exists()  # its writer is gone
    # emorank 0.x: killed between its renames, leaving ".ckpt.old-PID" (previous) and ".ckpt.XXXXXXXX" (new)
    with torch.no_grad():
        model.audio_proj.linear.bias.fill_(5.0)
    model.save(tmp_path / "new")
    (tmp_path / "ckpt").rename(tmp_path / f".ckpt.old-{live.pid}")
    (tmp_path / "new").rename(tmp_path / ".ckpt.k2x_9abc")
    loaded = EmotionRankCLAP.from_checkpoint(tmp_path / "ckpt")
    assert bool((loaded.audio_proj.linear.bias == 5.0).all())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_utterance_normalisation_is_per_clip_and_ignores_speakers():
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(30, 8)) * rng.uniform(0.5, 4.0, size=8) + rng.normal(size=8) * 10).astype(np.float32)
    norm = FeatureNormaliser("utterance").fit(x)
    out = norm(x)
    g = (x - norm.mean) / norm.std  # the global z-score first puts the dimensions on one scale ...
    want = (g - g.mean(axis=1, keepdims=True)) / g.std(axis=1, keepdims=True)  # ... then each clip over its dims
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.mean(axis=1), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=1), 1.0, atol=1e-4)
    # one clip alone gives the same row as in a batch, with or without speakers
    np.testing.assert_allclose(norm(x[3:4]), out[3:4], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(norm(x, ["a"] * 30), out, rtol=1e-6, atol=1e-6)
    # a per-clip offset and scale of the whole standardised vector is removed
    shifted = (g[:2] * 3.0 + 5.0) * norm.std + norm.mean
    np.testing.assert_allclose(norm(shifted), out[:2], rtol=1e-3, atol=1e-3)
    again = FeatureNormaliser.from_dict(json.loads(json.dumps(norm.to_dict())))
    np.testing.assert_allclose(again(x), out)
