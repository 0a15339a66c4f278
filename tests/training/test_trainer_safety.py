"""Training that a public Space can expose: config validation, pickle-free resume, honest stop reporting."""
from __future__ import annotations

import json
import math
import os
import pickle
import threading

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from emorank.cli import main
from emorank.model.core import EmotionRankCLAP
from emorank.training.trainer import (LEGACY_STATE_FILE, STATE_FILE, ConfigError, ResumeMismatchError,
                                      ResumeStateError, TrainConfig, train)

from conftest import make_prepared

CPU = {"device": "cpu", "batch_size": 32, "lr": 1e-3}


# ------------------------------------------------------------------------------------------------- validation


@pytest.mark.parametrize("field, value, fragment", [
    ("epochs", 0, "epochs must be a whole number from 1 to 10000, got 0"),
    ("epochs", -3, "epochs must be a whole number from 1 to 10000, got -3"),
    ("epochs", 10001, "from 1 to 10000"),
    ("epochs", 2.5, "epochs must be a whole number"),
    ("epochs", True, "epochs must be a whole number"),
    ("batch_size", 1, "batch_size must be a whole number from 2 to 8192"),
    ("batch_size", 0, "batch_size must be a whole number from 2 to 8192"),
    ("lr", 0.0, "lr must be a finite number greater than 0 and less than 1, got 0.0"),
    ("lr", -1e-3, "lr must be a finite number greater than 0"),
    ("lr", math.nan, "lr must be a finite number"),
    ("lr", math.inf, "lr must be a finite number"),
    ("lr", 1.0, "less than 1"),
    ("scale_lr", 0.0, "scale_lr must be a finite number greater than 0"),
    ("weight_decay", -0.1, "weight_decay must be a finite number 0 or more"),
    ("weight_decay", math.nan, "weight_decay must be a finite number"),
    ("temperature_init", 0.0, "temperature_init must be a finite number greater than 0"),
    ("temperature_init", math.inf, "temperature_init must be a finite number"),
    ("max_logit_scale", 0.5, "max_logit_scale must be a finite number 1 or more"),
    ("embed_dim", 0, "embed_dim must be a whole number from 1 to 8192"),
    ("seed", -1, "seed must be a whole number from 0 to 4294967295"),
    ("workers", 0, "workers must be a whole number from 1 to 256"),
    ("system", "nope", "unknown system 'nope'; valid system names: .*emotionrankclap"),
    ("loss", "nope", "unknown loss 'nope'; valid loss names: .*rnc"),
    ("captions", "nope", "unknown captions 'nope'; valid captions names: .*va"),
    ("audio_encoder", "nope", "unknown audio_encoder 'nope'; valid audio_encoder names: egemaps"),
    ("text_encoder", "nope", "unknown text_encoder 'nope'; valid text_encoder names: minilm"),
    ("audio_norm", "z", "unknown audio_norm 'z'; valid audio_norm names: auto, speaker, global, utterance, none"),
    ("device", "gpu", "device must be auto, cpu, mps, cuda or cuda:N, got 'gpu'"),
    ("loss_kwargs", None, "loss_kwargs must be a dict"),
])
def test_validate_names_the_field_and_its_range(field, value, fragment):
    config = TrainConfig(**{field: value})
    with pytest.raises(ConfigError, match=fragment) as exc:
        config.validate()
    assert isinstance(exc.value, ValueError) and "\n" not in str(exc.value)


def test_defaults_and_edge_values_are_valid():
    TrainConfig().validate()
    TrainConfig(epochs=1, batch_size=2, lr=0.5, weight_decay=0.0, device="cuda:1", seed=2**32 - 1).validate()
    TrainConfig(epochs=10000, loss="rnc", captions="va", workers=1, scale_lr=1e-2).validate()


def test_train_refuses_an_invalid_config_before_any_work(tmp_path):
    data = make_prepared(n_train=40, n_dev=20)
    for bad in (TrainConfig(epochs=0, device="cpu"), TrainConfig(batch_size=1, device="cpu")):
        with pytest.raises(ConfigError):
            train(data.manifest, bad, tmp_path / "run", data=data, progress=False)
    assert not (tmp_path / "run").exists()  # no untrained checkpoint


