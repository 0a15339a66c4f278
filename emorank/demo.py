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
ALL_LOCAL = (os.path.abspath(os.sep),)
SHIPPED_TEXT_FEATURES = REPO_DIR / "assets" / "caption-features.npz"  # see export_text_features  # `local_roots` for a private app: every folder the server's user can read

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
COLLECTIONS_FILE = "collections.json"  # under the data folder: the collections visitors added (definitions only)


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
    assets = plan_demo(data_dir, checkpoint_dirs=checkpoint_dirs, cache_path=cache_path)
    if not assets.manifest_path.is_file():
        from emorank.corpus import build_demo_corpus  # imported only when needed (scipy.signal is slow to load)

        report(0.0, f"building the synthetic demo corpus ({n} clips, eSpeak NG voices)")
        build_demo_corpus(assets.manifest_path.parent, n=n, seed=seed, workers=workers,
                          progress=lambda done, total: report(0.6 * done / max(total, 1),
                                                              f"rendering clips {done}/{total}"))
        assets.built.append("corpus")
    assets.checkpoints = find_checkpoints(assets.checkpoint_dirs, assets.runs_dir)
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


def plan_demo(data_dir: str | os.PathLike | None = None, *,
              checkpoint_dirs: Sequence[str | os.PathLike] | None = None,
              cache_path: str | os.PathLike | None = None) -> DemoAssets:
    """Where the demo's pieces are (or will be) and which checkpoints exist, building nothing (milliseconds):
    what an app needs to lay out its page before `ensure_demo` has run."""
    data_dir = (Path(data_dir) if data_dir is not None else default_data_dir()).resolve()
    dirs = [Path(d) for d in checkpoint_dirs] if checkpoint_dirs is not None else [REPO_DIR / "checkpoints"]
    return DemoAssets(data_dir=data_dir, manifest_path=corpus_manifest(data_dir),
                      cache_path=Path(cache_path) if cache_path else data_dir / "features.sqlite",
                      runs_dir=data_dir / "runs", checkpoint_dirs=dirs,
                      checkpoints=find_checkpoints(dirs, data_dir / "runs"))


def demo_clip_folder(assets: DemoAssets) -> Path:
    """The folder that holds (or will hold) the demo corpus's clips: what an app launched before the build
    must be allowed to serve."""
    return Path(os.path.realpath(assets.manifest_path.parent / "audio"))


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
    report(lo, f"extracting {encoder} features of {missing} clips (once; then cached)")
    cache.audio_features(paths, enc, workers=workers,
                         progress=lambda done, total: report(lo + (hi - lo) * done / max(total, 1),
                                                             f"audio features {done}/{total}"))
    return True


def query_captions(seed: int = 0) -> list[str]:
    """The captions the app queries most: one per V-A level pair as `Collection.search_va` words them."""
    from emorank.captions import LEVEL_VALUES, va_caption

    return [va_caption(v, a, np.random.default_rng(seed)) for v in LEVEL_VALUES for a in LEVEL_VALUES]


def app_captions(seed: int = 0) -> list[str]:
    """Every caption the app embeds before a visitor types anything: the slider captions (`query_captions`) and
    the phrasings of the V-A estimation grid (`retrieval.grid_embeddings`)."""
    from emorank.captions import va_caption
    from emorank.retrieval import va_grid

    rng = np.random.default_rng(seed)
    grid = [va_caption(v, a, rng) for v, a in va_grid(0.5) for _ in range(3)]
    return list(dict.fromkeys(query_captions(seed) + grid))


def _portable(fingerprint: str) -> str:
    """A text encoder's fingerprint without the library version: the shipped features stay valid across
    transformers releases (the same weights give the same features to float16 precision)."""
    return "|".join(part for part in fingerprint.split("|") if not part.startswith("transformers="))


def export_text_features(cache, encoder, texts: Sequence[str], path: str | os.PathLike = SHIPPED_TEXT_FEATURES
                         ) -> Path:
    """Write the raw features of `texts` (float16, computed through `cache`) to a file shipped with the app."""
    from emorank.features import text_sha

    feats = cache.text_features(list(texts), encoder)  # [N, Dt]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, fingerprint=np.array(_portable(encoder.fingerprint())),
                        sha=np.array([text_sha(t) for t in texts]), features=feats.astype(np.float16))
    return path


def import_text_features(cache, encoder, path: str | os.PathLike = SHIPPED_TEXT_FEATURES) -> int:
    """Copy shipped text features into `cache` when they were made by this encoder; returns how many."""
    path = Path(path)
    if not path.is_file():
        return 0
    fp = encoder.fingerprint()
    with np.load(path) as shipped:
        if str(shipped["fingerprint"]) != _portable(fp):
            return 0
        items = dict(zip(shipped["sha"].tolist(), shipped["features"].astype(np.float32)))
    cache.put_many(fp, items)
    return len(items)


