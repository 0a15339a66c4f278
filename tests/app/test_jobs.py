"""TrainingJobs: one background job at a time, observable, stoppable, registering its checkpoint."""
import os
import threading

import pytest

from emorank.app.jobs import DONE, FAILED, IDLE, STOPPED, JobBusyError, JobStatus, TrainingJobs, _apply_event
from emorank.model.core import EmotionRankCLAP
from emorank.training.trainer import TrainConfig, train

CFG = dict(batch_size=32, device="cpu", lr=1e-3)


class Gate:
    """A runner around `train` on prepared features that can hold the job at its first step."""

    def __init__(self, prepared, hold: bool = False):
        self.prepared, self.hold = prepared, hold
        self.at_first_step, self.release = threading.Event(), threading.Event()
        self.thread_names = []

    def __call__(self, manifest, config, out_dir, cache=None, on_event=None, stop=None, progress=False):
        self.thread_names.append(threading.current_thread().name)

        def events(e):
            on_event(e)
            if self.hold and e["event"] == "step" and not self.at_first_step.is_set():
                self.at_first_step.set()
                assert self.release.wait(30), "test never released the job"
        return train(manifest, config, out_dir, data=self.prepared, on_event=events, stop=stop, progress=False)


@pytest.fixture
def registry():
    found = []
    return found, (lambda name, path: found.append((name, path)))


def test_job_runs_in_background_and_registers_a_valid_checkpoint(prepared, tmp_path, registry):
    found, on_checkpoint = registry
    runner = Gate(prepared)
    jobs = TrainingJobs(on_checkpoint, runner, cache_path=tmp_path / "c.sqlite")
    assert jobs.status().state == IDLE and not jobs.running
    first = jobs.start(prepared.manifest, TrainConfig(epochs=3, **CFG), tmp_path / "run", name="erc")
    assert first.active and first.name == "erc" and first.epochs == 3
    final = jobs.wait(60)
    assert final.state == DONE and final.fraction == 1.0 and not final.active
    assert runner.thread_names and runner.thread_names[0] != threading.current_thread().name
    assert [r["epoch"] for r in final.history] == [0, 1, 2]
    steps = len(final.losses)
    assert steps >= 3 and final.losses[-1][0] == pytest.approx(3.0)  # epochs completed at the last step
    assert found == [("erc", tmp_path / "run" / "checkpoint")]
    assert EmotionRankCLAP.from_checkpoint(final.checkpoint).extra["stopped"] is False
    assert "finished" in final.summary() and "erc" in final.summary()


def test_second_start_is_refused_with_a_clear_message_and_first_job_continues(prepared, tmp_path, registry):
    found, on_checkpoint = registry
    runner = Gate(prepared, hold=True)
    jobs = TrainingJobs(on_checkpoint, runner, cache_path=tmp_path / "c.sqlite")
    jobs.start(prepared.manifest, TrainConfig(epochs=2, **CFG), tmp_path / "a", name="first")
    assert runner.at_first_step.wait(30)
    with pytest.raises(JobBusyError, match=r"already running: first .*One job runs at a time"):
        jobs.start(prepared.manifest, TrainConfig(epochs=2, **CFG), tmp_path / "b", name="second")
    snapshot = jobs.status()
    assert snapshot.name == "first" and snapshot.active and snapshot.step == 1
    runner.release.set()
    assert jobs.wait(60).state == DONE
    assert [name for name, _ in found] == ["first"] and not (tmp_path / "b").exists()
    jobs.start(prepared.manifest, TrainConfig(epochs=1, **CFG), tmp_path / "b", name="second")  # free again
    assert jobs.wait(60).state == DONE and [n for n, _ in found] == ["first", "second"]


def test_stop_leaves_a_valid_checkpoint_that_is_registered(prepared, tmp_path, registry):
    found, on_checkpoint = registry
    runner = Gate(prepared, hold=True)
    jobs = TrainingJobs(on_checkpoint, runner, cache_path=tmp_path / "c.sqlite")
    jobs.start(prepared.manifest, TrainConfig(epochs=200, **CFG), tmp_path / "long", name="long")
    assert runner.at_first_step.wait(30)
    assert jobs.stop().state == "stopping"
    runner.release.set()
    final = jobs.wait(60)
    assert final.state == STOPPED and len(final.history) == 1 and final.history[0]["complete"] is False
    model = EmotionRankCLAP.from_checkpoint(final.checkpoint)
    assert model.extra["stopped"] is True
    assert found == [("long", tmp_path / "long" / "checkpoint")]
    assert "stopped early" in final.summary()


