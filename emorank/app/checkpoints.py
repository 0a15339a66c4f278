"""Checkpoints the app serves: the shipped ones, the runs trained in the app, and added folders, each with its
model card and what it was trained on. :class:`CheckpointsMixin` gives the
:class:`~emorank.app.workspace.Workspace` its checkpoint methods.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from emorank.app.bounds import WorkspaceError, _shown
from emorank.app.build import checkpoint_problem, find_checkpoints, log_skipped_checkpoint, usable_config

log = logging.getLogger(__name__)


class CheckpointsMixin:
    """The workspace's checkpoints by name (used through :class:`~emorank.app.workspace.Workspace`)."""

    def checkpoints(self) -> dict[str, Path]:
        with self._lock:
            return dict(self._checkpoints)

    def refresh_checkpoints(self) -> dict[str, Path]:
        """Rescan the shipped folders and the runs folder (checkpoints added on disk appear); a listed checkpoint
        whose config became unusable is dropped from the lists (logged once)."""
        warned = self._warned_checkpoints
        found = find_checkpoints(self.assets.checkpoint_dirs, self.assets.runs_dir, warned=warned)
        with self._lock:
            self._checkpoints.update(found)
            listed = dict(self._checkpoints)
        gone = {}
        for name, path in listed.items():
            if name not in found:
                problem = checkpoint_problem(path)
                if problem is not None:
                    gone[name] = path
                    log_skipped_checkpoint(name, path, problem, warned)
        with self._lock:
            for name, path in gone.items():
                if self._checkpoints.get(name) == path:
                    del self._checkpoints[name]
                    self._drop_cached(name)
            return dict(self._checkpoints)

    def add_checkpoint(self, name: str, path: str | os.PathLike) -> str:
        """Register a checkpoint folder (e.g. a finished training run); returns its name in the lists."""
        from emorank.model.checkpoint import read_checkpoint_config

        path = Path(path).resolve()
        read_checkpoint_config(path)  # raises CheckpointError when it is not a valid checkpoint
        if checkpoint_problem(path) is not None:
            raise WorkspaceError(f"checkpoint {_shown(name)} cannot be read; choose another one")
        key = f"runs/{name}" if path.parent.parent == self.assets.runs_dir.resolve() else name
        with self._lock:
            self._checkpoints[key] = path
            self._drop_cached(key)
        return key

    def checkpoint_path(self, name: str) -> Path:
        if not isinstance(name, str) or not name.strip():
            raise WorkspaceError(f"choose a checkpoint (got {_shown(name)})")
        with self._lock:
            if name not in self._checkpoints:
                available = ", ".join(self._checkpoints) or "none"
                if "/" in name.removeprefix("runs/") or "\\" in name or name.startswith("~"):  # never echo a path
                    raise WorkspaceError(f"no checkpoint is called that: a checkpoint is chosen by its name in the "
                                         f"list, not by a path; available: {available}")
                raise WorkspaceError(f"unknown checkpoint {_shown(name)}; available: {available}")
            return self._checkpoints[name]

    def checkpoint_config(self, name: str) -> dict:
        """The config of a listed checkpoint; WorkspaceError when it cannot be used (whatever reading it raised)."""
        cfg, problem = usable_config(self.checkpoint_path(name))
        if problem is not None:
            log.warning("checkpoint %s cannot be read: %s", name, " ".join(problem.split())[:300])
            raise WorkspaceError(f"checkpoint {_shown(name)} cannot be read; choose another one")
        return cfg

    def checkpoint_corpus(self, name: str) -> str:
        """The corpus a checkpoint was trained on, as collections name theirs ("demo", "ravdess", ...)."""
        from emorank.model.card import checkpoint_dataset

        return checkpoint_dataset(self.checkpoint_config(name)) or "demo"

    def trained_on(self, name: str) -> tuple[str, bool]:
        """(training corpus for people, whether it is real speech) of a checkpoint, from its config."""
        from emorank.model.card import checkpoint_dataset
        from emorank.model.hub import CORPUS_LICENSES

        corpus = checkpoint_dataset(self.checkpoint_config(name)) or "demo"
        if corpus == "demo":
            return "synthetic speech (eSpeak NG demo corpus)", False
        return f"{CORPUS_LICENSES.get(corpus, (corpus,))[0]} (real speech)", True

    def checkpoint_label(self, name: str) -> str:
        """"name · corpus" for drop-downs: the name (what tells checkpoints apart) first, then what it was trained
        on ("synthetic", "RAVDESS"; left out when the name already says it), short enough for a phone-wide
        drop-down. The system and encoders are in the model card."""
        try:
            cfg = self.checkpoint_config(name)
            corpus, real = self.trained_on(name)
        except WorkspaceError:
            return name
        corpus = corpus.split(" (")[0] if real else "synthetic"
        shown = name if corpus.split()[0].lower() in name.lower() else f"{name} · {corpus}"
        return shown + (" · stopped early" if cfg.get("stopped") else "")

    def checkpoint_card(self, name: str) -> str:
        """A short model card (markdown) of a checkpoint: training data, system, encoders, test metrics of its
        eval.json, licence and what it is not good at (the long form is `emorank.model.card.model_card`)."""
        import json

        from emorank.model.card import card_metrics, checkpoint_license
        from emorank.model.hub import EVAL_FILE

        cfg, folder = self.checkpoint_config(name), self.checkpoint_path(name)
        corpus, real = self.trained_on(name)
        model, system = cfg.get("model", {}), cfg.get("system", {})
        try:
            report = json.loads((folder / EVAL_FILE).read_text()) if (folder / EVAL_FILE).is_file() else {}
        except (OSError, ValueError):
            report = {}
        metrics = {m["path"]: m for m in card_metrics(report)}
        shown = [("ordinality.aoc", "arousal order τ"), ("ordinality.voc", "valence order τ"),
                 ("retrieval.a2t_r@10", "R@10 audio→text"), ("va_estimation.ccc_arousal", "CCC arousal"),
                 ("va_estimation.ccc_valence", "CCC valence")]
        values = [f"{label} **{metrics[k]['value']:.2f}**" for k, label in shown if k in metrics]
        split = report.get("meta", {}).get("split", "test")
        lines = [f"**{system.get('title') or system.get('name') or name}** · trained on **{corpus}**",
                 f"Encoders: audio `{model.get('audio_encoder', '?')}`, text `{model.get('text_encoder', '?')}` "
                 f"(frozen; only the projection heads are trained) · licence `{checkpoint_license(folder, cfg) or 'not stated'}`",
                 (f"Test metrics ({split} split of its corpus): " + ", ".join(values)) if values
                 else "No test metrics shipped with this checkpoint (evaluate it in the Evaluate tab).",
                 ("Not good at: voices, languages and microphones unlike its actors' studio recordings; valence is "
                  "harder than arousal from the voice alone." if real else
                  "Not good at: real voices. It learnt from synthetic eSpeak speech, so it shows the method, not "
                  "people; analyse a real voice with a checkpoint trained on real speech.")]
        return "  \n".join(lines)

    def audio_encoder_ready(self, name: str) -> bool:
        """Whether checkpoint `name` can encode a clip at once (False before its audio encoder's first use, which
        reads the encoder's weights: about 10 s for Whisper, once per process)."""
        return self.model(name).audio_encoder_loaded

    def model(self, name: str):
        """The loaded model of a checkpoint (cached; reloaded when its folder changes)."""
        from emorank.model.core import EmotionRankCLAP

        key = self._model_key(name)
        with self._lock:
            if key not in self._models:
                for old in [k for k in self._models if k[0] == name]:
                    del self._models[old]
                self._remember(self._models, key, EmotionRankCLAP.from_checkpoint(key[1]))
            self._models.move_to_end(key)
            return self._models[key]

    def _model_key(self, name: str) -> tuple:
        path = self.checkpoint_path(name)
        try:
            stamp = (path / "config.json").stat().st_mtime_ns
        except OSError as err:
            raise WorkspaceError(f"checkpoint {name!r} cannot be read: {err.strerror}") from err
        return name, path, stamp

    def _drop_cached(self, checkpoint: str) -> None:
        for store in (self._models, self._indexes, self._grids, self._queries, self._text_refs, self._audio_refs):
            for key in [k for k in store if k[0] == checkpoint]:
                del store[key]
