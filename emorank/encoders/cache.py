"""Feature cache: each frozen encoder's output is computed once per file content (or text) and stored.

Training and evaluation read only this cache. The cache is one SQLite file in WAL mode (stdlib, atomic
transactions, safe to interrupt at any point, even with ``kill -9``: a row is either fully written or absent), shared
by any number of threads and processes (an app and ``emorank features`` on the same cache is a normal thing to do):

    hashes(path, size, mtime_ns, sha)          -- remembers file-content hashes so unchanged files are not re-read
    features(encoder, sha, vec)                -- float32 vectors keyed by the encoder's fingerprint + content hash

A changed file has a new content hash, so it is recomputed; an unchanged one never is. Bad files (corrupt, silent,
too long) are reported and skipped, never fatal for a corpus run: `AudioFeatures.skipped` lists every one with its
reason (without the path), and a :class:`SkippedAudioWarning` gives the count.

A damaged cache file (not a database, truncated, corrupt) is moved aside and rebuilt, with one
:class:`CacheRecoveredWarning`, instead of failing every query (see :class:`FeatureCache`).

Extraction workers die with the process that started them, even on ``kill -9``: on Linux the kernel signals them
(``prctl(PR_SET_PDEATHSIG)``), and everywhere a watchdog thread in each worker exits once its parent is gone.
"""
from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import signal
import sqlite3
import sys
import threading
import time
import warnings
import weakref
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence, TypeVar

import numpy as np

ProgressFn = Callable[[int, int], None]
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
MAX_CHUNK = 64  # files per extraction task at most: bounds a task's memory and the time between cache commits
CHUNKS_PER_WORKER = 4  # tasks per worker: uneven files (long clips, bad files) still leave every worker busy
WATCHDOG_SECONDS = 1.0  # how often a worker checks that its parent is alive (fallback to PR_SET_PDEATHSIG)
BUSY_SECONDS = 60.0  # how long a cache call waits for another process's write to finish
HASH_BATCH = 512  # new content hashes per transaction while hashing a corpus
SQLITE_CORRUPT, SQLITE_NOTADB = 11, 26  # sqlite3.h primary result codes: the file is damaged
_T = TypeVar("_T")


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


class FeatureCacheError(ValueError):
    """The feature cache cannot be opened at the path given (a folder, an unwritable place)."""


class CacheRecoveredWarning(UserWarning):
    """A damaged feature cache was moved aside and an empty one started; features are computed again as needed."""