def test_a_stop_on_the_last_step_is_a_normal_end(prepared, tmp_path, registry):
    """Stop requested while the last step of the last epoch runs: every epoch is done, so the job is 'finished'."""
    found, on_checkpoint = registry
    at_last, release = threading.Event(), threading.Event()

    def runner(manifest, config, out_dir, cache=None, on_event=None, stop=None, progress=False):
        def events(e):
            on_event(e)
            if e["event"] == "step" and e["epoch"] == e["epochs"] - 1 and e["step"] == e["steps"] - 1:
                at_last.set()
                assert release.wait(30), "test never released the job"
        return train(manifest, config, out_dir, data=prepared, on_event=events, stop=stop, progress=False)

    jobs = TrainingJobs(on_checkpoint, runner, cache_path=tmp_path / "c.sqlite")
    jobs.start(prepared.manifest, TrainConfig(epochs=2, **CFG), tmp_path / "end", name="end")
    assert at_last.wait(60)
    jobs.stop()
    release.set()
    final = jobs.wait(60)
    assert final.state == DONE and "finished" in final.summary() and len(final.history) == 2
    assert EmotionRankCLAP.from_checkpoint(final.checkpoint).extra["stopped"] is False


def test_a_failing_job_reports_its_error_and_frees_the_slot(prepared, tmp_path, registry):
    found, on_checkpoint = registry
    jobs = TrainingJobs(on_checkpoint, Gate(prepared), cache_path=tmp_path / "c.sqlite")
    jobs.start(prepared.manifest, TrainConfig(system="no-such-system", epochs=1, **CFG), tmp_path / "bad", "bad")
    final = jobs.wait(60)
    assert final.state == FAILED and "no-such-system" in final.error and "emotionrankclap" in final.error
    assert final.summary().startswith("bad (no-such-system): failed - ConfigError")  # a ValueError
    assert found == [] and not jobs.running
    jobs.start(prepared.manifest, TrainConfig(epochs=1, **CFG), tmp_path / "good", "good")
    assert jobs.wait(60).state == DONE


def test_a_failing_registry_callback_does_not_fail_the_job(prepared, tmp_path):
    def broken(name, path):
        raise RuntimeError("registry down")

    jobs = TrainingJobs(broken, Gate(prepared), cache_path=tmp_path / "c.sqlite")
    jobs.start(prepared.manifest, TrainConfig(epochs=1, **CFG), tmp_path / "r", "r")
    assert jobs.wait(60).state == DONE


def test_status_is_a_snapshot_not_a_live_view(prepared, tmp_path):
    jobs = TrainingJobs(None, Gate(prepared), cache_path=tmp_path / "c.sqlite")
    jobs.start(prepared.manifest, TrainConfig(epochs=1, **CFG), tmp_path / "r", "r")
    done = jobs.wait(60)
    done.history.clear()
    done.state = "idle"
    again = jobs.status()
    assert again.state == DONE and len(again.history) == 1


def test_events_fold_into_progress_and_a_new_stage_restarts_the_curve():
    s = JobStatus(state="running", epochs=4)
    _apply_event(s, {"event": "step", "epoch": 1, "step": 1, "steps": 4, "loss": 2.5, "logit_scale": 1.0})
    assert (s.epoch, s.step, s.steps, s.last_loss) == (2, 2, 4, 2.5)
    assert s.fraction == pytest.approx((1 + 2 / 4) / 4)
    _apply_event(s, {"event": "epoch", "epoch": 1, "train_loss": 2.0, "val_loss": 2.2, "best_epoch": 1,
                     "best_val_loss": 2.2, "logit_scale": 1.0, "seconds": 0.1, "complete": True})
    assert s.history[-1]["val_loss"] == 2.2 and s.best_epoch == 1
    _apply_event(s, {"event": "stage", "message": "stage 2: self-distillation from the teacher"})
    assert s.history == [] and s.losses == [] and s.message.startswith("stage 2")


def test_progress_counts_against_the_trainers_real_budget_not_the_requested_epochs():
    """Our recipe runs more epochs than the slider asks for: the trainer's "budget" event carries the real count,
    so the status never reads "epoch 27/15" and the bar is not full before the end."""
    from emorank.app.formatting import _status_markdown

    s = JobStatus(state="running", name="r", system="emotionrankclap", epochs=15, started_at=0.0)
    _apply_event(s, {"event": "budget", "epochs": 82, "steps_per_epoch": 11})
    _apply_event(s, {"event": "step", "epoch": 26, "epochs": 82, "step": 0, "steps": 11, "loss": 1.0,
                     "logit_scale": 1.0})
    assert (s.epoch, s.epochs) == (27, 82) and "epoch 27/82" in s.summary()
    assert s.fraction == pytest.approx((26 + 1 / 11) / 82)
    assert f"{100 * s.fraction:.0f}%" in _status_markdown(s) and "100%" not in _status_markdown(s)
    s.state = STOPPED  # a stopped run shows where it stopped, not 100%
    assert s.fraction == pytest.approx((26 + 1 / 11) / 82) and "stopped early at epoch 27/82" in s.summary()
    assert "100%" not in _status_markdown(s)