@pytest.mark.parametrize("flags, fragment", [
    (["--epochs", "0"], "epochs must be a whole number from 1 to 10000, got 0"),
    (["--epochs", "-3"], "epochs must be a whole number from 1 to 10000, got -3"),
    (["--batch-size", "1"], "batch_size must be a whole number from 2"),
    (["--batch-size", "0"], "batch_size must be a whole number from 2"),
    (["--lr", "nan"], "lr must be a finite number"),
])
def test_cli_train_refuses_bad_flags_before_reading_the_manifest(tmp_path, capsys, flags, fragment):
    # The manifest does not exist: a config error must come first, with exit status 2 and no traceback.
    rc = main(["train", "--manifest", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "run"),
               "--cache", str(tmp_path / "cache.sqlite"), *flags])
    err = capsys.readouterr().err
    assert rc == 2 and fragment in err and "Traceback" not in err and "range() arg" not in err
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------------------------------- resume


def stopped_run(tmp_path, cfg, stop_epoch=0):
    data = make_prepared()
    stop = threading.Event()

    def on_event(e):
        if e["event"] == "epoch" and e["epoch"] == stop_epoch:
            stop.set()

    result = train(data.manifest, cfg, tmp_path / "run", data=data, on_event=on_event, stop=stop, progress=False)
    assert result.stopped
    return data


def test_state_is_safetensors_with_json_metadata_not_a_pickle(tmp_path):
    cfg = TrainConfig(epochs=4, **CPU)
    stopped_run(tmp_path, cfg)
    state = tmp_path / "run" / STATE_FILE
    assert state.is_file() and not (tmp_path / "run" / LEGACY_STATE_FILE).exists()
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.endswith(".tmp")]
    with safe_open(str(state), framework="pt") as f:
        meta = json.loads(f.metadata()["emorank"])
        assert f.get_tensor("generator").dtype == torch.uint8
        assert any(k.startswith("optimizer.") for k in f.keys()) and any(k.startswith("best.") for k in f.keys())
    assert meta["format"] == "emorank-train-state" and meta["epoch"] == 0 and meta["config"]["epochs"] == 4


KILLED_STATE_WRITE = """
import os, signal, sys
sys.path.insert(0, sys.argv[2])
import safetensors.torch
from conftest import make_prepared
from emorank.training.trainer import TrainConfig, train

real = safetensors.torch.save_file
def save_file(tensors, filename, metadata=None):  # the state file written, then killed before its rename
    real(tensors, filename, metadata=metadata)
    if metadata and "emorank" in metadata:
        os.kill(os.getpid(), signal.SIGKILL)
safetensors.torch.save_file = save_file
data = make_prepared(n_train=64, n_dev=32)
train(data.manifest, TrainConfig(epochs=3, device="cpu", batch_size=32, lr=1e-3), sys.argv[1], data=data,
      progress=False)
"""


