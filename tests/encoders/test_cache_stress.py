"""Several processes and threads share one feature cache while processes are killed (-9) at random points.

Mirrors the app: a long-lived process reading and writing (this test's own), `emorank features`-like processes
writing beside it (each with several threads, and each now and then forking a child that writes through the
cache it inherited, as fork-based worker pools do), an online backup taken meanwhile, and processes that die
with SIGKILL mid-write. Afterwards the cache must be intact (PRAGMA integrity_check) and complete: every row whose
write had returned (each writer logs its keys after the call returns) is there with its value.
"""
from __future__ import annotations

import hashlib
import os
import random
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from emorank.encoders.cache import FeatureCache

ROOT = Path(__file__).resolve().parents[2]
SEED = 14
SECONDS = 12.0  # of killing and restarting; the whole test takes about 20 s
PROCESSES = 3  # writer processes alive at any time
ENCODER = "stress"

WORKER = r"""
import hashlib, os, signal, sys, threading, time
import numpy as np
from emorank.encoders.cache import FeatureCache

path, log_path, tag, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])


def value(key):
    return np.frombuffer(hashlib.sha256(key.encode()).digest(), dtype=np.float32)  # [8]


cache = FeatureCache(path)
log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
clips = [os.path.join(os.path.dirname(log_path), f"clip{i}.bin") for i in range(4)]


def record(keys):
    os.write(log, "".join(k + "\n" for k in keys).encode())  # only once the write has returned


def fork_writer(name):
    pid = os.fork()
    if pid == 0:  # a forked worker using the cache it inherited
        signal.alarm(10)  # never outlive the test, whatever happens
        code = 1
        try:
            batch = {f"{name}-{i}": value(f"{name}-{i}") for i in range(5)}
            cache.put_many("stress", batch)
            record(batch)
            code = 0
        finally:
            os._exit(code)
    os.waitpid(pid, 0)


def run(t):
    rng = np.random.default_rng(seed * 10 + t)
    written = []
    for n in range(10 ** 9):
        keys = [f"{tag}-{t}-{n}-{i}" for i in range(int(rng.integers(1, 30)))]
        cache.put_many("stress", {k: value(k) for k in keys})
        record(keys)
        written += keys
        sample = [written[int(i)] for i in rng.integers(0, len(written), 20)]
        for k, v in cache.get_many("stress", sample).items():
            if v.tobytes() != value(k).tobytes():  # bytes: a random float32 may be NaN
                os.write(log, f"BAD {k}\n".encode())
        if len(cache.get_many("stress", sample)) != len(set(sample)):
            os.write(log, f"MISSING one of {sample}\n".encode())
        if t == 1:  # a new file to hash now and then, as when a corpus grows
            clip = os.path.join(os.path.dirname(log_path), f"clip-{tag}-{n}.bin")
            with open(clip, "wb") as f:
                f.write(os.urandom(256))
            clips.append(clip)
        cache.content_hashes(clips[:4] + clips[-1:])
        if t == 0 and n % 3 == 1:
            fork_writer(f"{tag}-fork{n}")


for t in range(3):
    threading.Thread(target=run, args=(t,), daemon=True).start()
os.write(log, b"")
time.sleep(3600)
"""


def value(key: str) -> np.ndarray:
    return np.frombuffer(hashlib.sha256(key.encode()).digest(), dtype=np.float32)


def logged(folder: Path) -> tuple[list[str], list[str]]:
    """(keys whose write returned, problems the writers saw), from every writer's log (a killed writer's last line
    may be cut short: it is ignored)."""
    keys, problems = [], []
    for log in folder.glob("*.log"):
        text = log.read_text()
        lines = text.split("\n")[:-1]  # the part after the last newline is unfinished
        problems += [ln for ln in lines if ln.startswith(("BAD", "MISSING"))]
        keys += [ln for ln in lines if not ln.startswith(("BAD", "MISSING"))]
    return keys, problems


