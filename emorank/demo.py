"""What the demo app serves: first-start bootstrap (`ensure_demo`) and the workspace of checkpoints and collections.

    assets = ensure_demo()                  # builds data/demo/corpus + the feature cache once, lists checkpoints
    ws = Workspace(assets)
    index = ws.index("emotionrankclap", DEMO_TEST)       # a retrieval.Collection, cached per (checkpoint, collection)
    caption, hits = index.search_va(6.0, 2.0, k=5)
    ws.hit_records(index, hits)                          # JSON-ready rows (labels, or estimates when unlabelled)

Nothing here imports gradio: the app (app.py, emorank/ui.py) and the tests drive the same objects.
"""
from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from emorank.datasets import Manifest, read_csv_manifest

log = logging.getLogger(__name__)
ProgressFn = Callable[[float, str], None]  # (fraction done in [0, 1], message)

REPO_DIR = Path(__file__).resolve().parent.parent
DEMO_N, DEMO_SEED = 1000, 0
DEMO_TEST, DEMO_ALL = "demo corpus · test split", "demo corpus · all splits"
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".au")
ANALYSE_MAX_SECONDS = 30.0  # uploads longer than this are refused (the encoders see 10 s anyway)
ANALYSE_MIN_SECONDS = 0.3
MAX_FOLDER_FILES = 5000
STRIP_VALUES = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0)  # the ordinal strip: one clip per step (paper, Figure 3)
ALL_LOCAL = (os.path.abspath(os.sep),)  # `local_roots` for a private app: every folder the server's user can read

# What one request may ask for (a public app's visitors must not be able to make the server work for minutes).
MAX_HITS = 50  # clips returned by one search
MAX_ANALYSE_HITS = 20
MAX_QUERY_CHARS = 500  # a caption; longer text is truncated by the text encoders anyway
MAX_NAME_CHARS = 200  # a checkpoint, collection or run name
MAP_POINTS = (10, 2000)  # clips drawn in an embedding map
EVAL_TRIALS, EVAL_LISTS, MAX_EVAL_CHECKPOINTS = (2, 30), (10, 100), 4  # the paper's protocol: 30 trials, 100 lists
VA_RANGE = (1.0, 7.0)
MAX_COLLECTIONS = 64  # collections a workspace holds (each keeps its manifest and, once searched, an index)
MAX_RUNS = 200  # training runs kept in the runs folder; beyond that new runs are refused


class WorkspaceError(ValueError):
    """A checkpoint or collection name, path or request the workspace cannot serve; the message says why.

    Messages never contain absolute server paths or file contents: they are shown to the app's visitors."""


# ------------------------------------------------------------------------------------------- argument bounds
def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def whole(value, name: str, lo: int, hi: int) -> int:
    """`value` as an int in [lo, hi] (whole floats and numeric strings accepted), else WorkspaceError."""
    try:
        if isinstance(value, bool) or value is None:
            raise TypeError
        number_ = float(value)
        if not number_.is_integer():
            raise ValueError
        out = int(number_)
    except (TypeError, ValueError, OverflowError):
        raise WorkspaceError(f"{name} must be a whole number from {lo} to {hi} (got {_shown(value)})") from None
    if not lo <= out <= hi:
        raise WorkspaceError(f"{name} must be a whole number from {lo} to {hi} (got {out})")
    return out


def number(value, name: str, lo: float, hi: float, *, open_low: bool = False) -> float:
    """`value` as a finite float in [lo, hi] ((lo, hi] with open_low), else WorkspaceError."""
    bounds = f"{'above' if open_low else 'from'} {lo:g} {'and up' if open_low else ''} to {hi:g}".replace("  ", " ")
    try:
        if isinstance(value, bool) or value is None:
            raise TypeError
        out = float(value)
    except (TypeError, ValueError, OverflowError):
        raise WorkspaceError(f"{name} must be a number {bounds} (got {_shown(value)})") from None
    if not (np.isfinite(out) and (lo < out if open_low else lo <= out) and out <= hi):
        raise WorkspaceError(f"{name} must be a number {bounds} (got {_shown(value)})")
    return out