def test_state_files_of_a_run_killed_while_writing_are_removed_at_the_next_start(tmp_path):
    import subprocess
    import sys

    run = tmp_path / "run"
    out = subprocess.run([sys.executable, "-c", KILLED_STATE_WRITE, str(run), os.path.dirname(os.path.dirname(__file__))],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == -9, out.stderr[-2000:]
    leftovers = [p.name for p in run.iterdir() if p.name.startswith(f".{STATE_FILE}.")]
    assert len(leftovers) == 1 and not (run / STATE_FILE).exists()
    (run / f".{STATE_FILE}.k2x_9abc.tmp").write_bytes(b"left by emorank 0.x")
    data = make_prepared(n_train=64, n_dev=32)
    train(data.manifest, TrainConfig(epochs=1, **CPU), run, data=data, resume=True, progress=False)
    assert not [p.name for p in run.iterdir() if p.name.startswith(f".{STATE_FILE}.")]


class _Payload:
    """Unpickling this writes a marker file: proof that a loader ran code from the state file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickled_legacy_state_is_refused_without_being_unpickled(tmp_path):
    data = make_prepared()
    marker = tmp_path / "pwned"
    (tmp_path / "run").mkdir()
    torch.save({"model": _Payload(marker)}, tmp_path / "run" / LEGACY_STATE_FILE)
    with pytest.raises(ResumeStateError, match=r"train_state.pt: it is a pickled state from an older emorank.*"
                                               r"without --resume"):
        train(data.manifest, TrainConfig(epochs=2, **CPU), tmp_path / "run", data=data, resume=True,
              progress=False)
    assert not marker.exists()


def test_crafted_pickle_under_the_new_name_is_refused_without_being_unpickled(tmp_path):
    data = make_prepared()
    marker = tmp_path / "pwned"
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / STATE_FILE).write_bytes(pickle.dumps({"model": _Payload(marker)}))
    with pytest.raises(ResumeStateError, match="truncated or not a safetensors training state"):
        train(data.manifest, TrainConfig(epochs=2, **CPU), tmp_path / "run", data=data, resume=True,
              progress=False)
    assert not marker.exists()


def test_truncated_state_is_a_clear_error(tmp_path):
    cfg = TrainConfig(epochs=4, **CPU)
    data = stopped_run(tmp_path, cfg)
    state = tmp_path / "run" / STATE_FILE
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    with pytest.raises(ResumeStateError, match=f"cannot resume from {state}: the file is truncated") as exc:
        train(data.manifest, cfg, tmp_path / "run", data=data, resume=True, progress=False)
    assert exc.value.path == state and isinstance(exc.value, ValueError)


def test_foreign_safetensors_file_is_a_clear_error(tmp_path):
    data = make_prepared()
    (tmp_path / "run").mkdir()
    save_file({"weight": torch.zeros(3)}, str(tmp_path / "run" / STATE_FILE))
    with pytest.raises(ResumeStateError, match="it is not an emorank training state"):
        train(data.manifest, TrainConfig(epochs=2, **CPU), tmp_path / "run", data=data, resume=True,
              progress=False)


def test_other_configuration_is_still_a_mismatch(tmp_path):
    data = stopped_run(tmp_path, TrainConfig(epochs=4, **CPU))
    with pytest.raises(ResumeMismatchError, match="another configuration") as exc:
        train(data.manifest, TrainConfig(epochs=5, **CPU), tmp_path / "run", data=data, resume=True,
              progress=False)
    assert type(exc.value) is ResumeMismatchError


def test_resume_restores_adam_moments_exactly(tmp_path):
    cfg = TrainConfig(epochs=3, seed=5, **CPU)
    data = make_prepared()
    full = train(data.manifest, cfg, tmp_path / "full", data=data, progress=False)
    stopped_run(tmp_path, cfg, stop_epoch=0)
    resumed = train(data.manifest, cfg, tmp_path / "run", data=data, resume=True, progress=False)
    assert [h["val_loss"] for h in resumed.history] == [h["val_loss"] for h in full.history]
    a = EmotionRankCLAP.from_checkpoint(full.checkpoint).state_dict()
    b = EmotionRankCLAP.from_checkpoint(resumed.checkpoint).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------------------------------------ stop timing


def test_stop_on_the_last_step_of_the_last_epoch_is_not_an_early_stop(tmp_path):
    data = make_prepared()  # 192 train rows / 32 = 6 steps per epoch
    stop = threading.Event()
    events = []

    def on_event(e):
        events.append(e)
        if e["event"] == "step" and e["epoch"] == 2 and e["step"] == e["steps"] - 1:
            stop.set()

    result = train(data.manifest, TrainConfig(epochs=3, **CPU), tmp_path / "run", data=data, on_event=on_event,
                   stop=stop, progress=False)
    assert not result.stopped and len(result.history) == 3 and all(h["complete"] for h in result.history)
    assert EmotionRankCLAP.from_checkpoint(result.checkpoint).extra["stopped"] is False
    assert events[-1]["event"] == "done" and events[-1]["stopped"] is False


def test_stop_on_the_last_step_of_an_earlier_epoch_keeps_that_epoch_and_stops(tmp_path):
    data = make_prepared()
    stop = threading.Event()

    def on_event(e):
        if e["event"] == "step" and e["epoch"] == 0 and e["step"] == e["steps"] - 1:
            stop.set()

    cfg = TrainConfig(epochs=3, **CPU)
    result = train(data.manifest, cfg, tmp_path / "run", data=data, on_event=on_event, stop=stop, progress=False)
    assert result.stopped and len(result.history) == 1 and result.history[0]["complete"]
    resumed = train(data.manifest, cfg, tmp_path / "run", data=data, resume=True, progress=False)
    assert [h["epoch"] for h in resumed.history] == [0, 1, 2] and not resumed.stopped


# ------------------------------------------------------------------------------------------------------ splits


def test_a_manifest_without_training_splits_says_which_splits_it_has(tmp_path):
    data = make_prepared(n_train=30, n_dev=10)
    data.manifest.split = ["test"] * len(data.manifest)
    data.split[:] = "test"
    with pytest.raises(ValueError, match=r"'train' rows but has 0 \(the manifest's splits are test: 40\); add "
                                         r"'train' and 'dev' rows.*speaker_disjoint_split"):
        train(data.manifest, TrainConfig(epochs=1, device="cpu"), tmp_path / "run", data=data, progress=False)
    assert not os.path.exists(tmp_path / "run" / "checkpoint")


def test_cli_features_refuses_bad_workers_before_reading_the_manifest(tmp_path, capsys):
    rc = main(["features", "--manifest", str(tmp_path / "missing.csv"), "--cache", str(tmp_path / "c.sqlite"),
               "--workers", "0"])
    err = capsys.readouterr().err
    assert rc == 2 and "workers must be a whole number from 1 to 256, got 0" in err and "Traceback" not in err
