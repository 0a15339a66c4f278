"""Gradio handlers of the demo app: library results -> component values, library errors -> readable messages.

The only emorank module that imports gradio. `app.py` lays out the tabs and wires widgets to the methods of
:class:`Handlers`; every method is a thin adapter over `emorank.demo.Workspace`, `emorank.jobs.TrainingJobs`,
`emorank.evaluate` and `emorank.viz`, so the tests call them directly and through the launched app.

Named API endpoints (JSON in, JSON out; see `Handlers.api_*`): caption, retrieve, analyse, embedding_map, train,
training_status, stop_training, evaluate, checkpoints, collections.
"""
from __future__ import annotations

import functools
import json
import logging
import os
import re
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable, Iterator

import gradio as gr
import numpy as np

from emorank.demo import (ANALYSE_MAX_SECONDS, ANALYSE_MIN_SECONDS, DEMO_ALL, DEMO_TEST, EVAL_LISTS, EVAL_TRIALS,
                          MAP_POINTS, MAX_EVAL_CHECKPOINTS, MAX_NAME_CHARS, MAX_QUERY_CHARS, REPO_DIR, STRIP_VALUES,
                          VA_RANGE, Workspace, WorkspaceError, choice, names, number, text, visible_name, whole)
from emorank.jobs import JobBusyError, TrainingJobs

log = logging.getLogger(__name__)

MAX_K = 8  # audio players in the Explore tab
ANALYSE_K = 5
NONE = "(none)"
REAL_SPEECH_DEFAULTS = ("emotionrankclap-plus-ravdess", "emotionrankclap-ravdess")
MAP_METHODS, MAP_COLOURS, SPLITS = ("pca", "umap"), ("modality", "valence", "arousal"), ("test", "dev", "train")
# The Train tab's limits for visitors (tighter than the trainer's own: a public app shares one machine).
MAX_EPOCHS, MAX_BATCH_SIZE = 500, 4096


# ------------------------------------------------------------------------------------------- plumbing
def gpu(fn: Callable | None = None, **kwargs) -> Callable:
    """`spaces.GPU` on a Hugging Face ZeroGPU Space, a no-op everywhere else."""
    try:
        import spaces  # type: ignore[import-not-found]
    except ImportError:
        spaces = None

    def wrap(f: Callable) -> Callable:
        return spaces.GPU(**kwargs)(f) if spaces is not None else f
    return wrap(fn) if fn is not None else wrap


def public_message(err: Exception) -> str:
    """One sentence a visitor can act on, for a library error: no server paths (a file is named by its last
    component), no file contents, no parameter names of the Python API."""
    from emorank.audio import AudioError, AudioLengthError, SilentAudioError
    from emorank.datasets import ManifestError
    from emorank.model import CheckpointError

    if isinstance(err, AudioError):
        name = visible_name(err.path)
        if isinstance(err, SilentAudioError):
            return f"{name}: silent audio, there is no speech to analyse; record or upload a clip with speech"
        if isinstance(err, AudioLengthError) and "too long" in err.reason:
            return f"{name}: too long; upload a clip of at most {ANALYSE_MAX_SECONDS:g} s (trim it first)"
        if isinstance(err, AudioLengthError):
            return f"{name}: too short; upload a clip of at least {ANALYSE_MIN_SECONDS:g} s of speech"
        return f"{name}: not a readable audio file; upload a WAV, FLAC, OGG or MP3 file"
    if isinstance(err, CheckpointError):
        return "this checkpoint cannot be used here (its files are incomplete or do not match the encoders); " \
               "choose another one"
    if isinstance(err, ManifestError):
        return "the collection's manifest is not valid; check it with `python -m emorank` before adding it"
    return scrub(str(err))


_ABSOLUTE_PATH = re.compile(r"(?<![\w.:])(?:/[^\s/'\"`,;:()\[\]]+)+/?")


def scrub(message: str) -> str:
    """`message` with every absolute path replaced by its last component (the server's layout stays private)."""
    return _ABSOLUTE_PATH.sub(lambda m: visible_name(m.group(0).rstrip("/")), message)


