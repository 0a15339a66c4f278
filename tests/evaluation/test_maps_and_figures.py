"""Tests of emorank.viz: projections (oracle, determinism, cache), the modality gap, figures and exports."""
from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest

from emorank.evaluation import figures, maps

REPO = Path(__file__).resolve().parents[2]


def _pair(n: int = 40, m: int = 30, d: int = 12, shift: float = 0.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    audio = rng.normal(size=(n, d)).astype(np.float32)
    text = (rng.normal(size=(m, d)) + shift).astype(np.float32)
    return audio, text


def _labels(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(1, 7, size=(n, 2))


@pytest.fixture
def emap():
    audio, text = _pair(shift=1.0)
    return maps.embedding_map(audio, text, method="pca")


@pytest.fixture
def counted_pca(monkeypatch):
    """Replace the PCA projection by a spy that counts fits (the cache must avoid them)."""
    calls = []
    real = maps.PROJECTIONS["pca"]

    def spy(x, seed, params):
        calls.append(x.shape)
        return real(x, seed, params)

    monkeypatch.setitem(maps.PROJECTIONS, "pca", spy)
    return calls


# ------------------------------------------------------------------------------------------------ import cost


def test_import_loads_no_heavy_package():
    code = "import sys, emorank.evaluation.maps, emorank.evaluation.figures; print([m for m in ('umap', 'plotly', 'matplotlib', 'numba') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------------------ projections


@pytest.mark.parametrize("n, m, d", [(40, 30, 12), (6, 4, 50)])  # tall and wide joint sets
def test_pca_matches_covariance_eigenvectors_on_the_joint_set(n, m, d):
    audio, text = _pair(n=n, m=m, d=d, shift=0.5)
    emap = maps.embedding_map(audio, text, method="pca", with_gap=False)
    joint = np.concatenate([audio, text]).astype(np.float64)
    centred = joint - joint.mean(0)
    evals, evecs = np.linalg.eigh(np.cov(centred.T))  # ascending, [D]
    expected = centred @ evecs[:, ::-1][:, :2]  # [N + M, 2]
    got = np.concatenate([emap.coords_audio, emap.coords_text])
    for k in range(2):  # principal axes are defined up to sign
        sign = np.sign(got[:, k] @ expected[:, k])
        np.testing.assert_allclose(got[:, k], sign * expected[:, k], atol=1e-4)
    ratio = evals[::-1][:2] / evals.sum()
    np.testing.assert_allclose(emap.info["explained_variance_ratio"], ratio, rtol=1e-6)
    assert emap.coords_audio.shape == (n, 2) and emap.coords_text.shape == (m, 2)


def test_joint_projection_shows_the_gap():
    audio, text = _pair(shift=3.0)
    emap = maps.embedding_map(audio, text, method="pca", with_gap=False)
    gap_2d = np.linalg.norm(emap.coords_audio.mean(0) - emap.coords_text.mean(0))
    assert gap_2d > 0.9 * np.linalg.norm(audio.mean(0) - text.mean(0))  # the gap is the main direction


def test_pca_is_deterministic_and_sign_stable_under_row_permutation():
    audio, text = _pair()
    a = maps.embedding_map(audio, text, method="pca", with_gap=False)
    b = maps.embedding_map(audio.copy(), text.copy(), method="pca", with_gap=False)
    np.testing.assert_array_equal(a.coords_audio, b.coords_audio)
    perm = np.random.default_rng(3).permutation(len(audio))
    c = maps.embedding_map(audio[perm], text, method="pca", with_gap=False)
    np.testing.assert_allclose(c.coords_audio, a.coords_audio[perm], atol=1e-5)


@pytest.mark.parametrize("d", [3, 20])
def test_pca_of_rank_one_data_leaves_a_zero_axis(d):
    base = np.ones((5, d), dtype=np.float32)
    emap = maps.embedding_map(base * np.arange(5)[:, None], base[:2], method="pca", with_gap=False)
    np.testing.assert_allclose(emap.coords_audio[:, 1], 0.0, atol=1e-6)
    assert emap.info["explained_variance_ratio"][1] == pytest.approx(0.0, abs=1e-12)


def test_cached_map_is_read_back_without_fitting(tmp_path, counted_pca):
    audio, text = _pair()
    first = maps.embedding_map(audio, text, method="pca", cache_dir=tmp_path)
    second = maps.embedding_map(audio, text, method="pca", cache_dir=tmp_path)
    assert len(counted_pca) == 1
    assert not first.from_cache and second.from_cache
    np.testing.assert_array_equal(first.coords_audio, second.coords_audio)
    np.testing.assert_array_equal(first.coords_text, second.coords_text)
    assert first.gap == second.gap and first.params == second.params and first.info == second.info
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 1 and files[0].startswith("pca-") and files[0].endswith(".npz")  # no temp leftovers


def test_cache_key_follows_data_method_seed_and_params(tmp_path, counted_pca):
    audio, text = _pair()
    key = maps.projection_cache_key(audio, text, "pca", 0, {})
    changed = audio.copy()
    changed[3, 4] += 1e-3
    assert maps.projection_cache_key(changed, text, "pca", 0, {}) != key
    assert maps.projection_cache_key(text, audio, "pca", 0, {}) != key  # which set is audio matters
    assert maps.projection_cache_key(audio, text, "umap", 0, {}) != key
    assert maps.projection_cache_key(audio, text, "pca", 1, {}) != key
    assert maps.projection_cache_key(audio, text, "pca", 0, {"n_neighbors": 5}) != key
    assert maps.projection_cache_key(audio.copy(), text.copy(), "pca", 0, {}) == key
    maps.embedding_map(audio, text, method="pca", cache_dir=tmp_path)
    maps.embedding_map(changed, text, method="pca", cache_dir=tmp_path)
    assert len(counted_pca) == 2 and len(list(tmp_path.iterdir())) == 2


def test_broken_cache_file_is_recomputed(tmp_path, counted_pca):
    audio, text = _pair()
    maps.embedding_map(audio, text, method="pca", cache_dir=tmp_path)
    (cache_file,) = tmp_path.iterdir()
    cache_file.write_bytes(b"not an npz")
    again = maps.embedding_map(audio, text, method="pca", cache_dir=tmp_path)
    assert len(counted_pca) == 2 and not again.from_cache
    assert maps.embedding_map(audio, text, method="pca", cache_dir=tmp_path).from_cache


@pytest.mark.parametrize("call, match", [
    (lambda a, t: maps.embedding_map(a, t[:, :5], method="pca"), "embedding size"),
    (lambda a, t: maps.embedding_map(a[:0], t, method="pca"), "audio_emb must be a non-empty"),
    (lambda a, t: maps.embedding_map(np.where(a > 1, np.nan, a), t, method="pca"), "audio_emb contains NaN"),
    (lambda a, t: maps.embedding_map(a, t, method="tsne"), r"unknown projection method 'tsne'; valid: \['pca', 'umap'\]"),
    (lambda a, t: maps.embedding_map(a, t, method="umap", perplexity=3), r"unknown parameter\(s\) \['perplexity'\]"),
    (lambda a, t: maps.embedding_map(a, t, method="pca", n_neighbors=3), "valid: none"),
    (lambda a, t: maps.embedding_map(a[:2], t[:1], method="umap"), "at least 4 points"),
    (lambda a, t: maps.modality_gap(a, t, max_points=1), "max_points"),
])
def test_bad_inputs_raise_specific_errors(call, match):
    audio, text = _pair()
    with pytest.raises(maps.VizInputError, match=match):
        call(audio, text)


# ------------------------------------------------------------------------------------------------ modality gap


def test_gap_of_identical_sets_is_zero():
    audio, _ = _pair(n=60)
    gap = maps.modality_gap(audio, audio.copy())
    assert gap["mmd"] == pytest.approx(0.0, abs=1e-12)
    assert gap["wasserstein"] == pytest.approx(0.0, abs=1e-9)
    assert gap["centroid_distance"] == pytest.approx(0.0, abs=1e-9)
    sub = maps.modality_gap(audio, audio.copy(), max_points=20)  # same seed -> same rows from both copies
    assert sub["n_used_audio"] == sub["n_used_text"] == 20
    assert sub["mmd"] == pytest.approx(0.0, abs=1e-12) and sub["wasserstein"] == pytest.approx(0.0, abs=1e-9)


def test_gap_grows_with_a_shift_and_centroid_distance_is_the_shift_norm():
    audio, _ = _pair(n=50, d=8)
    gaps = []
    for s in (0.5, 1.0, 2.0):
        shift = np.full(8, s, dtype=np.float32)
        gaps.append(maps.modality_gap(audio, audio + shift))
        assert gaps[-1]["centroid_distance"] == pytest.approx(np.linalg.norm(shift), rel=1e-5)
        # a pure translation moves every point by the shift: exact W1 = ||shift||
        assert gaps[-1]["wasserstein"] == pytest.approx(np.linalg.norm(shift), rel=1e-5)
    assert gaps[0]["mmd"] > 0 and gaps[0]["mmd"] < gaps[1]["mmd"] < gaps[2]["mmd"]


def test_gap_subsampling_is_seeded():
    audio, text = _pair(n=300, m=250, shift=0.3)
    a = maps.modality_gap(audio, text, seed=4, max_points=50)
    b = maps.modality_gap(audio, text, seed=4, max_points=50)
    c = maps.modality_gap(audio, text, seed=5, max_points=50)
    assert a == b and a["wasserstein"] != c["wasserstein"]
    assert a["n_audio"] == 300 and a["n_used_audio"] == 50
    assert a["centroid_distance"] == c["centroid_distance"]  # centroids use every row


def test_map_carries_the_gap_of_the_original_space(emap):
    audio, text = _pair(shift=1.0)
    assert emap.gap == maps.modality_gap(audio, text)
    assert maps.embedding_map(audio, text, method="pca", with_gap=False).gap == {}


# ------------------------------------------------------------------------------------------------ umap


def _fake_umap(monkeypatch, delay: float = 0.0):
    """A stand-in ``umap`` module recording each fit's parameters and time span (no numba, instant)."""
    log = []

    class UMAP:
        def __init__(self, **kwargs):
            self.kwargs = kwargs

        def fit_transform(self, x):
            start = time.perf_counter()
            time.sleep(delay)
            log.append({"kwargs": self.kwargs, "shape": x.shape, "dtype": x.dtype, "span": (start, time.perf_counter()),
                        "thread": threading.current_thread().name})
            return x[:, :2] * (1 + self.kwargs["random_state"])

    monkeypatch.setitem(sys.modules, "umap", types.SimpleNamespace(UMAP=UMAP))
    monkeypatch.setattr(maps, "_UMAP", maps._UmapWarmup())
    return log


def test_umap_wrapper_passes_seed_and_caps_the_neighbourhood(monkeypatch):
    log = _fake_umap(monkeypatch)
    audio, text = _pair(n=6, m=4)
    emap = maps.embedding_map(audio, text, method="umap", seed=3, with_gap=False, min_dist=0.3)
    kwargs = log[0]["kwargs"]
    assert kwargs["random_state"] == 3 and kwargs["n_components"] == 2 and kwargs["n_jobs"] == 1
    assert kwargs["n_neighbors"] == 9 and kwargs["min_dist"] == 0.3  # 15 capped at N + M - 1
    assert emap.params["n_neighbors"] == 9 and log[0]["dtype"] == np.float32 and log[0]["shape"] == (10, 12)
    np.testing.assert_allclose(emap.coords_text, text[:, :2] * 4)  # text rows follow the audio rows


def test_warm_umap_runs_in_a_daemon_thread_and_the_first_map_waits_for_it(monkeypatch):
    log = _fake_umap(monkeypatch, delay=0.3)
    thread = maps.warm_umap(background=True)
    assert isinstance(thread, threading.Thread) and thread.daemon
    assert maps.warm_umap(background=True) is thread  # one warm-up at a time
    audio, text = _pair(n=10, m=10)
    maps.embedding_map(audio, text, method="umap", with_gap=False)
    thread.join(timeout=5)
    assert [entry["thread"] for entry in log] == ["emorank-umap-warmup", "MainThread"]
    assert log[0]["span"][1] <= log[1]["span"][0]  # the real fit started after the warm-up finished
    assert maps.warm_umap() is None  # already warm: nothing to do


def test_warm_umap_in_the_foreground(monkeypatch):
    log = _fake_umap(monkeypatch)
    assert maps.warm_umap(background=False) is None
    assert len(log) == 1 and maps._UMAP.warm and maps._UMAP.error is None


@pytest.mark.skipif(importlib.util.find_spec("umap") is None, reason="umap-learn not installed")
def test_real_umap_is_deterministic_and_cached(tmp_path):
    """The real umap-learn code path, run with numba's JIT off (pure Python: ~10 s instead of a minute of
    kernel compilation) in a child process so this process's numba stays untouched."""
    code = textwrap.dedent(f"""
        import json, numpy as np, emorank.evaluation.maps as V
        rng = np.random.default_rng(0)
        audio = rng.normal(size=(24, 6)).astype(np.float32)
        text = (rng.normal(size=(16, 6)) + 2).astype(np.float32)
        kw = dict(method="umap", with_gap=False, n_epochs=15, n_neighbors=6)
        a = V.embedding_map(audio, text, cache_dir={str(tmp_path)!r}, **kw)
        b = V.embedding_map(audio, text, **kw)
        c = V.embedding_map(audio, text, cache_dir={str(tmp_path)!r}, **kw)
        print(json.dumps({{"shape": [a.coords_audio.shape, a.coords_text.shape],
                          "finite": bool(np.isfinite(a.coords_audio).all() and np.isfinite(a.coords_text).all()),
                          "same": bool(np.array_equal(a.coords_audio, b.coords_audio)),
                          "cached": [a.from_cache, c.from_cache],
                          "same_cached": bool(np.array_equal(a.coords_text, c.coords_text))}}))
    """)
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1", "PYTHONWARNINGS": "ignore"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"shape": [[24, 2], [16, 2]], "finite": True, "same": True, "cached": [False, True],
                      "same_cached": True}


# ------------------------------------------------------------------------------------------------ figures


def test_embedding_figure_by_modality(emap):
    fig = figures.embedding_figure(emap, hover_audio=[f"clip{i}.wav" for i in range(40)])
    audio, text = fig.data
    assert (audio.name, text.name) == ("audio", "text")
    assert len(audio.x) == 40 and len(text.x) == 30
    assert audio.marker.symbol == "circle" and text.marker.symbol == "diamond"
    assert audio.marker.color != text.marker.color
    np.testing.assert_allclose(audio.x, emap.coords_audio[:, 0])
    assert audio.text[5] == "clip5.wav" and text.text[0] == "text 0"
    subtitle = fig.layout.title.subtitle.text
    for key in ("mmd", "wasserstein", "centroid_distance"):
        assert f"{emap.gap[key]:.3f}" in subtitle


@pytest.mark.parametrize("color_by, column", [("valence", 0), ("arousal", 1)])
def test_embedding_figure_by_label_shares_one_colour_axis(emap, color_by, column):
    la, lt = _labels(40), _labels(30, seed=2)
    fig = figures.embedding_figure(emap, color_by=color_by, labels_audio=la, labels_text=lt)
    assert len(fig.data) == 2
    np.testing.assert_allclose(fig.data[0].marker.color, la[:, column])
    np.testing.assert_allclose(fig.data[1].marker.color, lt[:, column])
    assert {t.marker.coloraxis for t in fig.data} == {"coloraxis"}
    assert (fig.layout.coloraxis.cmin, fig.layout.coloraxis.cmax) == (1.0, 7.0)
    assert fig.layout.coloraxis.colorbar.title.text == color_by


def test_embedding_figure_draws_unlabelled_points_grey(emap):
    la = _labels(40)
    la[[1, 7], 0] = np.nan
    fig = figures.embedding_figure(emap, color_by="valence", labels_audio=la, labels_text=None)
    names = [t.name for t in fig.data]
    assert names == ["audio", "audio (no labels)", "text (no labels)"]
    assert [len(t.x) for t in fig.data] == [38, 2, 30]
    assert sum(len(t.x) for t in fig.data) == 70


@pytest.mark.parametrize("kwargs, match", [
    ({"color_by": "dominance"}, "unknown color_by 'dominance'"),
    ({"color_by": "valence"}, "needs labels_audio"),
    ({"labels_audio": np.ones((39, 2))}, r"labels_audio must have shape \[40, 2\]"),
    ({"hover_text": ["a"]}, "hover_text has 1 entries but there are 30 points"),
])
def test_embedding_figure_rejects_bad_arguments(emap, kwargs, match):
    with pytest.raises(maps.VizInputError, match=match):
        figures.embedding_figure(emap, **kwargs)


def test_side_by_side_puts_each_map_in_its_own_subplot(emap):
    other = maps.embedding_map(*_pair(shift=0.2), method="pca")
    fig = figures.side_by_side([emap, other], ["EmotionRankCLAP", "CLAP-SCE"], color_by="valence",
                         labels_audio=_labels(40), labels_text=_labels(30))
    assert len(fig.data) == 4
    assert [t.xaxis for t in fig.data] == ["x", "x", "x2", "x2"]
    assert [t.showlegend for t in fig.data] == [True, True, False, False]
    titles = [a.text for a in fig.layout.annotations]
    assert titles[0].startswith("EmotionRankCLAP") and titles[1].startswith("CLAP-SCE")
    assert f"{other.gap['mmd']:.3f}" in titles[1]
    assert fig.layout.coloraxis.cmin == 1.0
    from_figs = figures.side_by_side([figures.embedding_figure(emap), figures.embedding_figure(other)], ["a", "b"])
    assert len(from_figs.data) == 4 and f"{emap.gap['mmd']:.3f}" in from_figs.layout.annotations[0].text
    with pytest.raises(maps.VizInputError, match="2 titles for 1 maps"):
        figures.side_by_side([emap], ["a", "b"])


def test_va_plane_figure():
    points = _labels(5)
    fig = figures.va_plane_figure(points, query=(6.0, 2.0), labels=[f"c{i}.wav" for i in range(5)])
    clips, query = fig.data
    np.testing.assert_allclose(clips.x, points[:, 0])
    np.testing.assert_allclose(clips.y, points[:, 1])
    assert list(clips.text) == ["1", "2", "3", "4", "5"] and "c0.wav" in clips.hovertext[0]
    assert query.marker.symbol == "star" and (query.x[0], query.y[0]) == (6.0, 2.0)
    assert len(fig.layout.shapes) == 2 and {s.x0 for s in fig.layout.shapes} >= {4.0}
    assert fig.layout.xaxis.range[0] < 1.0 and fig.layout.yaxis.range[1] > 7.0
    assert len(figures.va_plane_figure(np.zeros((0, 2))).data) == 1


def _ordinality_results():
    rng = np.random.default_rng(0)
    out = {}
    for name, n in (("EmotionRankCLAP", 12), ("CLAP-SCE", 7)):
        out[name] = {k: {"values": list(rng.uniform(-0.2, 0.9, n))} for k in ("aoc", "voc")}
        for k in ("aoc", "voc"):
            v = np.asarray(out[name][k]["values"])
            out[name][k].update(mean=float(v.mean()), std=float(v.std(ddof=1)))
    return out


def test_ordinality_figure_bars_and_points():
    results = _ordinality_results()
    fig = figures.ordinality_figure(results)
    bars = [t for t in fig.data if t.type == "bar"]
    points = [t for t in fig.data if t.type == "scatter"]
    assert [b.name for b in bars] == ["AOC", "VOC"] and len(points) == 2
    np.testing.assert_allclose(bars[0].y, [results[s]["aoc"]["mean"] for s in results])
    np.testing.assert_allclose(bars[1].error_y.array, [results[s]["voc"]["std"] for s in results])
    assert len(points[0].y) == 12 + 7
    np.testing.assert_allclose(sorted(points[1].y), sorted(results["EmotionRankCLAP"]["voc"]["values"]
                                                           + results["CLAP-SCE"]["voc"]["values"]))
    assert list(fig.layout.xaxis.ticktext) == ["EmotionRankCLAP", "CLAP-SCE"]
    with pytest.raises(maps.VizInputError, match="'CLAP' need 'voc'"):
        figures.ordinality_figure({"CLAP": {"aoc": {"mean": 0.1, "std": 0.0}}})


def test_training_curve_figure_marks_the_best_epoch():
    history = [{"epoch": e, "train_loss": 2.0 / (e + 1), "val_loss": v} for e, v in enumerate([3.0, 1.5, 1.2, 1.4])]
    fig = figures.training_curve_figure(history)
    assert [t.name for t in fig.data] == ["train loss", "validation loss", "best epoch"]
    assert (fig.data[2].x[0], fig.data[2].y[0]) == (3, 1.2)  # epochs counted from 1, as in the app's status
    with pytest.raises(maps.VizInputError, match="record 0 has no 'train_loss'"):
        figures.training_curve_figure([{"epoch": 0}])


# ------------------------------------------------------------------------------------------------ exports


def test_save_figure_html_is_self_contained(tmp_path, emap):
    path = figures.save_figure(figures.embedding_figure(emap), tmp_path / "map.html")
    html = path.read_text()
    assert '<script src="http' not in html and len(html) > 1_000_000  # plotly.js embedded: opens offline
    payload = json.loads(figures.save_figure(figures.embedding_figure(emap), tmp_path / "map.json").read_text())
    assert len(payload["data"]) == 2
    with pytest.raises(maps.VizInputError, match="embedding_figure_png"):
        figures.save_figure(figures.embedding_figure(emap), tmp_path / "map.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.html", "map.json"]


def _read_png(path: Path) -> np.ndarray:
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return imread(path)


def test_png_exports(tmp_path, emap):
    la = _labels(40)
    la[0, 1] = np.nan
    written = [
        figures.embedding_figure_png(emap, tmp_path / "modality.png"),
        figures.embedding_figure_png(emap, tmp_path / "arousal.png", color_by="arousal", labels_audio=la),
        figures.ordinality_figure_png(_ordinality_results(), tmp_path / "ordinality.png"),
        figures.training_curve_png([{"epoch": e, "train_loss": 1.0 / (e + 1), "val_loss": None if e == 0 else 0.5}
                              for e in range(4)], tmp_path / "curve.png"),
    ]
    for path in written:
        image = _read_png(path)
        assert image.shape[0] > 100 and image.shape[1] > 100
        assert image[..., :3].std() > 0  # something was drawn
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in written)