class FeatureCache:
    """A SQLite-backed store of frozen-encoder features, keyed by encoder fingerprint and content hash.

    Thread-safe: one connection, every database access under a lock; extraction itself runs outside the lock, so
    two threads may at worst compute the same missing vector twice (the rows are identical). Any number of
    processes may share one cache file (WAL mode): each write is one short transaction, so a commit is never held
    open between calls and a ``kill -9`` at any point loses at most the write in flight.

    Safe across ``fork``: a process forks only between cache calls, and a child lets go of the connection it
    inherited and opens its own on first use (see `_drop_inherited`). Using an inherited connection is what
    SQLite warns against: the child believes it holds the parent's locks, so both can write the same WAL frames,
    or the parent's last close unlinks the WAL under the child, and rows the child "committed" vanish.

    Self-healing: a cache file that is not a database (garbage, truncated, another format) or that SQLite finds
    corrupt, at open or in the middle of a session, is moved aside as ``<name>.damaged-<timestamp>`` (with its
    ``-wal`` and ``-shm``), one :class:`CacheRecoveredWarning` names it, and an empty cache takes its place, so
    queries go on (what was cached is computed again when needed). When another process has moved the file aside,
    this one notices (the file at the path changed) and reconnects instead of writing into the old file.
    """

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = Path(path) if path is not None else default_cache_path()
        if self.path.is_dir():
            raise FeatureCacheError(f"the feature cache {self.path.name!r} is a folder; give a file path such as "
                                    f"{self.path.name}/features.sqlite")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        self._pid = os.getpid()
        self._ident: tuple[int, int] | None = None  # (st_dev, st_ino) of the file the connection opened
        self._closed = False
        _track(self)
        with self._lock:
            self._connection()

    def close(self) -> None:
        with self._lock:
            if self._pid != os.getpid():
                _drop_inherited()  # in a forked child: the parent's connection is not this process's to close
            db, self._db, self._closed = self._db, None, True
            if db is not None:
                db.close()

    def __enter__(self) -> "FeatureCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --------------------------------------------------------- connection
    def _connection(self) -> sqlite3.Connection:
        """This process's connection to the file now at `self.path` (with `self._lock` held)."""
        if self._closed:
            raise sqlite3.ProgrammingError("Cannot operate on a closed feature cache.")
        if self._pid != os.getpid():
            _drop_inherited()  # first use in a forked child
        if self._db is not None and _identity(self.path) != self._ident:
            self._db.close()  # the file was moved aside meanwhile (SQLite leaves a moved file's WAL alone)
            self._db = None
        if self._db is None:
            self._open()
        return self._db

    def _open(self) -> None:
        for _ in range(3):
            before = _identity(self.path)
            try:
                db = _connect(self.path)
            except sqlite3.DatabaseError as err:
                if "unable to open" in str(err) or "readonly" in str(err):
                    raise FeatureCacheError(f"the feature cache {self.path.name!r} cannot be opened "
                                            f"({err}); check that it and its folder are writable") from err
                if not _damaged(err):
                    raise
                self._recover(before, err)
                continue
            if _identity(self.path) != before:  # moved aside while connecting: this is not the file at the path
                db.close()
                continue
            self._db, self._ident, self._pid = db, before, os.getpid()
            return
        raise FeatureCacheError(f"the feature cache {self.path.name!r} could not be opened: it was damaged again "
                                "each time it was rebuilt")

    def _run(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """`work(connection)` under the lock; a damaged cache is moved aside and the work done once more."""
        with self._lock:
            db = self._connection()
            try:
                return work(db)
            except sqlite3.DatabaseError as err:
                if not _damaged(err):
                    raise
                self._db = None
                db.close()  # before any move, while the -wal/-shm it may remove are still its own
                self._recover(self._ident, err)
                return work(self._connection())

    def _recover(self, ident: tuple[int, int] | None, err: sqlite3.DatabaseError) -> None:
        """Move the damaged file aside unless another thread or process already did; warn once."""
        with _recovery_lock(self.path.parent):
            if ident is None or _identity(self.path) != ident:
                return  # already moved aside (and perhaps rebuilt) by someone else: just reconnect
            reason = _damage(self.path)
            if reason is None:
                return  # a fresh connection reads it fine: the work is tried once more as it is
            aside = _move_aside(self.path)
        warnings.warn(f"the feature cache {self.path.name} was damaged ({reason}); moved it aside as {aside.name} "
                      "and started an empty one (features are computed again as needed)", CacheRecoveredWarning,
                      stacklevel=4)

    def _write(self, sql: str, rows: list[tuple]) -> None:
        """One transaction: all of `rows` or none (a kill at any point leaves the cache as it was)."""
        def work(db: sqlite3.Connection) -> None:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(sql, rows)
            except BaseException:
                if db.in_transaction:  # SQLite may have rolled back already (a corrupt page, a full disk)
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        if rows:
            self._run(work)

    # ------------------------------------------------------------- hashing
    def content_hash(self, path: str) -> str:
        """sha256 of the file, memoised on (path, size, mtime_ns)."""
        return self.content_hashes([path])[0]

    def content_hashes(self, paths: Sequence[str]) -> list[str]:
        """`content_hash` of each path (OSError for a file that cannot be read), memoised in a few transactions."""
        shas, unreadable = self._hashes(paths)
        if unreadable:
            raise next(iter(unreadable.values()))
        return shas  # type: ignore[return-value]

    def _hashes(self, paths: Sequence[str]) -> tuple[list[str | None], dict[int, OSError]]:
        paths = [str(p) for p in paths]
        memo: dict[str, tuple[int, int, str]] = {}
        unique = list(dict.fromkeys(paths))
        for i in range(0, len(unique), 900):  # SQLite's bound-parameter limit
            chunk = unique[i:i + 900]
            sql = f"SELECT path, size, mtime_ns, sha FROM hashes WHERE path IN ({','.join('?' * len(chunk))})"
            memo.update((p, (size, mtime, sha)) for p, size, mtime, sha in
                        self._run(lambda db, sql=sql, chunk=chunk: db.execute(sql, chunk).fetchall()))
        shas: list[str | None] = []
        unreadable: dict[int, OSError] = {}
        new: dict[str, tuple] = {}
        for i, p in enumerate(paths):
            try:
                st = os.stat(p)
                known = memo.get(p)
                if known and known[0] == st.st_size and known[1] == st.st_mtime_ns:
                    sha = known[2]
                else:
                    sha = file_sha(p)
                    new[p] = (p, st.st_size, st.st_mtime_ns, sha)
                    memo[p] = (st.st_size, st.st_mtime_ns, sha)
            except OSError as err:
                shas.append(None)
                unreadable[i] = err
                continue
            shas.append(sha)
            if len(new) >= HASH_BATCH:  # hashing a large corpus takes minutes: keep what is done
                self._write("INSERT OR REPLACE INTO hashes VALUES (?, ?, ?, ?)", list(new.values()))
                new.clear()
        self._write("INSERT OR REPLACE INTO hashes VALUES (?, ?, ?, ?)", list(new.values()))
        return shas, unreadable

    # -------------------------------------------------------------- vectors
    def get_many(self, encoder: str, shas: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(shas))
        for i in range(0, len(unique), 900):  # SQLite's bound-parameter limit
            chunk = unique[i:i + 900]
            sql = f"SELECT sha, vec FROM features WHERE encoder = ? AND sha IN ({','.join('?' * len(chunk))})"
            rows = self._run(lambda db, sql=sql, chunk=chunk: db.execute(sql, (encoder, *chunk)).fetchall())
            for sha, blob in rows:
                found[sha] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_many(self, encoder: str, items: dict[str, np.ndarray]) -> None:
        rows = [(encoder, sha, np.asarray(v, np.float32).tobytes()) for sha, v in items.items()]
        self._write("INSERT OR REPLACE INTO features VALUES (?, ?, ?)", rows)

    def count(self, encoder: str | None = None) -> int:
        if encoder is None:
            return self._run(lambda db: db.execute("SELECT COUNT(*) FROM features").fetchone()[0])
        return self._run(lambda db: db.execute("SELECT COUNT(*) FROM features WHERE encoder = ?",
                                               (encoder,)).fetchone()[0])

    # ---------------------------------------------------------- high level
    def audio_features(self, paths: Sequence[str], encoder, workers: int | None = None,
                       progress: bool | ProgressFn = True, chunk: int = MAX_CHUNK) -> AudioFeatures:
        """Features for each path, computing only what is missing; unreadable files are skipped and reported.

        Missing files are encoded in chunks of at most ``chunk`` files, sized by :func:`chunk_sizes` so that even
        a small job is shared among the ``workers`` processes (default: up to 4, one per core); the values do
        not depend on the number of workers or the chunking."""
        fp = encoder.fingerprint()
        shas, errors = self._hashes(paths)
        unreadable = {i: f"cannot read file: {err.strerror or err}" for i, err in errors.items()}  # row -> reason
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


# ------------------------------------------------------------ cache plumbing
_LIVE: weakref.WeakSet[FeatureCache] = weakref.WeakSet()  # this process's open caches (see _before_fork)
_INHERITED: list[sqlite3.Connection] = []  # connections a forked child inherited: never used, never closed
_FORK_HOOK: list[bool] = []  # registered once
_HELD: list[FeatureCache] = []  # caches whose locks the forking thread holds
_LIVE_LOCK = threading.Lock()  # a WeakSet must not grow while another thread iterates it


def _track(cache: FeatureCache) -> None:
    if not _FORK_HOOK and hasattr(os, "register_at_fork"):
        os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                            after_in_child=_after_fork_in_child)
        _FORK_HOOK.append(True)
    with _LIVE_LOCK:
        _LIVE.add(cache)