def fill_caption_features(cache, encoder: str, kwargs: dict, report: ProgressFn, at: float = 0.0) -> bool:
    """Cache the text features of the slider captions and of the V-A estimation grid (from the shipped file when
    it matches the encoder, else computed); True when any were new."""
    from emorank.encoders import build_text_encoder
    from emorank.features import text_sha

    enc = build_text_encoder(encoder, **kwargs)
    texts = app_captions()
    if len(cache.get_many(enc.fingerprint(), [text_sha(t) for t in texts])) == len(texts):
        return False
    if import_text_features(cache, enc):
        report(at, f"caption features of {encoder} taken from the shipped file")
    if len(cache.get_many(enc.fingerprint(), [text_sha(t) for t in texts])) < len(texts):
        report(at, f"encoding the query captions with {encoder} (once)")
        cache.text_features(texts, enc)
    return True


def find_checkpoints(checkpoint_dirs: Sequence[Path], runs_dir: Path) -> dict[str, Path]:
    """Shipped checkpoints (`<dir>/<name>/config.json`) by folder name, then runs as "runs/<name>", sorted."""
    from emorank.model import list_checkpoints  # skips (and logs) folders that are no valid checkpoint

    return list_checkpoints(checkpoint_dirs, runs_dir)


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
class BuildStatus:
    """Progress of the app's background build (`Workspace.build_demo`), readable from any thread."""

    def __init__(self, ready: bool = False) -> None:
        self._lock = threading.Lock()
        self.fraction, self.message, self.error, self.running = (1.0 if ready else 0.0), "", "", False
        self.ready = threading.Event()
        if ready:
            self.ready.set()

    def report(self, fraction: float, message: str) -> None:
        with self._lock:
            self.fraction, self.message = float(min(max(fraction, 0.0), 1.0)), message
        log.info("[build %3.0f%%] %s", 100 * fraction, message)

    def snapshot(self) -> dict:
        with self._lock:
            return {"ready": self.ready.is_set(), "running": self.running, "fraction": self.fraction,
                    "message": self.message, "error": self.error}