def test_a_recipe_job_reports_the_epochs_it_really_runs(prepared, tmp_path):
    config = TrainConfig(epochs=1, min_steps=13, batch_size=32, device="cpu", lr=1e-3)  # the recipe's rule, small
    jobs = TrainingJobs(None, Gate(prepared), cache_path=tmp_path / "c.sqlite")
    jobs.start(prepared.manifest, config, tmp_path / "r", "r")
    final = jobs.wait(120)
    assert final.state == DONE and final.epochs == len(final.history) > 1  # the recipe ran more than 1 epoch
    assert final.epoch == final.epochs


def test_the_status_names_the_checkpoint_as_listed_never_its_server_folder(prepared, tmp_path):
    jobs = TrainingJobs(lambda name, path: f"runs/{name}", Gate(prepared), cache_path=tmp_path / "c.sqlite")
    jobs.start(prepared.manifest, TrainConfig(epochs=1, **CFG), tmp_path / "r", "my-run")
    final = jobs.wait(60)
    assert final.checkpoint_name == "runs/my-run" and "listed as runs/my-run" in final.summary()
    assert str(tmp_path) not in final.summary()


def test_a_job_leaves_cores_to_the_server_and_restores_torch_threads(prepared, tmp_path):
    import torch

    seen = {}

    class Probe(Gate):
        def __call__(self, *args, **kwargs):
            seen["threads"] = torch.get_num_threads()
            seen["nice"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) - nice_before
            return super().__call__(*args, **kwargs)

    before, nice_before = torch.get_num_threads(), os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    torch.set_num_threads(2)
    try:
        jobs = TrainingJobs(None, Probe(prepared), cache_path=tmp_path / "c.sqlite", threads=1, nice=5)
        jobs.start(prepared.manifest, TrainConfig(epochs=1, **CFG), tmp_path / "r", "r")
        assert jobs.wait(60).state == DONE
        assert seen == {"threads": 1, "nice": 5}
        # restored for the server; the server's own threads never lost priority (only the job thread's changed)
        assert torch.get_num_threads() == 2
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == nice_before
    finally:
        torch.set_num_threads(before)


INTERRUPTED = """
import os, signal, sys, threading, time
sys.path[:0] = [sys.argv[1], sys.argv[2]]
from conftest import make_prepared
from emorank.app.jobs import TrainingJobs
from emorank.training.trainer import TrainConfig, train

prepared = make_prepared(n_train=8192, n_dev=512, audio_dim=1024, text_dim=1024)  # steps long enough to be inside
first = threading.Event()


def runner(manifest, config, out_dir, cache=None, on_event=None, stop=None, progress=False):
    def events(e):
        on_event(e)
        first.set()
    return train(manifest, config, out_dir, data=prepared, on_event=events, stop=stop, progress=False)


jobs = TrainingJobs(None, runner, cache_path=os.path.join(sys.argv[3], "c.sqlite"), threads=2)
jobs.start(prepared.manifest, TrainConfig(epochs=500, batch_size=2048, device="cpu", lr=1e-3),
           os.path.join(sys.argv[3], "run"), "r")
assert first.wait(120)
time.sleep(0.5)
os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the job is inside a training step
time.sleep(60)
"""


def test_ctrl_c_while_a_job_trains_exits_cleanly_and_keeps_the_checkpoint(tmp_path):
    """Ctrl-C in a process whose background job is inside torch: the job stops after its step and saves, and the
    process exits on the KeyboardInterrupt, not with an abort ("terminate called without an active exception",
    "FATAL: exception not rethrown", status 134) from a daemon thread killed inside torch's C++."""
    import subprocess
    import sys
    from pathlib import Path

    tests = Path(__file__).resolve().parents[1]
    script = tmp_path / "interrupted.py"
    script.write_text(INTERRUPTED)
    run = subprocess.run([sys.executable, str(script), str(tests), str(tests.parent), str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode in (1, 130) and "KeyboardInterrupt" in run.stderr, (run.returncode, run.stderr[-800:])
    assert "terminate called" not in run.stderr and "FATAL" not in run.stderr, run.stderr[-800:]
    assert EmotionRankCLAP.from_checkpoint(tmp_path / "run" / "checkpoint").extra["stopped"] is True