def _before_fork() -> None:
    """Fork only between cache calls (as `logging` does with its locks): no child starts with a connection caught
    inside a transaction."""
    with _LIVE_LOCK:
        caches = sorted(_LIVE, key=id)
    for cache in caches:
        cache._lock.acquire()
        _HELD.append(cache)


def _after_fork_in_parent() -> None:
    while _HELD:
        _HELD.pop()._lock.release()


def _after_fork_in_child() -> None:
    """Fresh locks in the child (the parent's belong to the parent's threads); connections are let go on first
    use (`_drop_inherited`)."""
    global _LIVE_LOCK
    _LIVE_LOCK = threading.Lock()  # another thread may have held it at the fork
    for cache in _HELD:
        cache._lock = threading.RLock()
    _HELD.clear()


def _drop_inherited() -> None:
    """Before a forked child's first cache call: let go of every connection inherited from the parent.

    SQLite keeps, per process, which locks it holds on each database file and shares that among the process's
    connections; a child inherits the parent's record but not the locks themselves (POSIX locks belong to a
    process). A connection the child opened while an inherited one lives would believe itself covered by the
    parent's locks and take none, so the parent, closing its last connection, would find the file unused,
    checkpoint, and unlink the -wal and -shm the child still writes to: the child's commits vanish and its next
    connection reads a new, empty WAL against the old index ("file is not a database"). Closing the inherited
    connections first (outside a transaction: SQLite then only tries, and fails, to take the parent's lock) clears
    that record; one caught inside a transaction is kept open and unused until the process ends instead."""
    pid = os.getpid()
    with _LIVE_LOCK:
        caches = list(_LIVE)
    for cache in caches:
        if cache._pid != pid:
            db, cache._db, cache._pid = cache._db, None, pid
            if db is not None:
                _release(db)


