"""The Train tab: one training job at a time in the background, live status and curves, Stop (``/train``,
``/training_status``, ``/stop_training``).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Iterator

import gradio as gr
from emorank.app.bounds import DEMO_ALL, MAX_NAME_CHARS, WorkspaceError, flag, text

from emorank.app.jobs import JobBusyError

from emorank.app.bounds import MAX_BATCH_SIZE, MAX_EPOCHS
from emorank.app.errors import friendly, public_message, scrub
from emorank.app.formatting import _curve, _status_markdown

log = logging.getLogger(__name__)


class TrainingHandlers:
    """Train-tab handlers (mixed into :class:`~emorank.app.handlers.Handlers`)."""

    # ----------------------------------------------------------------------------- train
    def api_train(self, collection: str = DEMO_ALL, system: str = "emotionrankclap", epochs: int = 15,
                  batch_size: int = 64, lr: float = 1e-3, seed: int = 0, name: str = "",
                  paper_budget: bool = False) -> dict:
        """Start a training job in the background (one at a time); returns its status. Poll training_status.

        Args:
            collection: a labelled collection with train and dev rows.
            system: a system name (see the Train tab), e.g. emotionrankclap or clap-sce-av.
            epochs: at least this many epochs (1..500).
            batch_size: pairs per batch (8..4096).
            lr: learning rate (our recipe: 1e-3; the paper: 1e-4).
            seed: random seed.
            name: optional run name.
            paper_budget: the paper's budget (exactly `epochs` epochs) instead of our recipe (at least 900 steps).
        """
        return self._public_status(friendly(self._start)(collection, system, epochs, batch_size, lr, seed, name,
                                                         paper_budget))

    def _start(self, collection, system, epochs, batch_size, lr, seed, name, paper_budget=False):
        from emorank.training.trainer import TrainConfig

        whole_ = lambda v: int(v) if isinstance(v, float) and v.is_integer() else v  # noqa: E731 (sliders send 15.0)
        budget = TrainConfig.paper if flag(paper_budget, "paper_budget") else TrainConfig.recipe
        config = budget(system=system, epochs=whole_(epochs), batch_size=whole_(batch_size), lr=lr,
                        seed=whole_(seed), workers=1)  # no forked extraction workers inside a threaded server
        config.validate()  # the trainer's own checks (emorank.training.trainer.ConfigError), shared with the CLI
        if config.epochs > MAX_EPOCHS or config.batch_size > MAX_BATCH_SIZE:  # a public app shares one machine
            raise WorkspaceError(f"this app trains at most {MAX_EPOCHS} epochs with batches of at most "
                                 f"{MAX_BATCH_SIZE} (the command line has no such cap)")
        name = text(name, "the run name", MAX_NAME_CHARS, required=False)
        source = self.ws.source(collection)
        if not source.labelled:
            raise WorkspaceError(f"collection {collection!r} has no valence-arousal labels; training needs a manifest")
        system = config.system
        counts = source.manifest.split_counts()
        if counts.get("train", 0) < 2 or counts.get("dev", 0) < 2:
            raise WorkspaceError(f"collection {collection!r} needs 'train' and 'dev' rows to train (it has "
                                 f"{dict(counts)}); choose '{DEMO_ALL}' or a manifest with splits")
        run, out_dir = self.ws.new_run_dir(name or f"{system}-{time.strftime('%Y%m%d-%H%M%S')}")
        return self.jobs.start(source.manifest, config, out_dir, name=run)

    def api_training_status(self) -> dict:
        """The current (or last) training job: state, progress, losses, checkpoint name when finished."""
        return self._public_status(self.jobs.status())

    def api_stop_training(self) -> dict:
        """Stop the running job after its current step; it saves the best checkpoint so far."""
        return self._public_status(self.jobs.stop())

    def stop_button(self) -> str:
        """Stop button: the status line (the curve follower shows the rest)."""
        return _status_markdown(self.jobs.stop())

    @staticmethod
    def budget(paper: bool):
        """The Train tab's fields for a budget: (epochs, learning rate, note)."""
        from emorank.training.trainer import RECIPE_MIN_STEPS

        if paper:
            return 15, 1e-4, "The paper's budget: exactly the epochs set, Adam lr 1e-4."
        return 15, 1e-3, (f"Our recipe: lr 1e-3 and at least {RECIPE_MIN_STEPS} optimiser steps (small corpora get "
                          f"more epochs than set); it beats the paper's budget on small corpora.")

    def _public_status(self, status) -> dict:
        """A job status for the JSON API: folders relative to the data folder ("runs/<name>/checkpoint"), the
        error as a visitor's message."""
        out = status.to_dict()
        for key in ("out_dir", "checkpoint"):
            if out[key]:
                path = Path(out[key])
                out[key] = str(path.relative_to(self.ws.assets.data_dir)) if path.is_relative_to(
                    self.ws.assets.data_dir) else path.name
        out["error"] = scrub(out["error"])
        out["summary"] = scrub(out["summary"])
        return out

    def start_training(self, collection, system, epochs, batch_size, lr, seed, name, paper_budget=False) -> str:
        """Train button: start, or explain why not (a running job is then followed instead)."""
        try:
            return self._start(collection, system, epochs, batch_size, lr, seed, name, paper_budget).summary()
        except (JobBusyError, ValueError) as err:
            gr.Warning(public_message(err))
            return self.jobs.status().summary()

    @friendly
    def follow_training(self) -> Iterator[tuple]:
        """Stream (status, curve) while a job runs; at the end, refresh nothing itself (app chains that)."""
        while True:
            s = self.jobs.status()
            yield _status_markdown(s), _curve(s)
            if not s.active:
                return
            time.sleep(1.0)
