"""Feature cache: each frozen encoder's output is computed once per file content (or text) and stored.

Training and evaluation read only this cache. The cache is one SQLite file (stdlib, atomic transactions, safe to
interrupt at any point: a row is either fully written or absent):

    hashes(path, size, mtime_ns, sha)          -- remembers file-content hashes so unchanged files are not re-read
    features(encoder, sha, vec)                -- float32 vectors keyed by the encoder's fingerprint + content hash

A changed file has a new content hash, so it is recomputed; an unchanged one never is. Bad files (corrupt, silent,
too long) are reported and skipped, never fatal for a corpus run: `AudioFeatures.skipped` lists every one with its
reason (without the path), and a :class:`SkippedAudioWarning` gives the count.

Extraction workers die with the process that started them, even on ``kill -9``: on Linux the kernel signals them
(``prctl(PR_SET_PDEATHSIG)``), and everywhere a watchdog thread in each worker exits once its parent is gone.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import signal
import sqlite3
import sys
import threading
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

ProgressFn = Callable[[int, int], None]
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
MAX_CHUNK = 64  # files per extraction task at most: bounds a task's memory and the time between cache commits
CHUNKS_PER_WORKER = 4  # tasks per worker: uneven files (long clips, bad files) still leave every worker busy
WATCHDOG_SECONDS = 1.0  # how often a worker checks that its parent is alive (fallback to PR_SET_PDEATHSIG)


class SkippedAudioWarning(UserWarning):
    """Some audio files could not be encoded; `AudioFeatures.skipped` lists each with its reason."""


def default_cache_path() -> Path:
    """$EMORANK_CACHE if set, else ~/.cache/emorank/features.sqlite."""
    env = os.environ.get("EMORANK_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "emorank" / "features.sqlite"


def file_sha(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def text_sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class AudioFeatures:
    """Raw features for the rows of a manifest that could be encoded; `rows` indexes the manifest."""

    values: np.ndarray  # [M, Da]
    rows: np.ndarray  # [M] int64 indices into the input list
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


class FeatureCache:
    """A SQLite-backed store of frozen-encoder features, keyed by encoder fingerprint and content hash.

    Thread-safe: one connection, every database access under a lock; extraction itself runs outside the lock, so
    two threads may at worst compute the same missing vector twice (the rows are identical)."""

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = Path(path) if path is not None else default_cache_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(self.path), timeout=60, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS hashes (path TEXT PRIMARY KEY, size INTEGER, "
                         "mtime_ns INTEGER, sha TEXT)")
        self._db.execute("CREATE TABLE IF NOT EXISTS features (encoder TEXT, sha TEXT, vec BLOB, "
                         "PRIMARY KEY (encoder, sha))")
        self._db.commit()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> "FeatureCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------- hashing
    def content_hash(self, path: str) -> str:
        """sha256 of the file, memoised on (path, size, mtime_ns)."""
        st = os.stat(path)
        with self._lock:
            row = self._db.execute("SELECT size, mtime_ns, sha FROM hashes WHERE path = ?", (path,)).fetchone()
        if row and row[0] == st.st_size and row[1] == st.st_mtime_ns:
            return row[2]
        sha = file_sha(path)
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO hashes VALUES (?, ?, ?, ?)",
                             (path, st.st_size, st.st_mtime_ns, sha))
        return sha

    # -------------------------------------------------------------- vectors
    def get_many(self, encoder: str, shas: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(shas))
        for i in range(0, len(unique), 900):  # SQLite's bound-parameter limit
            chunk = unique[i:i + 900]
            marks = ",".join("?" * len(chunk))
            with self._lock:
                rows = self._db.execute(f"SELECT sha, vec FROM features WHERE encoder = ? AND sha IN ({marks})",
                                        (encoder, *chunk)).fetchall()
            for sha, blob in rows:
                found[sha] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_many(self, encoder: str, items: dict[str, np.ndarray]) -> None:
        rows = [(encoder, sha, np.asarray(v, np.float32).tobytes()) for sha, v in items.items()]
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO features VALUES (?, ?, ?)", rows)
            self._db.commit()

    def count(self, encoder: str | None = None) -> int:
        with self._lock:
            if encoder is None:
                return self._db.execute("SELECT COUNT(*) FROM features").fetchone()[0]
            return self._db.execute("SELECT COUNT(*) FROM features WHERE encoder = ?", (encoder,)).fetchone()[0]

    # ---------------------------------------------------------- high level
    def audio_features(self, paths: Sequence[str], encoder, workers: int | None = None,
                       progress: bool | ProgressFn = True, chunk: int = MAX_CHUNK) -> AudioFeatures:
        """Features for each path, computing only what is missing; unreadable files are skipped and reported.

        Missing files are encoded in chunks of at most ``chunk`` files, sized by :func:`chunk_sizes` so that even
        a small job is shared among the ``workers`` processes (default: up to 4, one per core); the values do
        not depend on the number of workers or the chunking."""
        fp = encoder.fingerprint()
        shas: list[str | None] = []
        unreadable: dict[int, str] = {}  # row -> reason
        for i, p in enumerate(paths):
            try:
                shas.append(self.content_hash(str(p)))
            except OSError as err:
                shas.append(None)
                unreadable[i] = f"cannot read file: {err.strerror or err}"
        with self._lock:
            self._db.commit()
        have = self.get_many(fp, [s for s in shas if s])
        first_path: dict[str, str] = {}  # one file per missing content hash (copies are encoded once)
        for p, s in zip(paths, shas):
            if s and s not in have:
                first_path.setdefault(s, str(p))
        sha_of = {p: s for s, p in first_path.items()}
        bad_reason: dict[str, str] = {}  # content hash -> why it could not be encoded (copies share it)
        for done_paths, vecs, bad in _extract(list(first_path.values()), encoder, workers, progress, chunk):
            new = {sha_of[p]: v for p, v in zip(done_paths, vecs)}
            self.put_many(fp, new)
            have.update(new)
            bad_reason.update((sha_of[p], reason) for p, reason in bad)
        skipped = [(str(p), unreadable[i] if i in unreadable else bad_reason[s])
                   for i, (p, s) in enumerate(zip(paths, shas)) if i in unreadable or s in bad_reason]
        rows = [i for i, s in enumerate(shas) if s in have]
        if skipped:
            warnings.warn(f"skipped {len(skipped)} of {len(paths)} audio files (unreadable, corrupt, silent or out "
                          "of limits); AudioFeatures.skipped lists each with its reason", SkippedAudioWarning,
                          stacklevel=2)
        dim = getattr(encoder, "dim", 0)
        values = np.stack([have[shas[i]] for i in rows]) if rows else np.zeros((0, dim), np.float32)
        return AudioFeatures(values, np.asarray(rows, dtype=np.int64), skipped)

    def text_features(self, texts: Sequence[str], encoder, batch_size: int = 256) -> np.ndarray:
        """Features [N, Dt] for each text, computing each distinct missing text once."""
        fp = encoder.fingerprint()
        shas = [text_sha(t) for t in texts]
        have = self.get_many(fp, shas)
        missing = list(dict.fromkeys(t for t, s in zip(texts, shas) if s not in have))
        for i in range(0, len(missing), batch_size):
            batch = missing[i:i + batch_size]
            vecs = encoder.encode(batch)
            new = {text_sha(t): v for t, v in zip(batch, vecs)}
            self.put_many(fp, new)
            have.update(new)
        if not texts:
            return np.zeros((0, getattr(encoder, "dim", 0)), np.float32)
        return np.stack([have[s] for s in shas])


# ---------------------------------------------------------------- extraction
def chunk_sizes(n: int, workers: int, max_chunk: int = MAX_CHUNK) -> list[int]:
    """Sizes of the chunks that ``n`` files are encoded in by ``workers`` processes, in order.

    Sized by the work rather than fixed: about ``CHUNKS_PER_WORKER`` chunks per worker, so a small job (say 40
    files on 2 workers) is still split across all workers, and a worker that draws slow files does not hold up
    the end of the run; never more than ``max_chunk`` files per chunk, never an empty chunk. Sizes differ by at
    most one (larger first), e.g. ``chunk_sizes(200, 2) == [25] * 8``.
    """
    if n < 0 or workers < 1 or max_chunk < 1:
        raise ValueError(f"need n >= 0, workers >= 1 and max_chunk >= 1, got {n}, {workers}, {max_chunk}")
    if n == 0:
        return []
    count = max(-(-n // max_chunk), min(n, workers * CHUNKS_PER_WORKER))  # ceil(n / max_chunk) at least
    size, extra = divmod(n, count)
    return [size + 1] * extra + [size] * (count - extra)


def _extract(paths: list[str], encoder, workers: int | None, progress: bool | ProgressFn, chunk: int):
    """Yield (paths, vectors, skipped) per chunk; CPU encoders run in worker processes, others in-process."""
    if not paths:
        return
    report = _progress(progress, len(paths), desc=f"features ({encoder.name})")
    if workers is None:
        workers = max(1, min(4, os.cpu_count() or 1))
    if not getattr(encoder, "parallel_safe", False):
        workers = 1
    workers = max(1, min(int(workers), len(paths)))  # no idle processes for a tiny job
    bounds = np.cumsum([0, *chunk_sizes(len(paths), workers, chunk)])
    chunks = [paths[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    done = 0
    try:
        if workers > 1:
            with ProcessPoolExecutor(workers, initializer=_worker_init, initargs=(encoder, os.getpid())) as pool:
                results = pool.map(_worker_encode, chunks)  # in order, whichever worker finishes first
                for result in results:
                    done += len(result[0]) + len(result[2])
                    report(done)
                    yield result
        else:
            for part in chunks:
                result = _encode_chunk(encoder, part)
                done += len(result[0]) + len(result[2])
                report(done)
                yield result
    finally:
        report(None)


def _encode_chunk(encoder, paths: list[str]):
    from emorank.data.audio import AudioError, load_audio

    ok, waves, bad = [], [], []
    for p in paths:
        try:
            waves.append(load_audio(p))
            ok.append(p)
        except AudioError as err:
            bad.append((p, err.reason))  # the reason alone: callers show the path their own way
    vecs = encoder.encode(waves) if waves else np.zeros((0, encoder.dim), np.float32)
    return ok, np.asarray(vecs, dtype=np.float32), bad


_WORKER_ENCODER = None


def _worker_init(encoder, owner_pid: int) -> None:
    """Runs first in each worker: keep the encoder, and make sure the worker never outlives `owner_pid`.

    A worker blocked on its task queue would otherwise wait forever (holding its encoder's memory) after the main
    process is killed with SIGKILL, which runs no cleanup."""
    global _WORKER_ENCODER
    _WORKER_ENCODER = encoder
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # no prctl: the watchdog below still ends the worker
    if os.getppid() != parent or not _alive(owner_pid):  # the parent died before prctl took effect
        os._exit(1)
    threading.Thread(target=_watchdog, args=(parent, owner_pid), name="emorank-parent-watchdog",
                     daemon=True).start()


def _watchdog(parent: int, owner_pid: int) -> None:
    """Exit the worker once it is re-parented (its parent died) or the process that started the pool is gone."""
    while os.getppid() == parent and _alive(owner_pid):
        time.sleep(WATCHDOG_SECONDS)
    os._exit(1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _worker_encode(paths: list[str]):
    return _encode_chunk(_WORKER_ENCODER, paths)


def _progress(progress: bool | ProgressFn, total: int, desc: str) -> Callable[[int | None], None]:
    """A reporter called with the number done so far, and None at the end."""
    if callable(progress):
        return lambda done: progress(done, total) if done is not None else None
    if not progress:
        return lambda done: None
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit="file")

    def report(done):
        if done is None:
            bar.close()
        else:
            bar.update(done - bar.n)
    return report
