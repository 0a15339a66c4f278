"""Feature-extraction workers never outlive the process that started them, even after kill -9."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emorank.encoders.cache import FeatureCache, SkippedAudioWarning

ROOT = Path(__file__).resolve().parents[2]


def _children(pid: int) -> set[int]:
    """Live (non-zombie) processes whose parent is `pid`, read from /proc."""
    out = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if int(fields.get("PPid", "0")) == pid and not fields.get("State", "").strip().startswith("Z"):
            out.add(int(entry))
    return out


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_exit_when_the_parent_is_killed(tmp_path):
    rng = np.random.default_rng(0)
    rows = ["path,valence,arousal,speaker"]
    for i in range(80):  # more than one chunk of 64, so the pool is used; 3 s each keeps the workers busy
        sf.write(tmp_path / f"{i}.wav", (0.1 * rng.normal(size=48000)).astype(np.float32), 16000)
        rows.append(f"{i}.wav,4,4,s{i % 4}")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    proc = subprocess.Popen([sys.executable, "-m", "emorank", "features", "--manifest", str(tmp_path / "m.csv"),
                             "--cache", str(tmp_path / "c.sqlite"), "--workers", "2"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 60
        while len(workers) < 2 and time.monotonic() < deadline and proc.poll() is None:
            workers |= _children(proc.pid)
            time.sleep(0.05)
        assert len(workers) >= 2, "the features command never started its worker processes"
        time.sleep(0.3)  # let the workers pass their initialiser and block on their tasks
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 5
        while any(_running(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [w for w in workers if _running(w)], "worker processes outlived their killed parent"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for w in workers:  # only the processes this test started
            if _running(w):
                os.kill(w, signal.SIGKILL)


def test_skipped_files_carry_their_reason_without_the_path(tmp_path):
    good = tmp_path / "good.wav"
    sf.write(good, (0.3 * np.sin(np.arange(8000) / 5)).astype(np.float32), 16000)
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(8000, np.float32), 16000)

    class Enc:
        name, dim, parallel_safe = "rms", 1, False

        def fingerprint(self):
            return "rms-v1"

        def encode(self, waves):
            return np.array([[float(np.sqrt(np.mean(w ** 2)))] for w in waves], np.float32)

    with FeatureCache(tmp_path / "c.sqlite") as cache, pytest.warns(SkippedAudioWarning, match="skipped 1 of 2"):
        out = cache.audio_features([str(good), str(silent)], Enc(), progress=False)
    assert out.skipped == [(str(silent), out.skipped[0][1])]
    assert out.skipped[0][1].startswith("silent audio") and str(tmp_path) not in out.skipped[0][1]
