"""One training job at a time, in a background thread, observable and stoppable from any thread.

The Gradio app (and any other front end) starts training here instead of calling `emorank.training.trainer.train` directly,
so a long run never blocks the server, exploring keeps working while it runs, and a second request gets a clear
message instead of a second job competing for the machine:

    jobs = TrainingJobs(on_checkpoint=lambda name, path: registry.add(name, path))
    jobs.start(manifest, TrainConfig(system="emotionrankclap", epochs=15), "data/demo/runs/my-run")
    jobs.status().to_dict()      # state, epoch/step, last loss, history for curves, checkpoint when finished
    jobs.stop()                  # the trainer finishes its step and saves the best checkpoint so far
    jobs.wait()

Nothing here imports gradio; the manager only knows the trainer's dict events ("features", "step", "epoch",
"stage", "done", ...).
"""
from __future__ import annotations

import contextlib
import copy
import logging
import os
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from emorank.app.shutdown import finish_before_exit
from emorank.data.manifest import Manifest

log = logging.getLogger(__name__)

IDLE, RUNNING, STOPPING, DONE, STOPPED, FAILED = "idle", "running", "stopping", "done", "stopped", "failed"
ACTIVE_STATES = (RUNNING, STOPPING)
SHUTDOWN_WAIT_S = 60.0  # at exit, how long a running job may take to finish its step and save
MAX_STEP_POINTS = 4000  # loss points kept for the curve; older points are thinned (every other one dropped)

CheckpointFn = Callable[[str, Path], "str | None"]
Runner = Callable[..., object]


class JobBusyError(RuntimeError):
    """A training job is already running; the message names it and how far it is."""


@dataclass
class JobStatus:
    """A snapshot of the current (or last) job; safe to read after the job changed (it is a copy)."""

    state: str = IDLE
    name: str = ""
    system: str = ""
    out_dir: str = ""
    checkpoint: str = ""
    checkpoint_name: str = ""  # what the front end lists it as (on_checkpoint's answer), e.g. "runs/my-run"
    message: str = "no training job has been started"
    error: str = ""
    epoch: int = 0  # 1-based epoch being run
    epochs: int = 0
    step: int = 0  # 1-based step within the epoch
    steps: int = 0
    last_loss: float | None = None
    best_val_loss: float | None = None
    best_epoch: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    history: list[dict] = field(default_factory=list)  # one record per epoch (train_loss, val_loss, ...)
    losses: list[tuple[float, float]] = field(default_factory=list)  # (fractional epoch, step loss)
    n_events: int = 0

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def elapsed(self) -> float:
        if self.started_at is None:
            return 0.0
        return (self.finished_at or time.time()) - self.started_at

    @property
    def fraction(self) -> float:
        """Progress in [0, 1] from epochs and steps against the trainer's real budget (its "budget" event):
        1.0 once finished, where it stopped for a stopped run, 0.0 before the first step or after a failure."""
        if self.state == DONE:
            return 1.0
        if not self.epochs or not self.epoch:
            return 0.0
        within = self.step / self.steps if self.steps else 0.0
        return min(1.0, max(0.0, (self.epoch - 1 + within) / self.epochs))

    def summary(self) -> str:
        """One readable line: what the job is doing or how it ended."""
        if self.state == IDLE:
            return self.message
        head = f"{self.name} ({self.system})"
        if self.state in ACTIVE_STATES:
            where = f"epoch {self.epoch}/{self.epochs}, step {self.step}/{self.steps}" if self.epochs else ""
            loss = f", loss {self.last_loss:.4f}" if self.last_loss is not None else ""
            verb = "stopping after this step" if self.state == STOPPING else "training"
            return f"{head}: {verb} - {where or self.message}{loss} ({self.elapsed:.0f} s)"
        if self.state == FAILED:
            return f"{head}: failed - {self.error}"
        best = f"best epoch {self.best_epoch + 1}, val loss {self.best_val_loss:.4f}; " \
            if self.best_epoch is not None and self.best_epoch >= 0 and self.best_val_loss is not None else ""
        ended = f"stopped early at epoch {self.epoch}/{self.epochs}" if self.state == STOPPED and self.epochs \
            else "stopped early" if self.state == STOPPED else "finished"
        where = f"listed as {self.checkpoint_name}" if self.checkpoint_name else self.checkpoint
        return f"{head}: {ended} after {self.elapsed:.0f} s; {best}checkpoint {where}"

    def to_dict(self) -> dict:
        out = asdict(self)
        out.update(active=self.active, elapsed=self.elapsed, fraction=self.fraction, summary=self.summary())
        return out


