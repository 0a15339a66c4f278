import os

import numpy as np
import pytest
import soundfile as sf

from emorank.encoders.cache import MAX_CHUNK, FeatureCache, chunk_sizes, file_sha


class CountingEncoder:
    """A tiny deterministic audio encoder (RMS, peak, duration) that counts its calls."""

    name = "counting"
    dim = 3
    parallel_safe = True

    def __init__(self):
        self.calls = 0

    def fingerprint(self):
        return "counting-v1"

    def encode(self, waves):
        self.calls += len(waves)
        return np.array([[np.sqrt(np.mean(w ** 2)), np.abs(w).max(), len(w) / 16000] for w in waves], np.float32)


class CountingText:
    name = "text"
    dim = 2

    def __init__(self):
        self.seen = []

    def fingerprint(self):
        return "text-v1"

    def encode(self, texts):
        self.seen.extend(texts)
        return np.array([[len(t), t.count(" ")] for t in texts], np.float32)


def tone(path, amp, seconds=0.5, sr=16000):
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, (amp * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sr)
    return str(path)


@pytest.fixture
def cache(tmp_path):
    with FeatureCache(tmp_path / "cache.sqlite") as c:
        yield c


def test_features_are_computed_once_per_content(tmp_path, cache):
    paths = [tone(tmp_path / f"{i}.wav", 0.1 * (i + 1)) for i in range(4)]
    enc = CountingEncoder()  # counts in this process: workers=1
    first = cache.audio_features(paths, enc, workers=1, progress=False)
    assert enc.calls == 4 and first.values.shape == (4, 3)
    assert first.values[:, 0].tolist() == sorted(first.values[:, 0].tolist())  # louder files, larger RMS
    again = cache.audio_features(paths, enc, workers=1, progress=False)
    assert enc.calls == 4  # nothing recomputed
    np.testing.assert_array_equal(first.values, again.values)


def test_changed_file_is_recomputed_and_copy_is_not(tmp_path, cache):
    paths = [tone(tmp_path / f"{i}.wav", 0.2) for i in range(2)]  # identical content
    enc = CountingEncoder()
    cache.audio_features(paths, enc, workers=1, progress=False)
    assert enc.calls == 1  # same content, one computation
    tone(paths[1], 0.6)
    os.utime(paths[1], ns=(1, 1))
    out = cache.audio_features(paths, enc, workers=1, progress=False)
    assert enc.calls == 2
    assert out.values[1, 0] > out.values[0, 0]


def test_bad_files_are_skipped_and_reported(tmp_path, cache):
    good = tone(tmp_path / "good.wav", 0.3)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF....not really audio")
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(8000, np.float32), 16000)
    missing = str(tmp_path / "missing.wav")
    with pytest.warns(UserWarning, match="skipped 3 of 4"):
        out = cache.audio_features([good, str(corrupt), str(silent), missing], CountingEncoder(), progress=False)
    assert out.rows.tolist() == [0]
    reasons = dict(out.skipped)
    assert set(reasons) == {str(corrupt), str(silent), missing}
    assert "silent" in reasons[str(silent)].lower()


def test_parallel_extraction_matches_serial(tmp_path):
    paths = [tone(tmp_path / f"{i}.wav", 0.05 + 0.01 * i) for i in range(12)]
    with FeatureCache(tmp_path / "a.sqlite") as a, FeatureCache(tmp_path / "b.sqlite") as b:
        serial = a.audio_features(paths, CountingEncoder(), workers=1, progress=False)
        parallel = b.audio_features(paths, CountingEncoder(), workers=2, progress=False, chunk=3)
    np.testing.assert_array_equal(serial.values, parallel.values)