def text(value, name: str, max_chars: int = MAX_QUERY_CHARS, required: bool = True) -> str:
    """`value` as a stripped string of at most `max_chars` characters (empty allowed unless required)."""
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise WorkspaceError(f"{name} must be text (got {_shown(value)})")
    out = value.strip()
    if required and not out:
        raise WorkspaceError(f"{name} is empty")
    if len(out) > max_chars or "\x00" in out:
        raise WorkspaceError(f"{name} must be at most {max_chars} characters of text (got {len(out)})")
    return out


def choice(value, name: str, options) -> str:
    """`value` when it is one of `options` (strings), else WorkspaceError listing them."""
    options = list(options)
    if not isinstance(value, str) or value not in options:
        raise WorkspaceError(f"{name} must be one of {', '.join(options)} (got {_shown(value)})")
    return value


def names(value, name: str, max_items: int) -> list[str]:
    """A list of 1..max_items distinct names (strings); a single string counts as a list of one."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise WorkspaceError(f"{name} must be a list of names (got {_shown(value)})")
    out = list(dict.fromkeys(v for v in value if v.strip()))
    if not out:
        raise WorkspaceError(f"choose at least one of the {name}")
    if len(out) > max_items:
        raise WorkspaceError(f"choose at most {max_items} {name} at a time (got {len(out)})")
    return out


def confine(path, roots: Sequence[str], what: str = "path") -> Path:
    """The absolute path of `path`, symbolic links resolved, when it lies inside one of `roots` (resolved folders);
    WorkspaceError otherwise. Confinement is checked before existence, so a refusal says nothing about what exists
    outside the roots; messages name the file only (never the folders above it)."""
    if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
        raise WorkspaceError(f"give the {what}")
    raw = str(path).strip()
    if "\x00" in raw or len(raw) > 4096:
        raise WorkspaceError(f"that {what} is not allowed on this server")
    real = os.path.realpath(os.path.expanduser(raw))
    if not any(_inside(real, root) for root in roots):
        raise WorkspaceError(f"that {what} is outside the folders this server allows")
    return Path(real)


def _inside(real: str, root: str) -> bool:
    return real == root or real.startswith(os.path.join(root, ""))


def is_loopback(host: str | None) -> bool:
    """Whether a server bound to `host` can only be reached from this machine (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    if host is None or str(host).strip().lower() == "localhost":
        return host is not None
    try:
        return ipaddress.ip_address(str(host).strip().strip("[]")).is_loopback
    except ValueError:
        return False


def local_paths_policy(host: str | None, *, share: bool = False, opt_in: bool = False, opt_out: bool = False,
                       environ=os.environ) -> bool:
    """Whether an app may add collections from server paths: only when asked explicitly (`opt_in`), or by default
    when it listens on loopback only, is not shared through a tunnel and is not a Hugging Face Space."""
    if opt_out:
        return False
    if opt_in:
        return True
    public = share or environ.get("SPACE_ID") or environ.get("GRADIO_SHARE", "").lower() in ("1", "true")
    return is_loopback(host) and not public


def visible_name(path) -> str:
    """What a message may show of a server path: its last component."""
    return Path(str(path)).name or "(root)"


# ------------------------------------------------------------------------------------------- bootstrap
@dataclass
class DemoAssets:
    """Where the demo's pieces are on disk, and what `ensure_demo` had to build this time."""

    data_dir: Path
    manifest_path: Path  # the demo corpus manifest.csv
    cache_path: Path  # the feature cache (SQLite)
    runs_dir: Path  # user-trained runs: runs/<name>/checkpoint
    checkpoint_dirs: list[Path]  # folders scanned for shipped checkpoints (<dir>/<name>/config.json)
    checkpoints: dict[str, Path] = field(default_factory=dict)
    built: list[str] = field(default_factory=list)  # "corpus", "audio features", "caption features"
    seconds: float = 0.0


def default_data_dir() -> Path:
    """$EMORANK_DATA, else ./data/demo under the working directory."""
    env = os.environ.get("EMORANK_DATA")
    return Path(env) if env else Path.cwd() / "data" / "demo"


def console_progress(fraction: float, message: str) -> None:
    """The default progress reporter: one line per message on stderr."""
    print(f"[emorank {fraction * 100:5.1f}%] {message}", file=sys.stderr, flush=True)


def ensure_demo(data_dir: str | os.PathLike | None = None, progress: ProgressFn | None = None, *,
                n: int = DEMO_N, seed: int = DEMO_SEED, splits: Sequence[str] = ("test",),
                checkpoint_dirs: Sequence[str | os.PathLike] | None = None, workers: int | None = None,
                audio_encoder: str | None = None, text_encoder: str | None = None,
                cache_path: str | os.PathLike | None = None) -> DemoAssets:
    """Build what the demo needs, skipping whatever already exists; returns where everything is.

    1. the synthetic demo corpus (`build_demo_corpus(n, seed)`) in `data_dir/corpus` (a corpus already built
       directly in `data_dir`, e.g. by `python -m emorank corpus --out data/demo`, is used as it is);
    2. the audio features of the clips of `splits` (default: the test split the app explores first) and the
       caption features the app queries (V-A grid captions), in `cache_path` (default `data_dir/features.sqlite`);
    3. the list of checkpoints: shipped ones in `checkpoint_dirs` (default `<repo>/checkpoints`) and user-trained
       ones in `data_dir/runs/*/checkpoint`.

    Encoders default to those of the first checkpoint found (else eGeMAPS + MiniLM, the offline defaults).
    Call it under `if __name__ == "__main__":` (the corpus builder starts worker processes).
    """
    from emorank.features import FeatureCache

    t0 = time.perf_counter()
    report = progress or console_progress
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    dirs = [Path(d) for d in checkpoint_dirs] if checkpoint_dirs is not None else [REPO_DIR / "checkpoints"]
    assets = DemoAssets(data_dir=data_dir.resolve(), manifest_path=corpus_manifest(data_dir.resolve()),
                        cache_path=Path(cache_path) if cache_path else data_dir.resolve() / "features.sqlite",
                        runs_dir=data_dir.resolve() / "runs",
                        checkpoint_dirs=dirs)
    if not assets.manifest_path.is_file():
        from emorank.corpus import build_demo_corpus  # imported only when needed (scipy.signal is slow to load)

        report(0.0, f"building the synthetic demo corpus ({n} clips, eSpeak NG) in {assets.manifest_path.parent}")
        build_demo_corpus(assets.manifest_path.parent, n=n, seed=seed, workers=workers,
                          progress=lambda done, total: report(0.6 * done / max(total, 1),
                                                              f"rendering clips {done}/{total}"))
        assets.built.append("corpus")
    assets.checkpoints = find_checkpoints(dirs, assets.runs_dir)
    audio_name, audio_kw, text_name, text_kw = _encoder_choice(assets.checkpoints, audio_encoder, text_encoder)
    manifest = read_csv_manifest(assets.manifest_path)
    rows = manifest.subset(np.isin(np.asarray(manifest.split, dtype=object), list(splits)))
    with FeatureCache(assets.cache_path) as cache:
        if fill_audio_features(cache, rows.path, audio_name, audio_kw, workers, report, (0.6, 0.95)):
            assets.built.append("audio features")
        if fill_caption_features(cache, text_name, text_kw, report, 0.95):
            assets.built.append("caption features")
    assets.seconds = time.perf_counter() - t0
    report(1.0, f"demo ready in {assets.seconds:.1f} s ({', '.join(assets.built) or 'nothing'} built; "
                f"{len(assets.checkpoints)} checkpoint(s))")
    return assets


def corpus_manifest(data_dir: Path) -> Path:
    """The demo corpus manifest of a data folder: `data_dir/manifest.csv` when the corpus was built there
    directly, else `data_dir/corpus/manifest.csv` (where `ensure_demo` builds it)."""
    direct = data_dir / "manifest.csv"
    return direct if direct.is_file() else data_dir / "corpus" / "manifest.csv"


def clip_folders(manifest: Manifest) -> list[str]:
    """The folders that hold a manifest's clips (symbolic links resolved), without folders nested in others.

    These, not the manifest's root, are what the app serves: a root can also hold caches, runs or documents."""
    folders = sorted({os.path.realpath(os.path.dirname(p)) for p in manifest.path})
    kept: list[str] = []
    for f in folders:  # sorted: a parent comes before its children
        if not any(f == k or f.startswith(os.path.join(k, "")) for k in kept):
            kept.append(f)
    return kept


def _encoder_choice(checkpoints: dict[str, Path], audio: str | None, text: str | None) -> tuple[str, dict, str, dict]:
    from emorank.model import CheckpointError, read_checkpoint_config

    for path in checkpoints.values():
        try:
            m = read_checkpoint_config(path)["model"]
        except (CheckpointError, KeyError):
            continue
        return (audio or m["audio_encoder"], m.get("audio_encoder_kwargs", {}) if audio is None else {},
                text or m["text_encoder"], m.get("text_encoder_kwargs", {}) if text is None else {})
    return audio or "egemaps", {}, text or "minilm", {}


def fill_audio_features(cache, paths: Sequence[str], encoder: str, kwargs: dict, workers: int | None,
                        report: ProgressFn, span: tuple[float, float] = (0.0, 1.0)) -> bool:
    """Compute the missing audio features of `paths`; True when anything had to be computed."""
    from emorank.encoders import build_audio_encoder

    enc = build_audio_encoder(encoder, **kwargs)
    have = cache.get_many(enc.fingerprint(), [cache.content_hash(p) for p in paths])
    missing = len(paths) - len(have)
    if missing <= 0:
        return False
    lo, hi = span
    report(lo, f"extracting {encoder} features of {missing} clips (once; cached in {cache.path})")
    cache.audio_features(paths, enc, workers=workers,
                         progress=lambda done, total: report(lo + (hi - lo) * done / max(total, 1),
                                                             f"audio features {done}/{total}"))
    return True


def query_captions(seed: int = 0) -> list[str]:
    """The captions the app queries most: one per V-A level pair as `Collection.search_va` words them."""
    from emorank.captions import LEVEL_VALUES, va_caption

    return [va_caption(v, a, np.random.default_rng(seed)) for v in LEVEL_VALUES for a in LEVEL_VALUES]


def fill_caption_features(cache, encoder: str, kwargs: dict, report: ProgressFn, at: float = 0.0) -> bool:
    """Cache the text features of the slider captions and of the V-A estimation grid; True when any were new."""
    from emorank.encoders import build_text_encoder
    from emorank.features import text_sha
    from emorank.retrieval import grid_embeddings

    enc = build_text_encoder(encoder, **kwargs)
    texts = query_captions()
    if len(cache.get_many(enc.fingerprint(), [text_sha(t) for t in texts])) == len(set(texts)):
        return False
    report(at, f"encoding the query captions with {encoder} (once)")
    cache.text_features(texts, enc)
    grid_embeddings(_TextSide(enc), cache=cache)  # fills the cache with the grid's caption features
    return True


class _TextSide:
    """The text side of a model with an identity head: lets retrieval helpers fill the text-feature cache
    without a checkpoint (the heads are applied to the cached features later)."""

    def __init__(self, encoder) -> None:
        self.text_encoder = encoder

    @staticmethod
    def embed_text_features(raw: np.ndarray) -> np.ndarray:
        return raw


def find_checkpoints(checkpoint_dirs: Sequence[Path], runs_dir: Path) -> dict[str, Path]:
    """Shipped checkpoints (`<dir>/<name>/config.json`) by folder name, then runs as "runs/<name>", sorted."""
    found: dict[str, Path] = {}
    for d in checkpoint_dirs:
        for cfg in sorted(Path(d).glob("*/config.json")):
            found.setdefault(cfg.parent.name, cfg.parent.resolve())
    for cfg in sorted(Path(runs_dir).glob("*/checkpoint/config.json")):
        found[f"runs/{cfg.parent.parent.name}"] = cfg.parent.resolve()
    return found


# ------------------------------------------------------------------------------------------- collections
@dataclass
class CollectionSource:
    """A named set of clips the app can search: a manifest (labelled) or a folder of audio (labels unknown)."""

    name: str
    manifest: Manifest
    labelled: bool
    origin: str  # where it came from (the manifest CSV or the folder)

    @property
    def root(self) -> str:
        return self.manifest.root


def folder_manifest(folder: str | os.PathLike, max_files: int = MAX_FOLDER_FILES,
                    roots: Sequence[str] = ALL_LOCAL) -> Manifest:
    """Every audio file under `folder` (recursively, sorted) as an unlabelled manifest (V-A = NaN); files whose
    real path (symbolic links resolved) leaves `roots` are skipped. At most `max_files` are listed."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise WorkspaceError(f"{visible_name(folder)} is not a folder")
    files: list[str] = []
    for p in folder.rglob("*"):
        if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file():
            real = os.path.realpath(p)
            if any(_inside(real, root) for root in roots):
                files.append(real)
            if len(files) > max_files:
                raise WorkspaceError(f"{visible_name(folder)} holds more audio files than a folder collection takes "
                                     f"(at most {max_files}); write a manifest CSV for larger corpora")
    files.sort()
    if not files:
        raise WorkspaceError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) found under {visible_name(folder)}")
    nan = np.full(len(files), np.nan)
    return Manifest(path=files, valence=nan, arousal=nan.copy(), root=str(folder.resolve()))


# ------------------------------------------------------------------------------------------- workspace
class Workspace:
    """Checkpoints and collections by name, with loaded models and retrieval indexes cached; thread-safe.

    Args:
        assets: from `ensure_demo` (corpus, cache, checkpoint folders).
        max_indexes: retrieval indexes kept in memory (least recently used dropped first).
        allow_local_paths: whether collections may be added from server paths. Off by default: whoever can reach
            the app could otherwise list the server's folders and hear its audio files. Turn it on only for an app
            that listens on loopback, or on purpose.
        local_roots: the folders (symbolic links resolved) under which server paths are accepted when
            `allow_local_paths` is on; default: every folder the server's user can read (`ALL_LOCAL`).
        workers: feature-extraction processes for new clips (default 1: a threaded server should not fork).
        max_queries: free-text query embeddings kept in memory per checkpoint (`retrieval.QueryCache`).

    Every method that takes a name, a path or a number from a caller checks it here (paths confined to the
    allowed roots, numbers bounded), so whatever front end calls it (any Gradio handler, public or not, the CLI)
    gets the same limits and the same readable `WorkspaceError`.
    """

    def __init__(self, assets: DemoAssets, max_indexes: int = 8, allow_local_paths: bool = False,
                 local_roots: Sequence[str | os.PathLike] | None = None, workers: int = 1,
                 max_queries: int = 2048) -> None:
        from emorank.features import FeatureCache

        self.assets = assets
        self.max_indexes = max_indexes
        self.allow_local_paths = allow_local_paths
        self.local_roots = [os.path.realpath(r) for r in (local_roots or ALL_LOCAL)] if allow_local_paths else []
        self.upload_roots: list[str] = []  # where a front end stores uploads (see allow_uploads_from)
        self.workers = workers
        self.max_queries = max_queries
        self.cache = FeatureCache(assets.cache_path)  # thread-safe: one connection behind a lock
        self._lock = threading.RLock()
        self._build_locks: dict[tuple, threading.Lock] = {}
        self._checkpoints = dict(assets.checkpoints) or find_checkpoints(assets.checkpoint_dirs, assets.runs_dir)
        self._models: dict[tuple, object] = {}
        self._indexes: OrderedDict[tuple, object] = OrderedDict()
        self._grids: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        self._queries: dict[tuple, object] = {}
        demo = read_csv_manifest(assets.manifest_path)
        self._collections: dict[str, CollectionSource] = {
            DEMO_TEST: CollectionSource(DEMO_TEST, demo.split_of("test"), True, "demo corpus (synthetic)"),
            DEMO_ALL: CollectionSource(DEMO_ALL, demo, True, "demo corpus (synthetic)"),
        }

    def allow_uploads_from(self, folder: str | os.PathLike) -> None:
        """Accept files under `folder` in `analyse` (a front end's upload folder), whatever `local_roots` says."""
        with self._lock:
            self.upload_roots = sorted({*self.upload_roots, os.path.realpath(folder)})

    # ----------------------------------------------------------------------------- checkpoints
    def checkpoints(self) -> dict[str, Path]:
        with self._lock:
            return dict(self._checkpoints)

    def refresh_checkpoints(self) -> dict[str, Path]:
        """Rescan the shipped folders and the runs folder (checkpoints added on disk appear)."""
        found = find_checkpoints(self.assets.checkpoint_dirs, self.assets.runs_dir)
        with self._lock:
            self._checkpoints.update(found)
            return dict(self._checkpoints)

    def add_checkpoint(self, name: str, path: str | os.PathLike) -> str:
        """Register a checkpoint folder (e.g. a finished training run); returns its name in the lists."""
        from emorank.model import read_checkpoint_config

        path = Path(path).resolve()
        read_checkpoint_config(path)  # raises CheckpointError when it is not a valid checkpoint
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
                raise WorkspaceError(f"unknown checkpoint {name!r}; available: "
                                     f"{', '.join(self._checkpoints) or 'none'}")
            return self._checkpoints[name]

    def checkpoint_label(self, name: str) -> str:
        """"name · system title" for drop-downs (falls back to the name)."""
        from emorank.model import CheckpointError, read_checkpoint_config

        try:
            cfg = read_checkpoint_config(self.checkpoint_path(name))
        except (CheckpointError, WorkspaceError):
            return name
        title = (cfg.get("system") or {}).get("title") or (cfg.get("system") or {}).get("name") or "?"
        return f"{name} · {title}" + (" (stopped early)" if cfg.get("stopped") else "")

    def model(self, name: str):
        """The loaded model of a checkpoint (cached; reloaded when its folder changes)."""
        from emorank.model import EmotionRankCLAP

        key = self._model_key(name)
        with self._lock:
            if key not in self._models:
                self._models = {k: v for k, v in self._models.items() if k[0] != name}
                self._models[key] = EmotionRankCLAP.from_checkpoint(key[1])
            return self._models[key]

    def _model_key(self, name: str) -> tuple:
        path = self.checkpoint_path(name)
        try:
            stamp = (path / "config.json").stat().st_mtime_ns
        except OSError as err:
            raise WorkspaceError(f"checkpoint {name!r} cannot be read: {err.strerror}") from err
        return name, path, stamp

    def _drop_cached(self, checkpoint: str) -> None:
        for store in (self._models, self._indexes, self._grids, self._queries):
            for key in [k for k in store if k[0] == checkpoint]:
                del store[key]

    # ----------------------------------------------------------------------------- collections
    def collections(self) -> dict[str, CollectionSource]:
        with self._lock:
            return dict(self._collections)

    def source(self, name: str) -> CollectionSource:
        if not isinstance(name, str) or not name.strip():
            raise WorkspaceError(f"choose a collection (got {_shown(name)})")
        with self._lock:
            if name not in self._collections:
                raise WorkspaceError(f"unknown collection {name!r}; available: {', '.join(self._collections)}")
            return self._collections[name]

    def add_collection(self, path: str | os.PathLike, name: str | None = None) -> CollectionSource:
        """Add a manifest CSV (labelled) or a folder of audio (unlabelled) under `name` (default: its file name).

        The path, and every clip it names, must lie inside `local_roots` (symbolic links resolved); refusals and
        errors name the file, never the folders above it, and never quote the file's contents."""
        from emorank.datasets import ManifestError

        if not self.allow_local_paths:
            raise WorkspaceError("adding collections from server paths is disabled on this deployment")
        if name is not None and not isinstance(name, str):
            raise WorkspaceError(f"the collection name must be text (got {_shown(name)})")
        p = confine(path, self.local_roots, "path of a manifest CSV or of a folder of audio files")
        if p.is_dir():
            source = CollectionSource("", folder_manifest(p, roots=self.local_roots), False,
                                      f"folder {visible_name(p)}")
        elif p.is_file() and p.suffix.lower() == ".csv":
            try:
                manifest = read_csv_manifest(p, check_files=False)
            except (ManifestError, UnicodeDecodeError, OSError):
                raise WorkspaceError(f"{p.name} is not a valid manifest CSV (columns path, valence, arousal; "
                                     f"optional split, speaker, emotion)") from None
            outside = sum(not any(_inside(os.path.realpath(f), r) for r in self.local_roots) for f in manifest.path)
            if outside:
                raise WorkspaceError(f"{p.name} names {outside} clip(s) outside the folders this server allows")
            missing = sum(not os.path.isfile(f) for f in manifest.path)
            if missing:
                raise WorkspaceError(f"{p.name}: {missing} of its {len(manifest)} audio files are missing")
            source = CollectionSource("", manifest, True, f"manifest {p.name}")
        elif p.exists():
            raise WorkspaceError(f"{p.name} is neither a folder of audio nor a manifest .csv file")
        else:
            raise WorkspaceError(f"{p.name} does not exist")
        label = " ".join(str(name or p.stem or p.name).split())[:60]
        with self._lock:
            if len(self._collections) >= MAX_COLLECTIONS:
                raise WorkspaceError(f"this app holds at most {MAX_COLLECTIONS} collections; restart it to add more")
            source.name = _unique(label, self._collections)
            self._collections[source.name] = source
        return source

    def allowed_roots(self) -> list[str]:
        """Folders whose files the server may serve: those holding the collections' clips (and nothing else)."""
        return sorted({f for s in self.collections().values() for f in clip_folders(s.manifest)})

    # ----------------------------------------------------------------------------- indexes
    def index(self, checkpoint: str, collection: str, progress: Callable[[int, int], None] | bool = False):
        """The retrieval index (emorank.retrieval.Collection) of a collection under a checkpoint; built once."""
        from emorank.features import FeatureCache
        from emorank.retrieval import Collection, audio_embeddings

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
        from emorank.retrieval import grid_embeddings

        key = self._model_key(checkpoint)
        with self._lock:
            if key not in self._grids:
                self._grids[key] = grid_embeddings(self.model(checkpoint), cache=self.cache)
            return self._grids[key]

    def queries(self, checkpoint: str):
        """The checkpoint's in-memory cache of query embeddings (`retrieval.QueryCache`), created with the slider
        captions (`query_captions`) already embedded, in one batch from the feature cache."""
        from emorank.retrieval import QueryCache

        key = self._model_key(checkpoint)
        with self._lock:
            if key not in self._queries:
                queries = QueryCache(self.model(checkpoint), self.max_queries, cache=self.cache)
                queries.embed(query_captions())
                self._queries[key] = queries
            return self._queries[key]

    # ----------------------------------------------------------------------------- bounded requests
    def caption(self, valence, arousal) -> str:
        """The V-A caption of a point on the 1..7 sliders (the wording `Collection.search_va` uses)."""
        from emorank.captions import va_caption

        v, a = number(valence, "valence", *VA_RANGE), number(arousal, "arousal", *VA_RANGE)
        return va_caption(v, a, np.random.default_rng(0))

    def search(self, checkpoint: str, collection: str, query: str, k=5, max_k: int = MAX_HITS,
               progress: Callable[[int, int], None] | bool = False) -> tuple[object, list[dict]]:
        """A caption's top-k clips of a collection: (index, hit records). Arguments checked and bounded."""
        query = text(query, "the query caption")
        k = whole(k, "k (clips to return)", 1, max_k)
        index = self.index(checkpoint, collection, progress=progress)
        return index, self.hit_records(index, index.search_text(query, k))

    def neighbours(self, checkpoint: str, collection: str, axis: str, fixed) -> tuple[object, list[dict]]:
        """The ordinal strip (one clip per step 1..7 along `axis`, the other axis at `fixed`): (index, records)."""
        from emorank.retrieval import AXES

        axis = choice(axis, "axis", AXES)
        fixed = number(fixed, "the other axis's value", *VA_RANGE)
        index = self.index(checkpoint, collection)
        return index, self.hit_records(index, index.ordinal_neighbours(axis, fixed, STRIP_VALUES))

    def va_of(self, index, rows: Sequence[int] | np.ndarray) -> tuple[np.ndarray, bool]:
        """(valence, arousal) [M, 2] of index rows: the labels, or estimates from the embeddings when unknown.
        Returns (values, estimated)."""
        rows = np.asarray(rows, dtype=np.int64)
        va = index.manifest.va()[rows]  # [M, 2]
        if len(rows) and np.isnan(va).any():
            return index.estimate_va(index.audio_emb[rows]), True
        return va, False

    def hit_records(self, index, hits) -> list[dict]:
        """JSON-ready rows of retrieval hits: rank, id (path under the collection root), file (absolute path), V-A
        (labels or estimates, flagged), emotion, speaker, similarity. (No "path" key: Gradio would take such a
        dict for a file to upload.)"""
        va, estimated = self.va_of(index, [h.row for h in hits])
        ids = index.manifest.ids
        return [{"rank": r + 1, "id": ids[h.row], "file": h.path, "valence": round(float(v), 3),
                 "arousal": round(float(a), 3), "labels": "estimated" if estimated else "rated",
                 "emotion": h.emotion, "speaker": h.speaker, "similarity": round(h.score, 4)}
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
                try:
                    step()
                except Exception as err:  # noqa: BLE001 - a warm-up must never take the app down
                    log.warning("warm-up of %s failed: %s", name, err)

    # ----------------------------------------------------------------------------- analysis
    def analyse(self, path: str | os.PathLike, checkpoint: str, collection: str, k: int = 5) -> dict:
        """An uploaded clip: its V-A estimate, nearest V-A captions and nearest clips of a collection.

        Raises emorank.audio.AudioError (a ValueError naming the file) for unreadable, silent, too short or too
        long audio (limit ANALYSE_MAX_SECONDS)."""
        from emorank.audio import TARGET_SR, load_audio
        from emorank.captions import va_caption

        k = whole(k, "k (clips to return)", 1, MAX_ANALYSE_HITS)
        path = confine(path, [*self.upload_roots, *self.local_roots, *self.allowed_roots()], "audio file")
        wav = load_audio(path, max_seconds=ANALYSE_MAX_SECONDS, min_seconds=ANALYSE_MIN_SECONDS)  # [T] 16 kHz
        index = self.index(checkpoint, collection)
        emb = index.model.encode_audio(wav)  # [1, D]
        va = index.estimate_va(emb)[0]
        grid, grid_emb = self.grid(checkpoint)
        sims = grid_emb @ emb[0]  # [G]
        top = np.argsort(-sims, kind="stable")[:k]
        captions = [{"caption": va_caption(*grid[i]), "valence": float(grid[i, 0]), "arousal": float(grid[i, 1]),
                     "similarity": round(float(sims[i]), 4)} for i in top]
        hits = index.search_embedding(emb[0], k)
        return {"valence": round(float(va[0]), 3), "arousal": round(float(va[1]), 3),
                "seconds": round(len(wav) / TARGET_SR, 2), "captions": captions, "clips": self.hit_records(index, hits),
                "checkpoint": checkpoint, "collection": collection}

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


def _clean_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(name).strip()).strip(".-")[:60]


def _unique(name: str, taken) -> str:
    out, i = name, 2
    while out in taken:
        out, i = f"{name}-{i}", i + 1
    return out