def _hub_offline(environ=os.environ) -> bool:
    return any(environ.get(k, "").strip().lower() in ("1", "true", "yes", "on")
               for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
DATASET_MARKERS = ("dataset_dict.json", "state.json", "metadata.csv", "metadata.jsonl")


def parse_label_columns(spec: str | None) -> dict:
    """The label options of `load_hf_dataset` from one line a visitor types: "valence, arousal" (1..7),
    "valence, arousal, 1-5" (another scale) or one name (a category column); empty means "valence, arousal"."""
    spec = text(spec, "the label columns", MAX_NAME_CHARS, required=False)
    parts = [part.strip() for part in spec.split(",") if part.strip()] or ["valence", "arousal"]
    if len(parts) == 1:
        return {"category": parts[0]}
    if len(parts) in (2, 3):
        out = {"valence": parts[0], "arousal": parts[1]}
        if len(parts) == 3:
            bounds = re.fullmatch(r"\s*(-?[\d.]+)\s*(?:-|to|\.\.)\s*(-?[\d.]+)\s*", parts[2])
            if not bounds:
                raise WorkspaceError("write the label scale as low-high, for example 1-5")
            out["scale"] = (float(bounds.group(1)), float(bounds.group(2)))
        return out
    raise WorkspaceError("give the label columns as: valence, arousal (optionally a scale such as 1-5), or one "
                         "category column")


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
                 max_queries: int = 2048, hub_datasets: bool | None = None) -> None:
        from emorank.features import FeatureCache

        self.assets = assets
        self.hub_datasets = (not _hub_offline()) if hub_datasets is None else hub_datasets
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
        self._collections: dict[str, CollectionSource] = {}
        self._definitions: list[dict] = []  # collections added by visitors, as saved in COLLECTIONS_FILE
        self.build = BuildStatus(ready=assets.manifest_path.is_file())
        if self.build.ready.is_set():
            self._attach_demo()

    def _attach_demo(self) -> None:
        demo = read_csv_manifest(self.assets.manifest_path)
        with self._lock:
            self._collections = {
                DEMO_TEST: CollectionSource(DEMO_TEST, demo.split_of("test"), True, "demo corpus (synthetic)"),
                DEMO_ALL: CollectionSource(DEMO_ALL, demo, True, "demo corpus (synthetic)"), **self._collections}
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
        return thread

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
                available = ", ".join(self._checkpoints) or "none"
                if "/" in name.removeprefix("runs/") or "\\" in name or name.startswith("~"):  # never echo a path
                    raise WorkspaceError(f"no checkpoint is called that: a checkpoint is chosen by its name in the "
                                         f"list, not by a path; available: {available}")
                raise WorkspaceError(f"unknown checkpoint {_shown(name)}; available: {available}")
            return self._checkpoints[name]

    def checkpoint_config(self, name: str) -> dict:
        from emorank.model import CheckpointError, read_checkpoint_config

        try:
            return read_checkpoint_config(self.checkpoint_path(name))
        except CheckpointError:
            raise WorkspaceError(f"checkpoint {_shown(name)} cannot be read; choose another one") from None

    def trained_on(self, name: str) -> tuple[str, bool]:
        """(training corpus for people, whether it is real speech) of a checkpoint, from its config."""
        from emorank.hub import CORPUS_LICENSES, checkpoint_dataset

        corpus = checkpoint_dataset(self.checkpoint_config(name)) or "demo"
        if corpus == "demo":
            return "synthetic speech (eSpeak NG demo corpus)", False
        return f"{CORPUS_LICENSES.get(corpus, (corpus,))[0]} (real speech)", True

    def checkpoint_label(self, name: str) -> str:
        """"name · system title · trained on ..." for drop-downs (falls back to the name)."""
        try:
            cfg = self.checkpoint_config(name)
            corpus, real = self.trained_on(name)
        except WorkspaceError:
            return name
        title = (cfg.get("system") or {}).get("title") or (cfg.get("system") or {}).get("name") or "?"
        return (f"{name} · {title} · {corpus.split(' (')[0] if real else 'synthetic'}" + (" (stopped early)" if cfg.get("stopped") else ""))

    def checkpoint_card(self, name: str) -> str:
        """A short model card (markdown) of a checkpoint: training data, system, encoders, test metrics of its
        eval.json, licence and what it is not good at (the long form is `emorank.hub.model_card`)."""
        import json

        from emorank.hub import EVAL_FILE, card_metrics, checkpoint_license

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
            if name in self._collections:
                return self._collections[name]
        if name in (DEMO_TEST, DEMO_ALL) and not self.build.ready.is_set():
            state = self.build.snapshot()
            if state["error"]:
                raise WorkspaceError("the demo corpus could not be built on this server; add a collection instead")
            raise WorkspaceError(f"the demo corpus is still being prepared ({100 * state['fraction']:.0f}% done); "
                                 f"results appear here as soon as it is ready")
        raise WorkspaceError(f"there is no collection called {_shown(name)}; choose one from the list")

    def add_collection(self, path: str | os.PathLike, name: str | None = None, labels: str | None = None, *,
                       save: bool = True) -> CollectionSource:
        """Add a collection under `name` (default: its file or dataset name) and remember it (`save`) so that it
        comes back after a restart. `path` is one of:

        * a manifest CSV (labelled) or a folder of audio (unlabelled) on the server;
        * a Hugging Face dataset folder on the server (parquet files with an Audio column, a `save_to_disk`
          folder or an audiofolder), or a Hub dataset id ("owner/name", when the server has a network);
          `labels` names its label columns (see `parse_label_columns`).

        Server paths, and every clip they name, must lie inside `local_roots` (symbolic links resolved); refusals
        and errors name the file, never the folders above it, and never quote the file's contents."""
        if name is not None and not isinstance(name, str):
            raise WorkspaceError("the collection name must be text")
        raw = str(path).strip() if isinstance(path, (str, os.PathLike)) else ""
        if not raw:
            raise WorkspaceError("give a manifest CSV, a folder of audio or a Hugging Face dataset")
        hub_id = bool(_HUB_ID.match(raw)) and not raw.startswith(".")
        p = None
        if self.allow_local_paths:
            try:  # confinement first: nothing is said about what exists outside the allowed folders
                p = confine(raw, self.local_roots, "path of a manifest CSV or of a folder of audio files")
            except WorkspaceError:
                if not hub_id:
                    raise
        if p is not None and (p.exists() or not hub_id):
            source = self._local_source(p, labels)
            label, definition = str(name or p.stem or p.name), {"path": str(p)}
        elif hub_id and self.hub_datasets:
            source = self._dataset_source(raw, labels, f"Hugging Face dataset {raw}")
            label, definition = str(name or raw), {"hub": raw}
        elif hub_id:
            raise WorkspaceError("this server cannot reach the Hugging Face Hub; ask its operator to add the dataset")
        elif self.hub_datasets:
            raise WorkspaceError("adding collections from server paths is disabled on this server; give a Hugging "
                                 "Face dataset id (owner/name) instead")
        else:
            raise WorkspaceError("adding collections from server paths is disabled on this server")
        label = " ".join(label.split())[:60]
        with self._lock:
            if len(self._collections) >= MAX_COLLECTIONS:
                raise WorkspaceError(f"this app holds at most {MAX_COLLECTIONS} collections; restart it to add more")
            source.name = _unique(label, self._collections)
            self._collections[source.name] = source
            if save:
                self._definitions = [d for d in self._definitions if d["name"] != source.name]
                self._definitions.append({"name": source.name, "labels": labels or "", **definition})
                self._save_definitions()
        return source

    def _local_source(self, p: Path, labels: str | None) -> "CollectionSource":
        from emorank.datasets import ManifestError

        if p.is_dir() and (any((p / m).is_file() for m in DATASET_MARKERS) or any(p.glob("**/*.parquet"))):
            for meta in [*p.rglob("metadata.csv"), *p.rglob("metadata.jsonl")]:
                self._confine_metadata(meta)
            return self._dataset_source(str(p), labels, f"dataset folder {p.name}")
        if p.is_dir():
            return CollectionSource("", folder_manifest(p, roots=self.local_roots), False, f"folder {visible_name(p)}")
        if p.is_file() and p.suffix.lower() == ".csv":
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
            return CollectionSource("", manifest, True, f"manifest {p.name}")
        if p.exists():
            raise WorkspaceError(f"{p.name} is neither a folder of audio, a dataset folder nor a manifest .csv file")
        raise WorkspaceError(f"{p.name} does not exist")

    def _confine_metadata(self, meta: Path) -> None:
        """An audiofolder's metadata may name files anywhere: every one must lie inside the allowed folders."""
        import pandas as pd

        try:
            frame = (pd.read_csv(meta, dtype=str, keep_default_na=False) if meta.suffix == ".csv"
                     else pd.read_json(meta, lines=True, dtype=False))
        except (ValueError, OSError):
            raise WorkspaceError(f"{meta.name} cannot be read as a dataset's metadata table") from None
        files = [os.path.realpath(meta.parent / str(f)) for f in frame.get("file_name", [])]
        if any(not any(_inside(f, r) for r in self.local_roots) for f in files):
            raise WorkspaceError(f"{meta.name} names audio files outside the folders this server allows")

    def _dataset_source(self, source: str, labels: str | None, origin: str) -> "CollectionSource":
        """A Hugging Face dataset (Hub id or local folder), its audio decoded once under the data folder."""
        from emorank.datasets import ManifestError, load_hf_dataset

        options = parse_label_columns(labels)
        try:
            manifest = load_hf_dataset(source, cache_dir=self.assets.data_dir / "datasets", progress=False, **options)
        except ManifestError as err:
            log.warning("dataset %s refused: %s", source, err)
            cols = " and ".join(v for k, v in options.items() if k != "scale")
            raise WorkspaceError(f"that dataset could not be read with the label column(s) {cols}; check the column "
                                 f"names (for example: valence, arousal, 1-5, or one emotion column)") from None
        except (OSError, ValueError) as err:
            log.warning("dataset %s could not be loaded: %s", source, err)
            raise WorkspaceError("that dataset could not be loaded; check its name, or that it has an audio "
                                 "column") from None
        if len(manifest) == 0:
            raise WorkspaceError("that dataset has no clip that could be decoded")
        return CollectionSource("", manifest, True, origin)

    # ----------------------------------------------------------------------------- persistence
    @property
    def definitions_path(self) -> Path:
        return self.assets.data_dir / COLLECTIONS_FILE

    def _save_definitions(self) -> None:
        import json

        path = self.definitions_path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._definitions, indent=2))
        os.replace(tmp, path)

    def restore_collections(self) -> list[str]:
        """Re-add the collections saved by `add_collection` (their definitions, never copies), each checked again
        against today's rules (server paths only when allowed and inside `local_roots`, Hub ids only with a
        network); those refused are logged and kept in the file for a later start. Returns the names restored."""
        import json

        try:
            saved = json.loads(self.definitions_path.read_text()) if self.definitions_path.is_file() else []
        except (OSError, ValueError):
            log.warning("%s is unreadable; no saved collections restored", COLLECTIONS_FILE)
            return []
        restored = []
        for item in saved if isinstance(saved, list) else []:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                continue
            with self._lock:
                self._definitions = [d for d in self._definitions if d["name"] != item["name"]] + [item]
                if item["name"] in self._collections:
                    continue
            try:
                source = self.add_collection(item.get("path") or item.get("hub") or "", item["name"],
                                             item.get("labels") or None, save=False)
            except (WorkspaceError, ValueError, OSError) as err:
                log.warning("saved collection %r not restored: %s", item["name"], err)
                continue
            restored.append(source.name)
        return restored

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
        from emorank.retrieval import AXES

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
