"""What the demo app serves: first-start bootstrap (`ensure_demo`) and the workspace of checkpoints and collections.

    assets = ensure_demo()                  # builds data/demo/corpus + the feature cache once, lists checkpoints
    ws = Workspace(assets)
    index = ws.index("emotionrankclap", DEMO_TEST)       # a retrieval.Collection, cached per (checkpoint, collection)
    caption, hits = index.search_va(6.0, 2.0, k=5)
    ws.hit_records(index, hits)                          # JSON-ready rows (labels, or estimates when unlabelled)

Nothing here imports gradio: the app (app.py, emorank/app/handlers.py) and the tests drive the same objects.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from emorank.data.manifest import read_csv_manifest

from emorank.app.bounds import (
    _clean_name,
    _unique,
    ALL_LOCAL,
    DEMO_ALL,
    DEMO_TEST,
    MAX_HITS,
    MAX_RUNS,
    STRIP_VALUES,
    VA_RANGE,
    WorkspaceError,
    choice,
    number,
    text,
    whole,
)
from emorank.app.analysis import AnalysisMixin
from emorank.app.shutdown import finish_before_exit
from emorank.app.build import (
    BuildCancelled,
    BuildStatus,
    DemoAssets,
    ensure_demo,
    find_checkpoints,
    query_captions,
)
from emorank.app.checkpoints import CheckpointsMixin
from emorank.app.collections import CollectionsMixin, CollectionSource, _hub_offline

log = logging.getLogger(__name__)


class Workspace(CheckpointsMixin, CollectionsMixin, AnalysisMixin):
    """Checkpoints and collections by name, with loaded models and retrieval indexes cached; thread-safe.

    Args:
        assets: from `ensure_demo` (corpus, cache, checkpoint folders).
        max_indexes: retrieval indexes kept in memory (least recently used dropped first); also how many
            checkpoints keep a loaded model, a caption grid and a query-embedding cache at a time.
        allow_local_paths: whether collections may be added from server paths. Off by default: whoever can reach
            the app could otherwise list the server's folders and hear its audio files. Turn it on only for an app
            that listens on loopback, or on purpose.
        local_roots: the folders (symbolic links resolved) under which server paths are accepted when
            `allow_local_paths` is on; default: every folder the server's user can read (`ALL_LOCAL`).
        workers: feature-extraction processes for new clips (default 1: a threaded server should not fork).
        max_queries: free-text query embeddings kept in memory per checkpoint (`retrieval.QueryCache`): with
            `max_indexes`, at most max_indexes x max_queries embeddings are held, whatever visitors type.
        private_urls: whether `analyse` fetches clips from URLs on private or loopback addresses (off: only public
            addresses, see `emorank.app.inputs`); for an app on a private network, or tests.

    Every method that takes a name, a path or a number from a caller checks it here (paths confined to the
    allowed roots, numbers bounded), so whatever front end calls it (any Gradio handler, public or not, the CLI)
    gets the same limits and the same readable `WorkspaceError`.
    """

    def __init__(self, assets: DemoAssets, max_indexes: int = 8, allow_local_paths: bool = False,
                 local_roots: Sequence[str | os.PathLike] | None = None, workers: int = 1,
                 max_queries: int = 2048, hub_datasets: bool | None = None, private_urls: bool = False) -> None:
        from emorank.encoders.cache import FeatureCache

        self.assets = assets
        self.hub_datasets = (not _hub_offline()) if hub_datasets is None else hub_datasets
        self.max_indexes = max_indexes
        self.allow_local_paths = allow_local_paths
        self.local_roots = [os.path.realpath(r) for r in (local_roots or ALL_LOCAL)] if allow_local_paths else []
        self.upload_roots: list[str] = []  # where a front end stores uploads (see allow_uploads_from)
        self.workers = workers
        self.max_queries = max_queries
        self.private_urls = private_urls
        self.clips_dir = assets.data_dir / "incoming"  # clips sent as base64 or URLs, removed once analysed
        self.cache = FeatureCache(assets.cache_path)  # thread-safe: one connection behind a lock
        self._lock = threading.RLock()
        self._build_locks: dict[tuple, threading.Lock] = {}
        self._warned_checkpoints: set = set()  # unusable checkpoint folders already logged (see find_checkpoints)
        self._checkpoints = dict(assets.checkpoints) or find_checkpoints(assets.checkpoint_dirs, assets.runs_dir,
                                                                         warned=self._warned_checkpoints)
        # Caches, each least recently used first and bounded (see _remember): nothing a visitor asks for grows them
        # past max_indexes entries.
        self._models: OrderedDict[tuple, object] = OrderedDict()
        self._indexes: OrderedDict[tuple, object] = OrderedDict()
        self._grids: OrderedDict[tuple, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._queries: OrderedDict[tuple, object] = OrderedDict()
        self._text_refs: OrderedDict[tuple, np.ndarray] = OrderedDict()  # checkpoint -> template phrasings' typicality
        self._audio_refs: OrderedDict[tuple, object] = OrderedDict()  # checkpoint -> its clips' typicality reference
        self._collections: dict[str, CollectionSource] = {}
        self._definitions: list[dict] = []  # collections added by visitors, as saved in COLLECTIONS_FILE
        self.build = BuildStatus(ready=assets.manifest_path.is_file())
        if self.build.ready.is_set():
            self._attach_demo()

    def _attach_demo(self) -> None:
        demo = read_csv_manifest(self.assets.manifest_path)
        with self._lock:
            self._collections = {
                DEMO_TEST: CollectionSource(DEMO_TEST, demo.split_of("test"), True, "demo corpus (synthetic)", "demo"),
                DEMO_ALL: CollectionSource(DEMO_ALL, demo, True, "demo corpus (synthetic)", "demo"),
                **self._collections}
        self.build.ready.set()

    # ----------------------------------------------------------------------------- background build
    def build_demo(self, warm: bool = True, **demo_kwargs) -> None:
        """What an app runs in a background thread once its page answers: `ensure_demo` (corpus, features,
        caption features) with its progress in `self.build`, then the demo collections, the collections visitors
        added before a restart (`restore_collections`) and, with `warm`, the warm-up. Never raises."""
        self.build.running = True
        try:
            assets = ensure_demo(self.assets.data_dir, self.build.report, checkpoint_dirs=self.assets.checkpoint_dirs,
                                 cache_path=self.assets.cache_path, **demo_kwargs)
            self.assets.manifest_path, self.assets.built, self.assets.seconds = (assets.manifest_path, assets.built,
                                                                                 assets.seconds)
            self.refresh_checkpoints()
            self._attach_demo()
        except BuildCancelled:
            log.info("the demo build stopped: the app is exiting")
            return
        except Exception as err:  # noqa: BLE001 - the page must say so, the server must stay up
            log.exception("building the demo failed")
            with self.build._lock:
                self.build.error = f"the demo corpus could not be built ({type(err).__name__}); the server log says why"
        finally:
            self.build.running = False
        self.restore_collections()
        if warm:
            self.warm()

    def start_build(self, warm: bool = True, **demo_kwargs) -> threading.Thread:
        thread = threading.Thread(target=self.build_demo, kwargs={"warm": warm, **demo_kwargs},
                                  name="emorank-build", daemon=True)
        thread.start()
        finish_before_exit(thread, self.build.cancel.set, 30.0)  # it runs torch: it must end before Python does
        return thread

    def allow_uploads_from(self, folder: str | os.PathLike) -> None:
        """Accept files under `folder` in `analyse` (a front end's upload folder), whatever `local_roots` says."""
        with self._lock:
            self.upload_roots = sorted({*self.upload_roots, os.path.realpath(folder)})

    # ----------------------------------------------------------------------------- indexes
    def index(self, checkpoint: str, collection: str, progress: Callable[[int, int], None] | bool = False):
        """The retrieval index (emorank.search.retrieval.Collection) of a collection under a checkpoint; built once."""
        from emorank.encoders.cache import FeatureCache
        from emorank.search.retrieval import Collection, audio_embeddings

        key = (*self._model_key(checkpoint), collection)
        source = self.source(collection)
        with self._lock:
            if key in self._indexes:
                self._indexes.move_to_end(key)
                return self._indexes[key]
            build_lock = self._build_locks.setdefault(key, threading.Lock())
        with build_lock:  # one build per key; other keys (and searches) go on meanwhile
            with self._lock:
                if key in self._indexes:
                    return self._indexes[key]
            model = self.model(checkpoint)
            with FeatureCache(self.assets.cache_path) as private:  # long extraction on its own connection
                kept, emb = audio_embeddings(model, source.manifest, private, progress, workers=self.workers)
            if len(kept) == 0:
                raise WorkspaceError(f"no clip of {collection!r} could be read; see the server log for reasons")
            index = Collection(model, kept, emb, cache=self.cache, grid=self.grid(checkpoint),
                               queries=self.queries(checkpoint))
            with self._lock:
                self._indexes[key] = index
                while len(self._indexes) > self.max_indexes:
                    self._indexes.popitem(last=False)
                self._build_locks.pop(key, None)
            return index

    def grid(self, checkpoint: str) -> tuple[np.ndarray, np.ndarray]:
        """The V-A caption grid of a checkpoint: ([G, 2] points, [G, D] caption embeddings), cached."""
        from emorank.search.retrieval import grid_embeddings

        key = self._model_key(checkpoint)
        with self._lock:
            if key not in self._grids:
                self._remember(self._grids, key, grid_embeddings(self.model(checkpoint), cache=self.cache))
            self._grids.move_to_end(key)
            return self._grids[key]

    def queries(self, checkpoint: str):
        """The checkpoint's in-memory cache of query embeddings (`retrieval.QueryCache`), created with the slider
        captions (`query_captions`) already embedded, in one batch from the feature cache."""
        from emorank.search.retrieval import QueryCache

        key = self._model_key(checkpoint)
        with self._lock:
            if key not in self._queries:
                queries = QueryCache(self.model(checkpoint), self.max_queries, cache=self.cache)
                queries.embed(query_captions())
                self._remember(self._queries, key, queries)
            self._queries.move_to_end(key)
            return self._queries[key]

    def _remember(self, store: OrderedDict, key: tuple, value) -> None:
        """Put `value` in one of the caches, dropping its least recently used entries beyond `max_indexes`."""
        store[key] = value
        store.move_to_end(key)
        while len(store) > self.max_indexes:
            store.popitem(last=False)

    # ----------------------------------------------------------------------------- bounded requests
    def caption(self, valence, arousal) -> str:
        """The V-A caption of a point on the 1..7 sliders (the wording `Collection.search_va` uses)."""
        from emorank.captions.va import va_caption

        v, a = number(valence, "valence", *VA_RANGE), number(arousal, "arousal", *VA_RANGE)
        return va_caption(v, a, np.random.default_rng(0))

    def search(self, checkpoint: str, collection: str, query: str, k=5, max_k: int = MAX_HITS,
               progress: Callable[[int, int], None] | bool = False,
               point: Sequence[float] | None = None) -> tuple[object, list[dict]]:
        """A caption's top-k clips of a collection: (index, hit records, each with its label "distance" from the
        query's V-A point, see `query_point`). Arguments checked and bounded."""
        query = text(query, "the query caption")
        k = whole(k, "k (clips to return)", 1, max_k)
        index = self.index(checkpoint, collection, progress=progress)
        return index, self.hit_records(index, index.search_text(query, k), self.query_point(index, query, point))

    def query_point(self, index, query: str, point: Sequence[float] | None = None) -> tuple[float, float]:
        """Where a query sits on the V-A plane: `point` when the caption came from one (the sliders), else where
        the checkpoint places the caption (similarity-weighted over the V-A caption grid)."""
        if point is not None:
            return float(point[0]), float(point[1])
        va = index.estimate_va(index.queries.embed([query]))[0]  # [2]
        return round(float(va[0]), 2), round(float(va[1]), 2)

    def neighbours(self, checkpoint: str, collection: str, axis: str, fixed) -> tuple[object, list[dict]]:
        """The ordinal strip (one clip per step 1..7 along `axis`, the other axis at `fixed`): (index, records)."""
        from emorank.search.retrieval import AXES

        axis = choice(axis, "axis", AXES)
        fixed = number(fixed, "the other axis's value", *VA_RANGE)
        index = self.index(checkpoint, collection)
        return index, self.hit_records(index, index.ordinal_neighbours(axis, fixed, STRIP_VALUES))

    @staticmethod
    def row_tau(records: list[dict], axis: str) -> float | None:
        """Kendall tau-b between the ordinal row's caption levels (STRIP_VALUES) and its clips' values on `axis`:
        1 when the clips rise in the order of the captions, 0 for no order (None for fewer than two clips)."""
        from scipy.stats import kendalltau

        values = [r[axis] for r in records]
        if len(values) < 2 or len(set(values)) < 2:
            return None
        return float(kendalltau(STRIP_VALUES[:len(values)], values).statistic)

    def va_of(self, index, rows: Sequence[int] | np.ndarray) -> tuple[np.ndarray, bool]:
        """(valence, arousal) [M, 2] of index rows: the labels, or estimates from the embeddings when unknown.
        Returns (values, estimated)."""
        rows = np.asarray(rows, dtype=np.int64)
        va = index.manifest.va()[rows]  # [M, 2]
        if len(rows) and np.isnan(va).any():
            return index.estimate_va(index.audio_emb[rows]), True
        return va, False

    def hit_records(self, index, hits, point: Sequence[float] | None = None) -> list[dict]:
        """JSON-ready rows of retrieval hits: rank, id (path under the collection root), file (absolute path), V-A
        (labels or estimates, flagged), emotion, speaker, similarity and, with `point`, "distance": the
        Euclidean distance on the 1..7 plane between the clip's V-A and `point`. (No "path" key: Gradio would take such a
        dict for a file to upload.)"""
        va, estimated = self.va_of(index, [h.row for h in hits])
        ids = index.manifest.ids
        return [{"rank": r + 1, "id": ids[h.row], "file": h.path, "valence": round(float(v), 3),
                 "arousal": round(float(a), 3), "labels": "estimated" if estimated else "rated",
                 "emotion": h.emotion, "speaker": h.speaker, "similarity": round(h.score, 4),
                 **({"distance": round(float(np.hypot(v - point[0], a - point[1])), 2)} if point is not None else {})}
                for r, (h, (v, a)) in enumerate(zip(hits, va))]

    def warm(self, collections: Sequence[str] = (DEMO_TEST, DEMO_ALL)) -> None:
        """Background warm-up: the first checkpoint's text encoder (free-text queries then answer at once), every
        checkpoint's caption grid, and the indexes of `collections` under the first checkpoint (this computes any
        missing audio features, e.g. the demo's train/dev splits after a first start, so "all splits" and
        training start at once). Failures are logged, never raised."""

        names = list(self.checkpoints())
        for name in names:
            first = name == names[0]
            steps = [lambda: self.model(name).encode_text("The person is speaking.")] if first else []
            steps += [lambda: self.grid(name)] + [lambda c=c: self.index(name, c) for c in collections if first]
            for step in steps:
                if self.build.cancel.is_set():  # the app is exiting
                    return
                try:
                    step()
                except Exception as err:  # noqa: BLE001 - a warm-up must never take the app down
                    log.warning("warm-up of %s failed: %s", name, err)

    # ----------------------------------------------------------------------------- runs
    def new_run_dir(self, name: str) -> tuple[str, Path]:
        """A fresh folder under the runs directory for a training run named after `name` (made unique)."""
        base = _clean_name(name) or time.strftime("run-%Y%m%d-%H%M%S")
        taken = {p.name for p in self.assets.runs_dir.glob("*")} if self.assets.runs_dir.is_dir() else set()
        if len(taken) >= MAX_RUNS:
            raise WorkspaceError(f"this app's storage for training runs is full ({MAX_RUNS} runs); its operator can "
                                 f"remove old runs")
        final = _unique(base, taken)
        return final, self.assets.runs_dir / final