def _release(db: sqlite3.Connection) -> None:
    """Close an inherited connection, or keep it (never used, never closed) when a transaction was open in it:
    closing would roll that back through the WAL index the parent shares."""
    if not db.in_transaction:
        db.close()
        return
    _INHERITED.append(db)
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(db))  # not even interpreter shutdown may close it


def _identity(path: Path) -> tuple[int, int] | None:
    """Which file is at `path` now ((device, inode); None when there is none): tells a moved-aside cache."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (every transaction is explicit and short), WAL journal, tables present."""
    db = sqlite3.connect(str(path), timeout=BUSY_SECONDS, check_same_thread=False, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # in WAL mode: a commit survives any crash of the process
        db.execute("CREATE TABLE IF NOT EXISTS hashes (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, "
                   "sha TEXT)")
        db.execute("CREATE TABLE IF NOT EXISTS features (encoder TEXT, sha TEXT, vec BLOB, "
                   "PRIMARY KEY (encoder, sha))")
    except BaseException:
        db.close()
        raise
    return db


def _damaged(err: sqlite3.DatabaseError) -> bool:
    """Whether SQLite says the file is damaged (not a database, or corrupt), as opposed to busy, full or locked."""
    code = getattr(err, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (SQLITE_CORRUPT, SQLITE_NOTADB)
    return "not a database" in str(err) or "malformed" in str(err)


def _damage(path: Path) -> str | None:
    """Why the file at `path` is not a usable database, from a fresh connection; None when it reads fine."""
    try:
        db = sqlite3.connect(str(path), timeout=BUSY_SECONDS)
    except sqlite3.DatabaseError as err:
        return str(err) if _damaged(err) else None
    try:
        rows = db.execute("PRAGMA quick_check").fetchall()
        return None if rows == [("ok",)] else "it fails SQLite's integrity check"
    except sqlite3.DatabaseError as err:
        return str(err) if _damaged(err) else None
    finally:
        db.close()


def _move_aside(path: Path) -> Path:
    """Rename the cache and its -wal and -shm to `<name>.damaged-<timestamp>[-n]`; returns the new name.

    The WAL files go first: whoever opens the path meanwhile meets the damaged file alone (and waits for this
    recovery), never a new database paired with the old WAL."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside, n = path.with_name(f"{path.name}.damaged-{stamp}"), 1
    while any(os.path.lexists(f"{aside}{suffix}") for suffix in ("", "-wal", "-shm")):
        aside, n = path.with_name(f"{path.name}.damaged-{stamp}-{n}"), n + 1
    for suffix in ("-wal", "-shm", ""):
        try:
            os.replace(f"{path}{suffix}", f"{aside}{suffix}")
        except FileNotFoundError:
            pass
    return aside


_RECOVERY = threading.Lock()


@contextlib.contextmanager
def _recovery_lock(folder: Path):
    """One recovery at a time: among this process's threads, and (an flock on the folder, never on the database
    file, whose POSIX locks any other descriptor's close would drop) among processes."""
    with _RECOVERY:
        try:
            import fcntl

            fd = os.open(folder, os.O_RDONLY)
        except (ImportError, OSError):
            yield  # no flock here (Windows): threads are still serialised
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


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
            pool = ProcessPoolExecutor(workers, initializer=_worker_init, initargs=(encoder, os.getpid()))
            try:
                results = pool.map(_worker_encode, chunks)  # in order, whichever worker finishes first
                for result in results:
                    done += len(result[0]) + len(result[2])
                    report(done)
                    yield result
            except BaseException:  # Ctrl-C, an error, or the caller stopped early: drop the chunks not started
                pool.shutdown(wait=False, cancel_futures=True)
                raise
            pool.shutdown()
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
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the parent handles it
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