def friendly(fn: Callable) -> Callable:
    """Show known failures as a readable gr.Error (no traceback); log anything unexpected with its traceback.

    Raising leaves every output as it was, so nothing the user did is lost."""
    def convert(err: Exception) -> gr.Error:
        if isinstance(err, gr.Error):
            return err
        if isinstance(err, (ValueError, JobBusyError, FileNotFoundError)):
            return gr.Error(public_message(err), print_exception=False)
        log.error("unexpected error in %s:\n%s", fn.__name__, traceback.format_exc())
        return gr.Error(f"unexpected error ({type(err).__name__}); the server log has the details",
                        print_exception=False)

    if _is_generator(fn):
        @functools.wraps(fn)
        def gen(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as err:  # noqa: BLE001
                raise convert(err) from None
        return gen

    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as err:  # noqa: BLE001
            raise convert(err) from None
    return call


def _is_generator(fn: Callable) -> bool:
    import inspect
    return inspect.isgeneratorfunction(fn)


def _progress_fn(progress: gr.Progress | None, desc: str) -> Callable[[int, int], None] | bool:
    if progress is None:
        return False
    return lambda done, total: progress(done / max(total, 1), desc=f"{desc} {done}/{total}")


def _player(path: str | None, label: str, served: list[str]) -> dict:
    """An audio player update: a file under a served root is played from there; others are decoded and sent as
    a waveform (so the server never has to serve a folder it was not launched with)."""
    if path is None:
        return gr.update(value=None, visible=False)
    if _under(path, served):
        return gr.update(value=path, label=label, visible=True)
    from emorank.audio import load_audio
    return gr.update(value=(16000, load_audio(path, max_seconds=None)), label=label, visible=True)


def _under(path: str, roots: list[str]) -> bool:
    """Whether `path` (symbolic links resolved) lies inside one of `roots` (already resolved)."""
    real = os.path.realpath(path)
    return any(os.path.commonpath([real, root]) == root for root in roots)


def _hit_label(rec: dict) -> str:
    """A player's label: short enough for a 150 px card (rank, V-A, distance from the query)."""
    est = "≈" if rec["labels"] == "estimated" else ""
    dist = f" · Δ{rec['distance']:.1f}" if rec.get("distance") is not None else ""
    return f"#{rec['rank']} V{est}{rec['valence']:.1f} A{est}{rec['arousal']:.1f}{dist}"


def _hit_table(records: list[dict]) -> list[list]:
    return [[r["rank"], r["id"], r["valence"], r["arousal"], r.get("distance"), r["labels"], r["emotion"] or "",
             r["similarity"]] for r in records]


HIT_HEADERS = ["rank", "clip", "valence", "arousal", "distance", "labels", "emotion", "similarity"]
COMPARE_HEADERS = ["rank", "clip", "valence", "arousal", "distance", "similarity"]


# ------------------------------------------------------------------------------------------- handlers
class Handlers:
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
            if preferred in names:
                return preferred
        for name in names:
            try:
                if self.ws.trained_on(name)[1]:
                    return name
            except WorkspaceError:
                continue
        return self.default_checkpoint()

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

    @friendly
    def add_collection(self, path: str, name: str, labels: str = ""):
        """Add a manifest CSV, a folder of audio or a Hugging Face dataset (folder or Hub id): (all-collections
        list, labelled list x 2, note). The workspace remembers it across restarts."""
        source = self.ws.add_collection(path, text(name, "the collection name", MAX_NAME_CHARS, required=False) or None,
                                        text(labels, "the label columns", MAX_NAME_CHARS, required=False) or None)
        note = (f"Added **{source.name}**: {len(source.manifest)} clips from the {source.origin}"
                + ("" if source.labelled else " (labels unknown: valence-arousal values shown are estimates)"))
        gr.Info(f"collection {source.name} added")
        labelled = gr.update(choices=self.collection_choices(labelled_only=True))
        return gr.update(choices=self.collection_choices(), value=source.name), labelled, labelled, note

    # ----------------------------------------------------------------------------- explore
    @friendly
    def caption(self, valence: float = 6.0, arousal: float = 2.0) -> str:
        """The speaking-style caption of a point on the valence-arousal plane (the wording retrieval uses).

        Args:
            valence: 1 (very negative) to 7 (very positive).
            arousal: 1 (very calm) to 7 (very active).
        """
        return self.ws.caption(valence, arousal)

    def _search(self, checkpoint: str, collection: str, query: str, k: int, progress=None, point=None):
        if not checkpoint:
            raise WorkspaceError("no checkpoint is available yet: train one in the Train tab")
        return self.ws.search(checkpoint, collection, query, k, progress=_progress_fn(progress, "audio features"),
                              point=point)

    def _point(self, query: str, valence, arousal) -> tuple[float, float] | None:
        """The sliders' point when the query is their caption (not free text)."""
        return (float(valence), float(arousal)) if query.strip() == self.caption(valence, arousal) else None

    @friendly
    def explore(self, checkpoint: str, collection: str, query: str, valence: float, arousal: float, k: int,
                progress=gr.Progress()):
        """Caption -> top-k clips: (table, V-A plane, *MAX_K players, explanation with a link to this query)."""
        from emorank.viz import va_plane_figure

        k, query = whole(k, "the number of clips", 1, MAX_K), text(query, "the query caption")
        point = self._point(query, valence, arousal)
        index, records = self._search(checkpoint, collection, query, k, progress, point)
        where = point or self.ws.query_point(index, query)
        fig = va_plane_figure(np.array([[r["valence"], r["arousal"]] for r in records]), query=where,
                              labels=[r["id"] for r in records], clickable=True,
                              title="Query (star) and its clips · click to query a point" if point else
                              "Free text (star: where the caption reads) · click to query a point")
        players = [_player(r["file"], _hit_label(r), self.served) for r in records[:MAX_K]]
        players += [_player(None, "", self.served)] * (MAX_K - len(players))
        return (_hit_table(records), fig, *players, self._explain(checkpoint, records, where, point, query))

    def _explain(self, checkpoint, records, where, point, query) -> str:
        dists = [r["distance"] for r in records if r.get("distance") is not None]
        reads = "" if point else f"The caption reads as valence {where[0]:.1f}, arousal {where[1]:.1f} under this checkpoint. "
        mean = (f"Δ is each clip's distance from the query on the 1-7 plane (labels); mean Δ {np.mean(dists):.2f}"
                f"{' (clip V-A estimated: no labels)' if records and records[0]['labels'] == 'estimated' else ''}. "
                if dists else "")
        return f"{reads}{mean}[Link to this query]({_share_link(checkpoint, where, None if point else query)})"

    @friendly
    def slide(self, checkpoint: str, collection: str, valence: float, arousal: float, k: int,
              progress=gr.Progress()):
        """A slider move: (caption, *explore outputs) in one round trip."""
        caption = self.caption(valence, arousal)
        return (caption, *self.explore(checkpoint, collection, caption, valence, arousal, k, progress))

    @friendly
    def compare(self, checkpoint_b: str, collection: str, query: str, valence: float, arousal: float, k: int):
        """The same query answered by a second checkpoint: (table, summary) for the side-by-side panel."""
        if not checkpoint_b or checkpoint_b == NONE:
            return [], "Choose a second checkpoint to compare its answers with the first one's."
        k, query = whole(k, "the number of clips", 1, MAX_K), text(query, "the query caption")
        point = self._point(query, valence, arousal)
        index, records = self._search(checkpoint_b, collection, query, k, None, point)
        where = point or self.ws.query_point(index, query)
        for r in records:  # one yardstick for both columns: the distance from the first checkpoint's star
            r["distance"] = round(float(np.hypot(r["valence"] - where[0], r["arousal"] - where[1])), 2)
        table = [[r["rank"], r["id"], r["valence"], r["arousal"], r["distance"], r["similarity"]] for r in records]
        mean = np.mean([r["distance"] for r in records]) if records else float("nan")
        return table, f"**{checkpoint_b}**: mean Δ {mean:.2f} from the query (lower is closer)."

    @friendly
    def strip(self, checkpoint: str, collection: str, axis: str, fixed: float):
        """The ordinal-neighbours row: one clip per step along `axis` (note, *len(STRIP_VALUES) players)."""
        _, records = self.ws.neighbours(checkpoint, collection, axis, fixed)
        other = "arousal" if axis == "valence" else "valence"
        players = [_player(r["file"], f"{q:.0f} → {r[axis]:.1f}", self.served)
                   for q, r in zip(STRIP_VALUES, records)]
        players += [_player(None, "", self.served)] * (len(STRIP_VALUES) - len(players))
        tau = self.ws.row_tau(records, axis)
        score = ("" if tau is None else
                 f"**Kendall τ = {tau:.2f}** for this row (1: the clips rise in the captions' order, 0: no order; "
                 f"{_tau_reference(self.ws, checkpoint, axis)}). ")
        note = (f"{score}Captions along **{axis}** 1 → 7 with {other} held at {fixed:g}, one clip each. Player "
                f"label: caption level → the clip's {'estimated ' if records and records[0]['labels'] == 'estimated' else ''}"
                f"{axis}.")
        return (note, *players)

    # ----------------------------------------------------------------------------- clicks on plots
    @friendly
    def plane_click(self, collection: str, payload: str):
        """A click on the V-A plane (JSON from the page's script): a clip plays it, elsewhere queries the point:
        (valence, arousal, clicked player)."""
        data = _click_payload(payload)
        if data.get("clip"):
            return gr.skip(), gr.skip(), self._clip_player(collection, data["clip"])
        v, a = (round(number(data.get(key), key, *VA_RANGE) * 2) / 2 for key in ("valence", "arousal"))
        return v, a, gr.skip()

    @friendly
    def map_click(self, collection: str, payload: str):
        """A click on a clip in the embedding map: its player."""
        data = _click_payload(payload)
        if not data.get("clip"):
            return gr.skip()
        return self._clip_player(collection, data["clip"])

    def _clip_player(self, collection: str | None, clip: str):
        source = self.ws.source(collection or DEMO_TEST)
        clip = text(clip, "the clip", MAX_NAME_CHARS)
        ids = source.manifest.ids
        if clip not in ids:
            raise WorkspaceError("that clip is not in the chosen collection; draw the map again")
        return _player(source.manifest.path[ids.index(clip)], f"clicked: {clip}"[:40], self.served)

    def api_retrieve(self, checkpoint: str = "emotionrankclap", collection: str = DEMO_TEST,
                     query: str = "", valence: float | None = None, arousal: float | None = None, k: int = 5) -> dict:
        """The emotional-speech clips of a collection that best match a speaking-style caption, or the caption of
        a point on the valence-arousal plane.

        Args:
            checkpoint: a checkpoint name (see the checkpoints endpoint), e.g. emotionrankclap.
            collection: a collection name (see the collections endpoint).
            query: an English speaking-style caption; leave empty to query the (valence, arousal) point instead.
            valence: 1 (very negative) to 7 (very positive); used when query is empty.
            arousal: 1 (very calm) to 7 (very active); used when query is empty.
            k: how many clips to return (1 to 50).
        """
        return friendly(self._retrieve)(checkpoint, collection, query, valence, arousal, k)

    def _retrieve(self, checkpoint, collection, query, valence, arousal, k) -> dict:
        query = text(query, "the query caption", required=False)
        if not query:
            if valence is None or arousal is None:
                raise WorkspaceError("give a query caption, or both valence and arousal")
            query = self.caption(valence, arousal)
        _, records = self._search(checkpoint, collection, query, k)
        return {"caption": query, "checkpoint": checkpoint, "collection": collection,
                "hits": [self._public(r) for r in records]}

    def _public(self, record: dict) -> dict:
        """A hit for the JSON API: the server's absolute "file" replaced by "url" (relative to the app, e.g.
        /gradio_api/file=...) when the server serves the clip's file."""
        from urllib.parse import quote

        out = {k: v for k, v in record.items() if k != "file"}
        if _under(record["file"], self.served):
            out["url"] = f"/gradio_api/file={quote(record['file'])}"
        return out

    # ----------------------------------------------------------------------------- analyse
    @friendly
    def api_analyse(self, audio: str | None, checkpoint: str = "emotionrankclap", collection: str = DEMO_TEST,
                    k: int = ANALYSE_K) -> dict:
        """Analyse a voice clip: its estimated valence and arousal (1..7), the nearest speaking-style captions and
        the nearest clips of a collection.

        Args:
            audio: a speech recording (WAV, FLAC, OGG or MP3; 0.3 to 30 seconds).
            checkpoint: a checkpoint name; one trained on real speech (e.g. emotionrankclap-plus-ravdess) for people.
            collection: the collection to find similar clips in.
            k: how many captions and clips to return (1 to 20).
        """
        res = self._analyse(audio, checkpoint, collection, k)
        return {**res, "clips": [self._public(c) for c in res["clips"]]}

    def _analyse(self, audio, checkpoint, collection, k) -> dict:
        if not audio:
            raise gr.Error("upload or record a clip first", print_exception=False)
        if not isinstance(audio, str):
            raise WorkspaceError("the clip must be an uploaded audio file")
        return self.ws.analyse(audio, checkpoint, collection, k)

    @friendly
    def analyse(self, audio: str | None, checkpoint: str, collection: str):
        """(summary, V-A plane, captions table, clips table, *ANALYSE_K players)."""
        from emorank.viz import va_plane_figure

        res = self._analyse(audio, checkpoint, collection, ANALYSE_K)
        clips = res["clips"]
        fig = va_plane_figure(np.array([[c["valence"], c["arousal"]] for c in clips]),
                              query=(res["valence"], res["arousal"]), labels=[c["id"] for c in clips],
                              title="Your clip (star) and its nearest clips")
        corpus, real = self.ws.trained_on(checkpoint)
        summary = (f"**Estimated valence {res['valence']:.2f}, arousal {res['arousal']:.2f}** (1..7, from the clip's "
                   f"embedding under `{checkpoint}`, trained on {corpus}; {res['seconds']:.1f} s analysed)."
                   + ("" if real else " This checkpoint never heard a real voice: choose one trained on real speech "
                      "for people's recordings.") + "\n\n"
                   f"Closest caption: *{res['captions'][0]['caption']}*")
        captions = [[c["caption"], c["valence"], c["arousal"], c["similarity"]] for c in res["captions"]]
        players = [_player(c["file"], _hit_label(c), self.served) for c in clips]
        players += [_player(None, "", self.served)] * (ANALYSE_K - len(players))
        return (summary, fig, captions, _hit_table(clips), *players)

    @friendly
    def estimate_va(self, audio: str, checkpoint: str = "emotionrankclap") -> dict:
        """Estimate where a voice clip sits on the valence-arousal plane.

        Args:
            audio: a speech recording (WAV, FLAC, OGG or MP3; 0.3 to 30 seconds).
            checkpoint: a checkpoint name; one trained on real speech (e.g. emotionrankclap-plus-ravdess) for people.

        Returns:
            {"valence": 1..7, "arousal": 1..7, "caption": the closest speaking-style caption, "trained_on": ...}
        """
        res = self._analyse(audio, checkpoint, DEMO_TEST, 1)
        return {"valence": res["valence"], "arousal": res["arousal"], "caption": res["captions"][0]["caption"],
                "checkpoint": checkpoint, "trained_on": self.ws.trained_on(checkpoint)[0]}

    # ----------------------------------------------------------------------------- embedding space
    def _map(self, checkpoint: str, collection: str, method: str, max_points: int, progress=None):
        """(EmbeddingMap, audio labels, text labels, audio names, text names, audio emb, text emb)."""
        from emorank.evaluate import pair_captions
        from emorank.retrieval import text_embeddings
        from emorank.viz import embedding_map

        method = choice(method, "method", MAP_METHODS)
        max_points = whole(max_points, "max_points", *MAP_POINTS)
        index = self.ws.index(checkpoint, collection, progress=_progress_fn(progress, "audio features"))
        rows = np.arange(len(index))
        if len(rows) > max_points:
            rows = np.sort(np.random.default_rng(0).choice(len(rows), size=int(max_points), replace=False))
        audio = index.audio_emb[rows]  # [N, D]
        va_audio, _ = self.ws.va_of(index, rows)
        if self.ws.source(collection).labelled:
            part = index.manifest.subset(rows)
            captions = pair_captions(index.model, part, self.ws.cache, False)
            text, va_text = text_embeddings(index.model, captions, self.ws.cache), va_audio
        else:  # no labels, no paired captions: show the V-A caption grid instead
            from emorank.captions import va_caption
            grid, text = self.ws.grid(checkpoint)
            captions, va_text = [va_caption(v, a) for v, a in grid], grid
        emap = embedding_map(audio, text, method=method, cache_dir=self.maps_dir)
        names = [index.manifest.ids[i] for i in rows]
        return emap, va_audio, va_text, names, captions, audio, text

    def api_embedding_map(self, checkpoint: str, collection: str = DEMO_TEST, method: str = "pca",
                          max_points: int = 600) -> dict:
        """2-D map (PCA or UMAP) of a checkpoint's audio and caption embeddings, with the modality-gap numbers."""
        emap, la, lt, na, nt, _, _ = friendly(self._map)(checkpoint, collection, method, max_points)

        def rows(coords, labels, names, key):
            return [{key: n, "x": round(float(x), 5), "y": round(float(y), 5), "valence": round(float(v), 3),
                     "arousal": round(float(a), 3)} for (x, y), (v, a), n in zip(coords, labels, names)]
        return {"checkpoint": checkpoint, "collection": collection, "method": emap.method, "gap": emap.gap,
                "audio": rows(emap.coords_audio, la, na, "clip"), "text": rows(emap.coords_text, lt, nt, "caption")}

    @friendly
    def embedding(self, ckpt_a: str, ckpt_b: str, collection: str, method: str, colour: str, max_points: int,
                  progress=gr.Progress()):
        """(figure, gap table, downloadable files) for one checkpoint or two side by side."""
        from emorank.viz import embedding_figure, save_embeddings, save_figure, side_by_side

        names = [c for c in (ckpt_a, ckpt_b) if c and c != NONE]
        if not names:
            raise WorkspaceError("choose a checkpoint")
        names = [self.ws.checkpoint_path(c) and c for c in names]
        method, colour = choice(method, "method", MAP_METHODS), choice(colour, "colour", MAP_COLOURS)
        max_points = whole(max_points, "clips (at most)", *MAP_POINTS)
        figs, gaps, files = [], [], []
        out = self._new_output("map-")
        for i, name in enumerate(dict.fromkeys(names)):
            progress(i / len(names), desc=f"{method.upper()} of {name}")
            emap, la, lt, na, nt, audio, text_ = self._map(name, collection, method, max_points, progress)
            figs.append(embedding_figure(emap, colour, la, lt, hover_audio=na, hover_text=nt, title=name,
                                         ids_audio=na))
            gaps.append([name, *(round(float(emap.gap[key]), 4) for key in ("mmd", "wasserstein", "centroid_distance")),
                         emap.gap["n_audio"]])
            files += save_embeddings(out / f"embeddings-{_slug(name)}", audio, text_,
                                     {"checkpoint": name, "collection": collection}, emb_map=emap,
                                     labels_audio=la, labels_text=lt, names_audio=na, names_text=nt)
        fig = side_by_side(figs, titles=list(dict.fromkeys(names))) if len(figs) > 1 else figs[0]
        files.insert(0, save_figure(fig, out / "embedding-map.html"))
        return fig, gaps, [str(f) for f in files]

    def redraw(self, drawn: bool, ckpt_a: str, ckpt_b: str, collection: str, method: str, colour: str,
               max_points: int, progress=gr.Progress()):
        """A map setting changed: draw again when a map is on screen (nothing otherwise)."""
        if not drawn:
            return gr.skip(), gr.skip(), gr.skip()
        return self.embedding(ckpt_a, ckpt_b, collection, method, colour, max_points, progress)

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
        from emorank.train import TrainConfig

        whole_ = lambda v: int(v) if isinstance(v, float) and v.is_integer() else v  # noqa: E731 (sliders send 15.0)
        budget = TrainConfig.paper if paper_budget is True else TrainConfig.recipe
        config = budget(system=system, epochs=whole_(epochs), batch_size=whole_(batch_size), lr=lr,
                        seed=whole_(seed), workers=1)  # no forked extraction workers inside a threaded server
        config.validate()  # the trainer's own checks (emorank.train.ConfigError), shared with the CLI
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
        from emorank.train import RECIPE_MIN_STEPS

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

    # ----------------------------------------------------------------------------- evaluate
    def api_evaluate(self, checkpoints: list[str], collection: str = DEMO_TEST, split: str = "test",
                     n_trials: int = 30, n_lists: int = 100) -> dict:
        """The paper's protocol on each checkpoint: {"reports": {name: report}, "table": markdown}."""
        return friendly(self._evaluate)(checkpoints, collection, split, n_trials, n_lists, None)

    @gpu
    def _evaluate(self, checkpoints, collection, split, n_trials, n_lists, progress) -> dict:
        from emorank.evaluate import EvalConfig, evaluate

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
        from emorank.viz import ordinality_figure

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
        """Available collections: name, clips, labelled, origin (a description, never a server path)."""
        return [{"name": n, "clips": len(s.manifest), "labelled": s.labelled, "origin": s.origin}
                for n, s in self.ws.collections().items()]


# ------------------------------------------------------------------------------------------- formatting
def _share_link(checkpoint: str, point, caption: str | None) -> str:
    """A relative link that reopens the page on this query (read by `Handlers.from_url`)."""
    from urllib.parse import urlencode

    params = {"checkpoint": checkpoint}
    params.update({"caption": caption} if caption else {"valence": f"{point[0]:g}", "arousal": f"{point[1]:g}"})
    return "?" + urlencode(params)


def _tau_reference(ws: Workspace, checkpoint: str, axis: str) -> str:
    """What a row's tau compares with: the checkpoint's mean over the paper's 100 lists (its eval.json)."""
    try:
        report = json.loads((ws.checkpoint_path(checkpoint) / "eval.json").read_text())
        mean = report["ordinality"]["aoc" if axis == "arousal" else "voc"]["mean"]
        return f"this checkpoint averages {mean:.2f} over the test lists"
    except (OSError, ValueError, KeyError, TypeError, WorkspaceError):
        return "one row is a small sample: the Evaluate tab averages 100 lists"


def _click_payload(payload) -> dict:
    """The page script's JSON {"clip": id} or {"valence": v, "arousal": a} (bounded, never trusted)."""
    if not isinstance(payload, str) or len(payload) > 1000:
        raise WorkspaceError("that click could not be read; click the point again")
    try:
        data = json.loads(payload)
    except ValueError:
        raise WorkspaceError("that click could not be read; click the point again") from None
    if not isinstance(data, dict):
        raise WorkspaceError("that click could not be read; click the point again")
    return data


REPORT_HEADERS = ["checkpoint", "system", "MMD ↓", "Wasserstein ↓", "AOC ↑", "VOC ↑", "R@1 a→t", "R@5 a→t",
                  "R@10 a→t", "CCC valence", "CCC arousal"]


def _report_row(name: str, r: dict) -> list:
    ms = lambda d: f"{d['mean']:.3f} ± {d['std']:.3f}"  # noqa: E731
    a, o, ret, va = r["alignment"], r["ordinality"], r["retrieval"], r["va_estimation"]
    return [name, r["meta"].get("system") or "?", ms(a["mmd"]), ms(a["wasserstein"]), ms(o["aoc"]), ms(o["voc"]),
            *(round(ret.get(k, float("nan")), 3) for k in ("a2t_r@1", "a2t_r@5", "a2t_r@10")),
            round(va["ccc_valence"], 3), round(va["ccc_arousal"], 3)]


def _paper_tables(reports: dict) -> str:
    """The paper's Tables 1-2 with significance (emorank.compare) when each checkpoint is a different system."""
    from emorank.compare import markdown, summarise

    systems = [r["meta"].get("system") for r in reports.values()]
    if len(reports) < 2:
        return "Evaluate two or more checkpoints to compare them in the paper's tables (with significance)."
    if None in systems or len(set(systems)) != len(systems):
        return ("The paper-style tables compare systems: the chosen checkpoints repeat a system "
                f"({', '.join(map(str, systems))}), so only the per-checkpoint table above is shown.")
    return markdown(summarise({s: [r] for s, r in zip(systems, reports.values())}))


def _status_markdown(s) -> str:
    bar = "█" * int(round(20 * s.fraction)) + "░" * (20 - int(round(20 * s.fraction)))
    return f"**{s.state}** `{bar}` {100 * s.fraction:.0f}%  \n{s.summary()}"


def _curve(s):
    """Per-epoch train/validation loss (viz) plus the per-step loss, or None before the first step."""
    from emorank.viz import training_curve_figure

    if not s.history and not s.losses:
        return None
    if s.history:
        fig = training_curve_figure(s.history, title=f"{s.name}: loss")
    else:
        import plotly.graph_objects as go
        fig = go.Figure().update_layout(title=f"{s.name}: loss", template="plotly_white", xaxis_title="epoch",
                                        yaxis_title="loss")
    if s.losses:
        x, y = zip(*s.losses)  # x: epochs completed; viz numbers an epoch's record by its 0-based index
        fig.add_scatter(x=[v - 1 for v in x], y=y, mode="lines", name="step loss", opacity=0.35)
    return fig


def example_captions() -> list[str]:
    """Free-text queries shipped in assets/example_captions.txt (empty when the file is missing)."""
    return [caption for caption, _ in example_caption_points()]


def example_caption_points() -> list[tuple[str, tuple[float, float] | None]]:
    """The shipped free-text queries with the (valence, arousal) each one means, from lines
    `caption | valence, arousal` (None for a line without a point)."""
    path = REPO_DIR / "assets" / "example_captions.txt"
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    out = []
    for line in (ln.strip() for ln in lines):
        if not line or line.startswith("#"):
            continue
        caption, _, point = (part.strip() for part in line.partition("|"))
        out.append((caption, tuple(float(x) for x in point.split(",")) if point else None))
    return out


def example_voices() -> list[str]:
    """Short voice clips shipped in assets/voices (synthetic, made with the project's eSpeak corpus code)."""
    folder = REPO_DIR / "assets" / "voices"
    return sorted(str(p) for p in folder.glob("*.wav")) if folder.is_dir() else []


def player(label: str, kind: str) -> gr.Audio:
    """A compact output player (the browser's own controls), hidden until it has a clip."""
    return gr.Audio(label=label, interactive=False, visible=False, elem_classes=kind, min_width=150,
                    buttons=["download"], waveform_options=gr.WaveformOptions(show_recording_waveform=False))


def theme_and_css() -> tuple[gr.themes.Base, str]:
    """The app's look (passed to launch(): Gradio 6 takes theme and css there)."""
    return gr.themes.Soft(primary_hue="indigo"), CSS


# Labels wrap instead of being cut; tab names stay whole (tabs that do not fit go to Gradio's "more tabs" menu);
# players share a row and wrap as whole cards; wide tables scroll inside their panel; the hidden boxes that carry
# plot clicks take no room.
CSS = """
#train-status code {letter-spacing: -1px}
.emorank-hidden {display: none !important}
label span, .label-wrap span, [data-testid="block-info"] {white-space: normal !important; overflow: visible !important;
  text-overflow: clip !important; overflow-wrap: anywhere}
button, .label-wrap {white-space: normal !important; overflow-wrap: anywhere; height: auto; min-width: 0}
[role="tablist"] button, .tab-container button {white-space: nowrap !important; overflow-wrap: normal !important;
  min-width: max-content}
.label-wrap {display: flex !important; gap: 4px; box-sizing: border-box}
.label-wrap > span:first-child {min-width: 0; flex: 1 1 0; text-align: left}
.label-wrap > .icon {flex: 0 0 auto; margin: 0 4px 0 0 !important; display: inline-block; width: 14px; height: 14px;
  line-height: 14px; text-align: center; transform-origin: 50% 50%}
#hit-players, #strip-players {flex-wrap: wrap !important; gap: 8px}
#hit-players > *, #strip-players > * {flex: 1 1 150px !important; min-width: 150px !important}
.table-wrap, .table-container {overflow-x: auto !important; max-width: 100%}
.wrap .secondary-wrap input, .dropdown input {text-overflow: ellipsis; padding-right: 24px !important}
@media (max-width: 640px) {
  .gradio-container {padding: 4px !important}
  #hit-players > *, #strip-players > * {flex: 1 1 45% !important; min-width: 45% !important}
}
"""

# Plotly clicks on the V-A plane and the embedding map -> a hidden textbox per plot -> a server handler.
HEAD = """<script>
(() => {
  const targets = [["va-plane", "plane-click"], ["embedding-plot", "map-click"]];
  function send(boxId, payload) {
    const box = document.querySelector(`#${boxId} textarea, #${boxId} input`);
    if (!box) return;
    const proto = box.tagName === "TEXTAREA" ? HTMLTextAreaElement.prototype : HTMLInputElement.prototype;
    Object.getOwnPropertyDescriptor(proto, "value").set.call(box, JSON.stringify({...payload, at: Date.now()}));
    box.dispatchEvent(new Event("input", {bubbles: true}));
  }
  function bind() {
    for (const [plotId, boxId] of targets) {
      document.querySelectorAll(`#${plotId} .js-plotly-plot`).forEach((gd) => {
        if (gd.__emorankBound || !gd.on) return;
        gd.__emorankBound = true;
        gd.on("plotly_click", (event) => {
          const pt = event && event.points && event.points[0];
          if (!pt) return;
          if (pt.data && pt.data.name === "pick") send(boxId, {valence: pt.customdata[0], arousal: pt.customdata[1]});
          else if (typeof pt.customdata === "string") send(boxId, {clip: pt.customdata});
        });
      });
    }
  }
  setInterval(bind, 400);
})();
</script>"""


OUTPUT_PREFIX = "emorank-app-"
MAX_OUTPUTS = 32  # request folders (maps, evaluation reports) kept in a Handlers' output folder
OWNER_FILE = "owner.pid"
STALE_SECONDS = 24 * 3600  # a folder without an owner file (older versions) is stale after a day


def app_output_dir(parent: str | os.PathLike | None = None) -> Path:
    """A fresh `emorank-app-*` folder for this process's figures and downloads: stale ones (left by processes that
    died, see `sweep_output_dirs`) are removed first, and this one is removed when the process exits."""
    import atexit
    import shutil

    sweep_output_dirs(parent)
    out = Path(tempfile.mkdtemp(prefix=OUTPUT_PREFIX, dir=parent))
    (out / OWNER_FILE).write_text(str(os.getpid()))
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    return out


def sweep_output_dirs(parent: str | os.PathLike | None = None) -> list[Path]:
    """Remove the `emorank-app-*` folders in `parent` (default: the temp dir) whose owner process is gone (or,
    without an owner file, that are older than a day); returns them. Folders of running apps are kept."""
    import shutil

    removed = []
    for folder in Path(parent or tempfile.gettempdir()).glob(f"{OUTPUT_PREFIX}*"):
        try:
            owner = folder / OWNER_FILE
            if owner.is_file():
                stale = not _alive(int(owner.read_text().strip() or 0))
            else:
                stale = time.time() - folder.stat().st_mtime > STALE_SECONDS
        except (OSError, ValueError):
            continue
        if stale and folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name)


class _private_cache:
    """A FeatureCache connection of its own for a long job (evaluation), closed afterwards."""

    def __init__(self, ws: Workspace) -> None:
        self.path = ws.assets.cache_path

    def __enter__(self):
        from emorank.features import FeatureCache
        self.cache = FeatureCache(self.path)
        return self.cache

    def __exit__(self, *exc) -> None:
        self.cache.close()
