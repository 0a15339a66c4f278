"""The feature cache across fork, and a damaged cache file: moved aside, said once, rebuilt."""
from __future__ import annotations

import os
import signal
import sqlite3
import time
import warnings

import numpy as np
import pytest

from emorank.encoders import cache as features
from emorank.encoders.cache import CacheRecoveredWarning, FeatureCache, FeatureCacheError

needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def rows(n: int, tag: str = "r") -> dict[str, np.ndarray]:
    return {f"{tag}{i}": np.full(32, i, np.float32) for i in range(n)}


def stored(path) -> int:
    """Rows in the cache file as a fresh process would read them, after checking the file is intact."""
    db = sqlite3.connect(str(path))
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        return db.execute("SELECT COUNT(*) FROM features").fetchone()[0]
    finally:
        db.close()


def aside_files(folder, name="cache.sqlite") -> list[str]:
    """The damaged databases moved aside (their -wal and -shm, when they had them, go along)."""
    return sorted(p.name for p in folder.iterdir()
                  if p.name.startswith(f"{name}.damaged-") and not p.name.endswith(("-wal", "-shm")))


def child(work) -> int:
    """Run `work()` in a forked child; its exit status (0 = returned, 1 = raised, -9 = hung and killed)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            work()
            code = 0
        finally:
            os._exit(code)
    return reap(pid)


def reap(pid: int, timeout: float = 30.0) -> int:
    """The exit status of child `pid`; a child still running after `timeout` s (deadlocked) is killed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


# ------------------------------------------------------------------------------------------------------------ fork
@needs_fork
def test_a_forked_child_keeps_its_commits_when_the_parent_closes(tmp_path):
    """The incident's mechanism: a child using the connection it inherited holds none of SQLite's locks, so the
    parent's last close checkpointed and unlinked the -wal/-shm the child was writing to; the child's commits
    vanished and its next connection failed ("disk I/O error" / "file is not a database")."""
    path = tmp_path / "cache.sqlite"
    cache = FeatureCache(path)
    cache.put_many("e", rows(1, "parent"))
    read_fd, write_fd = os.pipe()

    def work():
        os.close(read_fd)
        for i in range(20):
            cache.put_many("e", {f"child{i}": np.ones(4)})
            if i == 4:
                os.write(write_fd, b"x")  # the parent closes while this child goes on writing
                os.read(go_r, 1)
        with FeatureCache(path) as other:
            assert other.count() == 21

    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            work()
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    os.read(read_fd, 1)
    cache.close()
    os.write(go_w, b"x")
    assert reap(pid) == 0
    assert stored(path) == 21
    assert sorted(p.name for p in tmp_path.iterdir()) in (["cache.sqlite"], ["cache.sqlite", "cache.sqlite-shm",
                                                                             "cache.sqlite-wal"])


@needs_fork
def test_hashing_holds_no_transaction_open_across_calls(tmp_path):
    """`content_hash` used to leave its INSERT uncommitted: every other writer waited (60 s, then "database is
    locked"), and a fork in that state let parent and child commit over the same WAL frames (the child's rows
    were lost)."""
    path = tmp_path / "cache.sqlite"
    clip = tmp_path / "clip.bin"
    clip.write_bytes(b"some audio bytes")
    cache = FeatureCache(path)
    cache.content_hash(str(clip))
    other = sqlite3.connect(str(path), timeout=0.2)
    other.execute("INSERT INTO features VALUES ('x', 'y', x'00')")  # not blocked by the cache's connection
    other.commit()
    other.close()
    assert child(lambda: cache.put_many("e", rows(30, "child"))) == 0
    cache.put_many("e", rows(30, "parent"))
    assert stored(path) == 61
    cache.close()


@needs_fork
def test_a_child_forked_while_another_thread_writes_starts_clean(tmp_path):
    import threading

    path = tmp_path / "cache.sqlite"
    cache = FeatureCache(path)
    stop = threading.Event()

    def writer():
        n = 0
        while not stop.is_set():
            cache.put_many("e", {f"t{n}": np.ones(64)})
            n += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        codes = [child(lambda k=k: cache.put_many("e", rows(10, f"c{k}-"))) for k in range(5)]
    finally:
        stop.set()
        thread.join()
    assert codes == [0] * 5
    cache.close()
    db = sqlite3.connect(str(path))
    names = {r[0] for r in db.execute("SELECT sha FROM features")}
    db.close()
    assert all(f"c{k}-{i}" in names for k in range(5) for i in range(10))
    assert stored(path) == len(names)


# -------------------------------------------------------------------------------------------------------- recovery
def damage_garbage(path):
    path.write_bytes(np.random.default_rng(0).bytes(8192))


def damage_not_sqlite(path):
    path.write_text('{"this": "is a JSON file, not a feature cache"}\n' * 50)