class TrainingJobs:
    """Runs `emorank.training.trainer.train` in a daemon thread, one job at a time; every method is thread-safe.

    Args:
        on_checkpoint: called as `on_checkpoint(name, checkpoint_folder)` from the job thread when a run ends with
            a valid checkpoint (finished or stopped), so a front end can list it at once; a string it returns is the
            name the status shows instead of the folder (a server path means nothing to a visitor). Its errors are
            logged, never fatal for the job.
        runner: the training function (default `emorank.training.trainer.train`); a front end may wrap it (e.g. ZeroGPU's
            `spaces.GPU`). Called as runner(manifest, config, out_dir, cache=..., on_event=..., stop=...,
            progress=False) and must return an object with a `checkpoint` attribute.
        cache_path: feature-cache file the job opens its own connection to (None: the default cache).
        threads: CPU threads torch may use while a job runs (default: half the cores, at least 1), so a server in
            the same process keeps the other cores; the previous setting is restored when the job ends. None
            leaves torch's setting alone.
        nice: how much lower the job thread's CPU priority is (Linux, where a thread has its own nice value; 0
            keeps it equal): on a busy machine the scheduler then serves the server's threads first.
    """

    def __init__(self, on_checkpoint: CheckpointFn | None = None, runner: Runner | None = None,
                 cache_path: str | os.PathLike | None = None, threads: int | None | str = "auto",
                 nice: int = 10) -> None:
        self._on_checkpoint = on_checkpoint
        self._runner = runner
        self._cache_path = cache_path
        self.threads = max(1, (os.cpu_count() or 2) // 2) if threads == "auto" else threads
        self.nice = nice
        self._lock = threading.Lock()
        self._status = JobStatus()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------- control
    def start(self, manifest: Manifest, config, out_dir: str | os.PathLike, name: str | None = None) -> JobStatus:
        """Start training `config` (a TrainConfig) on `manifest` into `out_dir`; raises JobBusyError while a job
        runs. Returns the status right after the start."""
        out_dir = Path(out_dir)
        name = name or out_dir.name
        with self._lock:
            if self._status.active:
                raise JobBusyError(f"a training job is already running: {self._status.summary()}. One job runs at "
                                   f"a time; stop it or wait until it finishes.")
            self._stop = threading.Event()
            self._status = JobStatus(state=RUNNING, name=name, system=getattr(config, "system", ""),
                                     out_dir=str(out_dir), epochs=int(getattr(config, "epochs", 0)),
                                     message="preparing cached features", started_at=time.time())
            stop = self._stop
            self._thread = threading.Thread(target=self._run, args=(manifest, config, out_dir, name, stop),
                                            name=f"emorank-train-{name}", daemon=True)
            self._thread.start()
            # Ctrl-C (or any exit) while it trains: stop after the step, save, end before Python finalises
            finish_before_exit(self._thread, stop.set, SHUTDOWN_WAIT_S)
            return copy.deepcopy(self._status)

    def stop(self) -> JobStatus:
        """Ask the running job to stop after its current step (it then saves the best checkpoint so far)."""
        with self._lock:
            if self._status.active:
                self._stop.set()
                self._status.state = STOPPING
                self._status.message = "stop requested; saving the best checkpoint so far"
            return copy.deepcopy(self._status)

    def status(self) -> JobStatus:
        with self._lock:
            return copy.deepcopy(self._status)

    @property
    def running(self) -> bool:
        with self._lock:
            return self._status.active

    def wait(self, timeout: float | None = None) -> JobStatus:
        """Block until the current job ends (or `timeout` seconds pass); returns the status."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.status()

    # ------------------------------------------------------------ worker
    def _run(self, manifest: Manifest, config, out_dir: Path, name: str, stop: threading.Event) -> None:
        from emorank.encoders.cache import FeatureCache

        runner = self._runner
        if runner is None:
            from emorank.training.trainer import train as runner
        try:
            with FeatureCache(self._cache_path) as cache, _modest(self.threads, self.nice):
                result = runner(manifest, config, out_dir, cache=cache, on_event=self._on_event, stop=stop,
                                progress=False)
        except Exception as err:  # noqa: BLE001 - a failed job must be reported, never crash the server
            log.error("training job %s failed:\n%s", name, traceback.format_exc())
            with self._lock:
                self._status.state = FAILED
                self._status.error = f"{type(err).__name__}: {err}"
                self._status.message = "failed"
                self._status.finished_at = time.time()
            return
        checkpoint = Path(result.checkpoint)
        listed = None
        if self._on_checkpoint is not None:  # before the job reads as ended: a follower then refreshes its lists
            try:
                listed = self._on_checkpoint(name, checkpoint)
            except Exception:  # noqa: BLE001
                log.error("registering checkpoint %s failed:\n%s", checkpoint, traceback.format_exc())
        with self._lock:
            s = self._status
            # the trainer knows whether epochs remained: a stop that lands on the last step is a normal end
            s.state = STOPPED if getattr(result, "stopped", False) else DONE
            s.checkpoint = str(checkpoint)
            s.checkpoint_name = listed if isinstance(listed, str) else ""
            s.message = "stopped early" if s.state == STOPPED else "finished"
            s.finished_at = time.time()

    def _on_event(self, event: dict) -> None:
        with self._lock:
            _apply_event(self._status, event)


@contextlib.contextmanager
def _modest(threads: int | None, nice: int):
    """While a job runs: torch limited to `threads` CPU threads (process-wide; restored afterwards, see
    `emorank.training.trainer.torch_threads`) and, on Linux, this thread's nice value raised by `nice` (a thread's own; it
    cannot be lowered again, the thread ends with the job)."""
    with contextlib.ExitStack() as stack:
        if threads is not None:
            import torch

            from emorank.training.trainer import torch_threads

            stack.enter_context(torch_threads(min(threads, torch.get_num_threads())))
        if nice > 0 and hasattr(os, "setpriority") and sys.platform.startswith("linux"):
            try:
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)  # Linux: this thread only
            except OSError as err:
                log.info("could not lower the training thread's priority: %s", err)
        yield


def _apply_event(s: JobStatus, e: dict) -> None:
    """Fold one trainer event into the status (called under the manager's lock)."""
    s.n_events += 1
    kind = e.get("event")
    if kind == "budget":  # the real number of epochs (our recipe may run more than were asked for)
        s.epochs, s.steps = int(e["epochs"]), int(e.get("steps_per_epoch", s.steps))
    elif kind == "step":
        s.epoch, s.step, s.steps = int(e["epoch"]) + 1, int(e["step"]) + 1, int(e["steps"])
        s.epochs = int(e.get("epochs", s.epochs))
        s.last_loss = float(e["loss"])
        s.losses.append((e["epoch"] + (e["step"] + 1) / max(1, e["steps"]), s.last_loss))
        if len(s.losses) > MAX_STEP_POINTS:
            s.losses[:] = s.losses[::2]
        if s.state == RUNNING:
            s.message = "training"
    elif kind == "epoch":
        record = {k: e[k] for k in ("epoch", "train_loss", "val_loss", "logit_scale", "seconds", "complete")
                  if k in e}
        s.history.append(record)
        s.best_epoch, s.best_val_loss = e.get("best_epoch"), e.get("best_val_loss")
    elif kind == "done":
        s.checkpoint = str(e.get("checkpoint", ""))
        s.best_epoch, s.best_val_loss = e.get("best_epoch"), e.get("best_val_loss")
    elif kind in ("stage", "features"):
        s.message = str(e.get("message", kind))
        if kind == "stage":  # RA-CLAP: a second training stage starts its own epochs and curve
            s.history.clear()
            s.losses.clear()
    elif kind == "audio_features":
        s.message = f"audio features ready for {e.get('rows')} clips ({e.get('skipped', 0)} skipped)"
    elif kind == "text_features":
        s.message = f"caption features ready for {e.get('rows')} clips"