def test_progress_callback_reaches_total(tmp_path, cache):
    paths = [tone(tmp_path / f"{i}.wav", 0.2 + 0.05 * i) for i in range(5)]
    seen = []
    cache.audio_features(paths, CountingEncoder(), progress=lambda done, total: seen.append((done, total)), chunk=2)
    assert seen[-1] == (5, 5) and [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_text_features_encode_each_distinct_text_once(cache):
    enc = CountingText()
    texts = ["a b", "c", "a b", "d e f"]
    out = cache.text_features(texts, enc)
    assert out.shape == (4, 2) and sorted(enc.seen) == ["a b", "c", "d e f"]
    np.testing.assert_array_equal(out[0], out[2])
    cache.text_features(texts, enc)
    assert len(enc.seen) == 3


def test_cache_persists_across_instances(tmp_path):
    path = tone(tmp_path / "x.wav", 0.3)
    enc = CountingEncoder()
    with FeatureCache(tmp_path / "c.sqlite") as c:
        c.audio_features([path], enc, progress=False)
    with FeatureCache(tmp_path / "c.sqlite") as c:
        c.audio_features([path], enc, progress=False)
        assert c.count("counting-v1") == 1
    assert enc.calls == 1
    assert len(file_sha(path)) == 64


def test_cache_is_safe_to_share_between_threads(tmp_path, cache):
    from concurrent.futures import ThreadPoolExecutor

    paths = [tone(tmp_path / f"{i}.wav", 0.1 + 0.02 * i) for i in range(8)]
    enc = CountingEncoder()
    expected = cache.audio_features(paths, enc, workers=1, progress=False).values
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: cache.audio_features(paths, CountingEncoder(), workers=1,
                                                                progress=False).values, range(8)))
        texts = list(pool.map(lambda i: cache.text_features([f"text {i}", "shared"], CountingText()), range(8)))
    assert all(np.array_equal(r, expected) for r in results)
    assert all(np.array_equal(t[1], texts[0][1]) for t in texts)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 40, 64, 65, 200, 1000, 100_000])
@pytest.mark.parametrize("workers", [1, 2, 3, 4, 16])
def test_chunk_sizes_cover_the_job_bounded_and_balanced(n, workers):
    sizes = chunk_sizes(n, workers)
    assert sum(sizes) == n and all(1 <= s <= MAX_CHUNK for s in sizes)
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)
    assert len(sizes) >= min(n, workers)  # every worker gets a share, however small the job


def test_chunk_sizes_split_small_jobs_across_workers():
    assert chunk_sizes(200, 2) == [25] * 8  # formerly [64, 64, 64, 8]
    assert chunk_sizes(40, 2) == [5] * 8  # formerly one chunk of 40, never parallel
    assert chunk_sizes(3, 2) == [1, 1, 1]
    assert chunk_sizes(1000, 2) == [63] * 8 + [62] * 8  # large jobs: chunks of at most 64
    assert chunk_sizes(10, 1, max_chunk=3) == [3, 3, 2, 2]
    assert chunk_sizes(0, 2) == []
    with pytest.raises(ValueError, match="workers"):
        chunk_sizes(10, 0)


def test_values_do_not_depend_on_the_worker_count(tmp_path):
    paths = [tone(tmp_path / f"{i}.wav", 0.05 + 0.01 * i, seconds=0.1 + 0.02 * i) for i in range(10)]
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....not really audio")
    paths.insert(4, str(bad))
    outs = []
    for workers in (1, 2, 3):
        with FeatureCache(tmp_path / f"w{workers}.sqlite") as c, pytest.warns(UserWarning, match="skipped 1"):
            outs.append(c.audio_features(paths, CountingEncoder(), workers=workers, progress=False))
    for out in outs:
        np.testing.assert_array_equal(out.values, outs[0].values)
        assert out.rows.tolist() == [i for i in range(11) if i != 4] and out.skipped == outs[0].skipped


def test_small_jobs_run_in_several_worker_processes(tmp_path):
    """10 files on 2 workers (once always serial: fewer than 64 files) are encoded by two processes."""
    paths = [tone(tmp_path / f"{i}.wav", 0.1 + 0.02 * i) for i in range(10)]
    with FeatureCache(tmp_path / "p.sqlite") as c:
        out = c.audio_features(paths, PidEncoder(), workers=2, progress=False)
    pids = set(out.values[:, 1].astype(int).tolist())
    assert len(pids) == 2 and os.getpid() not in pids
    assert out.values[:, 0].tolist() == sorted(out.values[:, 0].tolist())  # rows stay in input order


class PidEncoder(CountingEncoder):
    """Records which process encoded each file (and its RMS, to check the order)."""

    name = "pid"

    def fingerprint(self):
        return "pid-v1"

    def encode(self, waves):
        import time

        time.sleep(0.2)  # long enough that one worker cannot take every chunk before the other starts
        return np.array([[np.sqrt(np.mean(w ** 2)), os.getpid(), 0] for w in waves], np.float32)
