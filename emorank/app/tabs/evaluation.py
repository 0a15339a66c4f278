"""The Evaluate tab: the paper's protocol on up to four checkpoints, with the paper's tables and significance
when they are different systems (``/evaluate``, ``/checkpoints``, ``/collections``).
"""
from __future__ import annotations

import json
import logging

import gradio as gr
from emorank.app.bounds import (DEMO_TEST, EVAL_LISTS, EVAL_TRIALS, MAX_EVAL_CHECKPOINTS, WorkspaceError, choice,
                                names, whole)

from emorank.app.bounds import SPLITS
from emorank.app.errors import friendly
from emorank.app.formatting import _paper_tables, _report_row
from emorank.app.serving import _private_cache, gpu

log = logging.getLogger(__name__)


class EvaluationHandlers:
    """Evaluate-tab handlers (mixed into :class:`~emorank.app.handlers.Handlers`)."""

    # ----------------------------------------------------------------------------- evaluate
    def api_evaluate(self, checkpoints: list[str], collection: str = DEMO_TEST, split: str = "test",
                     n_trials: int = 30, n_lists: int = 100) -> dict:
        """The paper's protocol on each checkpoint (alignment, ordinality, retrieval, V-A agreement; takes minutes):
        {"reports": {name: report}, "table": markdown}.

        Args:
            checkpoints: one to four checkpoint names (see the checkpoints tool).
            collection: a labelled collection (see the collections tool).
            split: test, dev or train.
            n_trials: alignment trials (2 to 30; the paper: 30).
            n_lists: ordinality lists per axis (10 to 100; the paper: 100).
        """
        return friendly(self._evaluate)(checkpoints, collection, split, n_trials, n_lists, None)

    @gpu
    def _evaluate(self, checkpoints, collection, split, n_trials, n_lists, progress) -> dict:
        from emorank.evaluation.evaluate import EvalConfig, evaluate

        chosen = names(checkpoints, "checkpoints", MAX_EVAL_CHECKPOINTS)
        for name in chosen:
            self.ws.checkpoint_path(name)
        split = choice(split, "split", SPLITS)
        config = EvalConfig(n_trials=whole(n_trials, "alignment trials", *EVAL_TRIALS),
                            n_lists=whole(n_lists, "ordinality lists", *EVAL_LISTS))
        source = self.ws.source(collection)
        if not source.labelled:
            raise WorkspaceError(f"collection {collection!r} has no labels; the paper's tests need a manifest")
        reports = {}
        for i, name in enumerate(chosen):
            if progress is not None:
                progress(i / len(chosen), desc=f"evaluating {name}")
            with _private_cache(self.ws) as cache:
                reports[name] = evaluate(self.ws.model(name), source.manifest, split, config, cache, progress=False)
        return {"reports": reports, "table": _paper_tables(reports)}

    @friendly
    def evaluate(self, checkpoints: list[str], collection: str, split: str, n_trials: int, n_lists: int,
                 progress=gr.Progress()):
        """(results table, paper-style markdown, ordinality figure, JSON download)."""
        from emorank.evaluation.figures import ordinality_figure

        res = self._evaluate(checkpoints, collection, split, n_trials, n_lists, progress)
        reports = res["reports"]
        rows = [_report_row(name, r) for name, r in reports.items()]
        fig = ordinality_figure({name: r["ordinality"] for name, r in reports.items()})
        path = self._new_output("eval-") / "evaluation.json"
        path.write_text(json.dumps(res, indent=2, default=float))
        return rows, res["table"], fig, str(path)

    # ----------------------------------------------------------------------------- lists
    def api_checkpoints(self) -> list[dict]:
        """Available checkpoints: name and label (names, never server folders)."""
        self.ws.refresh_checkpoints()
        return [{"name": n, "label": self.ws.checkpoint_label(n)} for n in self.ws.checkpoints()]

    def api_collections(self) -> list[dict]:
        """Available collections: name, clips, labelled, origin (a description, never a server path), corpus
        (demo, ravdess, ...; empty when unknown)."""
        return [{"name": n, "clips": len(s.manifest), "labelled": s.labelled, "origin": s.origin, "corpus": s.corpus}
                for n, s in self.ws.collections().items()]
