"""The first-start build: the synthetic demo corpus, its feature cache and the caption features
(``ensure_demo``), run in the background while the page already answers (:class:`BuildStatus`), and the checkpoint
folders the app finds.
"""
from __future__ import annotations

import logging
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from emorank.data.manifest import Manifest, read_csv_manifest

from emorank.app.bounds import DEMO_N, DEMO_SEED, REPO_DIR, SHIPPED_TEXT_FEATURES

log = logging.getLogger(__name__)

ProgressFn = Callable[[float, str], None]  # (fraction done in [0, 1], message)


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
    from emorank.encoders.cache import FeatureCache

    t0 = time.perf_counter()
    report = progress or console_progress
    assets = plan_demo(data_dir, checkpoint_dirs=checkpoint_dirs, cache_path=cache_path)
    if not assets.manifest_path.is_file():
        from emorank.data.synthetic import build_demo_corpus

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
    for path in checkpoints.values():
        cfg, problem = usable_config(path)
        if problem is not None:  # an unreadable checkpoint does not choose the encoders
            continue
        m = cfg["model"]
        return (audio or m["audio_encoder"], m.get("audio_encoder_kwargs", {}) if audio is None else {},
                text or m["text_encoder"], m.get("text_encoder_kwargs", {}) if text is None else {})
    return audio or "egemaps", {}, text or "minilm", {}


def fill_audio_features(cache, paths: Sequence[str], encoder: str, kwargs: dict, workers: int | None,
                        report: ProgressFn, span: tuple[float, float] = (0.0, 1.0)) -> bool:
    """Compute the missing audio features of `paths`; True when anything had to be computed."""
    from emorank.encoders.registry import build_audio_encoder

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
    from emorank.captions.va import LEVEL_VALUES, va_caption

    return [va_caption(v, a, np.random.default_rng(seed)) for v in LEVEL_VALUES for a in LEVEL_VALUES]


def app_captions(seed: int = 0) -> list[str]:
    """Every caption the app embeds before a visitor types anything: the slider captions (`query_captions`) and
    the phrasings of the V-A estimation grid (`retrieval.grid_embeddings`)."""
    from emorank.captions.va import va_caption
    from emorank.metrics.va import va_grid

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
    from emorank.encoders.cache import text_sha

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
    from emorank.encoders.cache import text_sha
    from emorank.encoders.registry import build_text_encoder

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


def find_checkpoints(checkpoint_dirs: Sequence[Path], runs_dir: Path, warned: set | None = None) -> dict[str, Path]:
    """Shipped checkpoints (`<dir>/<name>/config.json`) by folder name, then runs as "runs/<name>", sorted.

    A folder whose config cannot be used (`checkpoint_problem`) is listed nowhere: it is skipped with a one-line
    warning in the server log (once per folder and config version when the caller keeps `warned` across scans)."""
    from emorank.model.checkpoint import list_checkpoints  # recovers saves killed midway, checks each config

    def skip(name: str, folder: Path, problem: str) -> None:
        log_skipped_checkpoint(name, folder, problem, warned)

    found: dict[str, Path] = {}
    for name, folder in list_checkpoints(checkpoint_dirs, runs_dir, on_skip=skip).items():
        problem = checkpoint_problem(folder)  # what the app needs beyond a valid config
        if problem is None:
            found[name] = folder
        else:
            skip(name, folder, problem)
    return found


def checkpoint_problem(folder: str | os.PathLike) -> str | None:
    """Why a checkpoint folder cannot be listed (one line for the server log), or None when it can
    (see `usable_config`)."""
    return usable_config(folder)[1]


def usable_config(folder: str | os.PathLike) -> tuple[dict | None, str | None]:
    """(config, None) when a folder's config reads as a checkpoint's: an object with the format header, a "model"
    object naming both encoders and, when present, a "system" object; else (None, why). Any exception from reading
    it counts: one bad folder must never stop the app."""
    from emorank.model.checkpoint import read_checkpoint_config

    try:
        cfg = read_checkpoint_config(folder)
        if not isinstance(cfg, dict):
            return None, f"config.json holds a {type(cfg).__name__}, not an object"
        model = cfg.get("model")
        if not isinstance(model, dict) or not all(isinstance(model.get(k), str)
                                                  for k in ("audio_encoder", "text_encoder")):
            return None, 'config.json has no "model" object naming its audio and text encoders'
        if not isinstance(cfg.get("system") or {}, dict):
            return None, 'config.json\'s "system" is not an object'
    except Exception as err:  # noqa: BLE001 - whatever one folder raises, the others are still listed
        return None, f"{type(err).__name__}: {err}"
    return cfg, None


def log_skipped_checkpoint(name: str, folder: Path, problem: str, warned: set | None) -> None:
    """One line in the server log for a checkpoint folder left out of the lists; with `warned` (kept by the
    caller), once per folder and config version."""
    try:
        stamp = (folder / "config.json").stat().st_mtime_ns
    except OSError:
        stamp = None
    key = (str(folder), stamp)
    if warned is not None:
        if key in warned:
            return
        warned.add(key)
    line = " ".join(problem.split())[:300]
    log.warning("checkpoint %s skipped (not listed): %s", name, line)


class BuildCancelled(Exception):
    """The app is exiting: the background build stops at its next progress report."""


class BuildStatus:
    """Progress of the app's background build (`Workspace.build_demo`), readable from any thread; `cancel` (set
    at exit) makes the next progress report raise BuildCancelled, so the build ends before Python does."""

    def __init__(self, ready: bool = False) -> None:
        self._lock = threading.Lock()
        self.fraction, self.message, self.error, self.running = (1.0 if ready else 0.0), "", "", False
        self.ready = threading.Event()
        self.cancel = threading.Event()
        if ready:
            self.ready.set()

    def report(self, fraction: float, message: str) -> None:
        if self.cancel.is_set():
            raise BuildCancelled("the app is exiting")
        with self._lock:
            self.fraction, self.message = float(min(max(fraction, 0.0), 1.0)), message
        log.info("[build %3.0f%%] %s", 100 * fraction, message)

    def snapshot(self) -> dict:
        with self._lock:
            return {"ready": self.ready.is_set(), "running": self.running, "fraction": self.fraction,
                    "message": self.message, "error": self.error}