def test_save_embeddings_round_trip(tmp_path):
    audio, text = _pair(shift=1.0)
    la, lt = _labels(40), _labels(30, seed=5)
    emap = maps.embedding_map(audio, text, method="pca", with_gap=False)
    npz, table = maps.save_embeddings(tmp_path / "emb.npz", audio, text, {"checkpoint": "demo"}, emb_map=emap,
                                   labels_audio=la, labels_text=lt, names_audio=[f"a{i}.wav" for i in range(40)])
    assert (npz.name, table.name) == ("emb.npz", "emb.csv")
    with np.load(npz, allow_pickle=False) as data:
        np.testing.assert_array_equal(data["audio_emb"], audio)
        np.testing.assert_array_equal(data["text_emb"], text)
        np.testing.assert_array_equal(data["labels_text"], lt)
        assert data["names_audio"][3] == "a3.wav" and "names_text" not in data
        meta = json.loads(str(data["meta_json"]))
    assert meta["checkpoint"] == "demo" and meta["map_method"] == "pca"
    rows = list(csv.DictReader(table.open()))
    assert len(rows) == 70 and [r["modality"] for r in rows].count("text") == 30
    assert rows[3]["name"] == "a3.wav" and float(rows[3]["x"]) == pytest.approx(emap.coords_audio[3, 0], rel=1e-5)
    assert float(rows[40]["arousal"]) == pytest.approx(lt[0, 1], rel=1e-3) and rows[40]["name"] == ""
    _, default_table = maps.save_embeddings(tmp_path / "plain", audio, text)  # no map given: PCA computed here
    assert len(list(csv.DictReader(default_table.open()))) == 70 and rows[0]["valence"] != ""
    with pytest.raises(maps.VizInputError, match="emb_map has 40 audio"):
        maps.save_embeddings(tmp_path / "bad", audio[:10], text, emb_map=emap)