def held_deleted() -> list[str]:
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if "cache.sqlite" in target and target.endswith("(deleted)"):
            out.append(target)
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork, SIGKILL and /proc")
def test_cache_stays_intact_and_complete_under_kill_9(tmp_path):
    rng = random.Random(SEED)
    path = tmp_path / "cache.sqlite"
    logs = tmp_path / "logs"
    logs.mkdir()
    for i in range(4):
        (logs / f"clip{i}.bin").write_bytes(bytes([i]) * 1000)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}

    app = FeatureCache(path)  # this process plays the app: a long-lived connection, used from threads
    stop = threading.Event()
    mine: list[str] = []
    errors: list[str] = []

    def app_thread(t: int) -> None:
        n = 0
        while not stop.is_set():
            keys = [f"app-{t}-{n}-{i}" for i in range(5)]
            try:
                app.put_many(ENCODER, {k: value(k) for k in keys})
                mine.extend(keys)
                got = app.get_many(ENCODER, keys)
                if len(got) != len(keys) or any(v.tobytes() != value(k).tobytes() for k, v in got.items()):
                    errors.append(f"app read back wrong rows for {keys}")
            except Exception as err:  # noqa: BLE001 - collected, the test fails below
                errors.append(f"{type(err).__name__}: {err}")
            n += 1
            time.sleep(0.01)

    def backups() -> None:
        k = 0
        while not stop.is_set():
            src, dst = sqlite3.connect(str(path)), sqlite3.connect(str(tmp_path / f"backup{k % 2}.sqlite"))
            try:
                src.backup(dst)  # an online backup of the live cache, as in the incident
            except sqlite3.Error as err:
                errors.append(f"backup: {err}")
            finally:
                dst.close()
                src.close()
            k += 1
            time.sleep(0.5)

    threads = [threading.Thread(target=app_thread, args=(t,)) for t in range(2)] + [threading.Thread(target=backups)]
    for t in threads:
        t.start()
    procs: list[subprocess.Popen] = []
    started = kills = 0

    def start() -> None:
        nonlocal started
        procs.append(subprocess.Popen([sys.executable, str(script), str(path), str(logs / f"w{started}.log"),
                                       f"w{started}", str(SEED + started)], env=env, cwd=tmp_path,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        started += 1

    try:
        for _ in range(PROCESSES):
            start()
        deadline = time.monotonic() + SECONDS
        while time.monotonic() < deadline:
            time.sleep(rng.uniform(0.1, 0.8))
            victim = procs.pop(rng.randrange(len(procs)))
            if victim.poll() is not None:
                errors.append(f"a writer exited by itself: {victim.stderr.read().decode()[-800:]}")
            victim.kill()  # SIGKILL, wherever it is: mid-transaction, mid-checkpoint, mid-fork
            victim.wait()
            kills += 1
            start()
    finally:
        for p in procs:
            p.kill()
            p.wait()
        stop.set()
        for t in threads:
            t.join()

    keys, problems = logged(logs)
    assert kills >= 10 and len(keys) > 1000, (kills, len(keys))
    assert not errors and not problems, (errors[:5], problems[:5])
    assert held_deleted() == [], "the app holds WAL files that were unlinked under it"
    db = sqlite3.connect(str(path))
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        rows = dict(db.execute("SELECT sha, vec FROM features WHERE encoder = ?", (ENCODER,)).fetchall())
        assert db.execute("SELECT COUNT(*) FROM hashes").fetchone()[0] >= 4
    finally:
        db.close()
    lost = [k for k in keys + mine if k not in rows]
    assert not lost, f"{len(lost)} rows written and then lost, e.g. {lost[:3]}"
    assert all(np.frombuffer(rows[k], np.float32).tobytes() == value(k).tobytes() for k in keys + mine)
    assert any("fork" in k for k in keys)  # forked writers took part
    assert app.count(ENCODER) == len(rows)  # and the long-lived connection still answers
    app.close()
    for k in range(2):
        backup = tmp_path / f"backup{k}.sqlite"
        if backup.exists():
            check = sqlite3.connect(str(backup))
            assert check.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            check.close()