def damage_truncated(path):
    with FeatureCache(path) as cache:
        cache.put_many("e", rows(400))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


@pytest.mark.parametrize("damage", [damage_garbage, damage_not_sqlite, damage_truncated])
def test_a_damaged_cache_is_moved_aside_said_once_and_rebuilt(tmp_path, damage):
    path = tmp_path / "cache.sqlite"
    damage(path)
    before = path.read_bytes()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with FeatureCache(path) as cache:
            assert cache.get_many("e", list(rows(400))) == {}  # whatever was there is gone, no error
            assert cache.count() == 0
            cache.put_many("e", rows(3))
            assert set(cache.get_many("e", ["r0", "r1", "r2"])) == {"r0", "r1", "r2"}
        with FeatureCache(path) as again:  # the rebuilt cache is a good one: nothing more to say
            assert again.count() == 3
    said = [w for w in caught if issubclass(w.category, CacheRecoveredWarning)]
    assert len(said) == 1, [str(w.message) for w in caught]
    (aside,) = aside_files(tmp_path)
    message = str(said[0].message)
    assert "cache.sqlite" in message and aside in message and str(tmp_path) not in message
    assert (tmp_path / aside).read_bytes() == before  # kept as it was, for whoever wants to look
    assert stored(path) == 3


def test_a_cache_damaged_mid_session_recovers_on_the_next_query(tmp_path):
    path = tmp_path / "cache.sqlite"
    cache = FeatureCache(path)
    cache.put_many("e", rows(50))
    other = FeatureCache(path)  # a second connection in the same process (an app's job, say)
    assert other.count() == 50
    db = sqlite3.connect(str(path))
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the main file, as after a quiet moment
    db.close()
    with open(path, "r+b") as f:  # what the app met: the file at the path is no database any more
        f.write(np.random.default_rng(2).bytes(os.path.getsize(path)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert cache.get_many("e", ["r1", "r2"]) == {}
        cache.put_many("e", rows(2, "new"))
        assert other.get_many("e", ["new0", "new1"]).keys() == {"new0", "new1"}  # follows the rebuilt file
        other.put_many("e", rows(1, "other"))
        assert cache.count() == 3
    assert len([w for w in caught if issubclass(w.category, CacheRecoveredWarning)]) == 1
    assert len(aside_files(tmp_path)) == 1
    cache.close()
    other.close()
    assert stored(path) == 3


def test_a_busy_cache_is_never_taken_for_a_damaged_one(tmp_path, monkeypatch):
    path = tmp_path / "cache.sqlite"
    with FeatureCache(path) as cache:
        cache.put_many("e", rows(5))
    monkeypatch.setattr(features, "BUSY_SECONDS", 0.1)
    blocker = sqlite3.connect(str(path), isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process is writing
    try:
        cache = FeatureCache(path)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            cache.put_many("e", rows(1, "x"))
        assert cache.count() == 5
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    cache.close()
    assert aside_files(tmp_path) == [] and stored(path) == 5


def test_a_folder_is_refused_as_a_cache_with_a_clear_message(tmp_path):
    with pytest.raises(FeatureCacheError, match="is a folder"):
        FeatureCache(tmp_path)


def test_the_apps_query_path_recovers_from_a_damaged_cache(tmp_path):
    """The app reads caption features through `retrieval.QueryCache` and `text_features`; both go on after the
    cache file is damaged under them (before: `sqlite3.DatabaseError: file is not a database` on every query)."""
    from emorank.search.retrieval import QueryCache, text_embeddings

    class Text:
        name, dim = "text", 3

        def fingerprint(self):
            return "text-v1"

        def encode(self, texts):
            return np.array([[len(t), t.count("e"), 1.0] for t in texts], np.float32)

    class Model:
        text_encoder = Text()

        def embed_text_features(self, raw):
            raw = np.asarray(raw, np.float32)
            return raw / np.linalg.norm(raw, axis=1, keepdims=True)

    path = tmp_path / "cache.sqlite"
    cache = FeatureCache(path)  # the app's long-lived cache (Workspace.cache)
    before = text_embeddings(Model(), ["The person is speaking calmly."], cache)
    db = sqlite3.connect(str(path))
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    with open(path, "r+b") as f:
        f.write(np.random.default_rng(3).bytes(os.path.getsize(path)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        queries = QueryCache(Model(), cache=cache)
        assert queries.embed(["The person is speaking loudly."]).shape == (1, 3)
        again = text_embeddings(Model(), ["The person is speaking calmly."], cache)
        assert text_embeddings(Model(), ["The person is speaking calmly."], cache).shape == (1, 3)
    assert np.allclose(before, again)
    assert len([w for w in caught if issubclass(w.category, CacheRecoveredWarning)]) == 1
    cache.close()
    assert stored(path) == 1  # the caption features written again after the rebuild
