"""The embedding space: 2-D maps of both modalities (PCA or UMAP, cached), the modality gap, and export helpers.

    emap = embedding_map(audio_emb, text_emb, method="pca", cache_dir="runs/maps")   # or "umap"
    fig = embedding_figure(emap, color_by="valence", labels_audio=va_audio, labels_text=va_text)
    save_figure(fig, "map.html"); embedding_figure_png(emap, "map.png", color_by="valence", labels_audio=va_audio)

The projection is fitted on the joint set (audio rows, then text rows) so the modality gap stays visible; the gap
numbers (:func:`modality_gap`) are measured in the original embedding space, never in the 2-D map.

Heavy packages are imported inside the functions that need them: plotly (interactive figures), matplotlib (PNG
files, drawn through the Agg canvas directly, so the process-wide pyplot backend is never touched) and umap-learn
(3-20 s to import, and its numba kernels compile on the first fit: :func:`warm_umap` pays that in a background
thread). Every fit runs under one lock, so a fit requested during the warm-up waits for it and then reuses the
compiled kernels instead of compiling them a second time.
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import threading
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from emorank.metrics.alignment import mmd_rbf, wasserstein

CACHE_VERSION = 1
COLOR_MODES = ("modality", "valence", "arousal")
LABEL_RANGE = (1.0, 7.0)  # the paper's valence / arousal scale
MODALITY_COLORS = {"audio": "#1f77b4", "text": "#d62728"}
VA_COLORSCALES = {"valence": ("RdYlGn", "RdYlGn"), "arousal": ("Plasma", "plasma")}  # (plotly, matplotlib)
PROJECTION_DEFAULTS: dict[str, dict] = {
    "pca": {},
    # our interpretation: Euclidean, because the modality gap is a Euclidean quantity (and on L2-normalised
    # embeddings it orders neighbours exactly as cosine does); n_epochs None = umap's own default
    "umap": {"n_neighbors": 15, "min_dist": 0.1, "spread": 1.0, "metric": "euclidean", "init": "spectral",
             "n_epochs": None},
}


class VizInputError(ValueError):
    """An array, label set or result passed to a viz function is malformed (the message names the argument)."""


@dataclass
class EmbeddingMap:
    """A 2-D projection of audio and text embeddings fitted on both together.

    coords_audio [N, 2], coords_text [M, 2]; method ("pca" | "umap"); params: the resolved projection parameters
    (defaults filled in); gap: :func:`modality_gap` of the original embeddings ({} when not computed); info:
    extra outputs of the projection (PCA: explained variance ratio); from_cache: read from the disk cache.
    """

    coords_audio: np.ndarray
    coords_text: np.ndarray
    method: str
    params: dict
    gap: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    from_cache: bool = False


# ----------------------------------------------------------------------------------------------------------------
# input checks and small helpers


def _as_embeddings(a: np.ndarray, name: str) -> np.ndarray:
    """``a`` as a finite float32 C-contiguous matrix [N, D] with N, D >= 1, or VizInputError naming ``name``."""
    arr = np.asarray(a)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise VizInputError(f"{name} must be a non-empty 2-D array [N, D], got shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.all(np.isfinite(arr)):
        raise VizInputError(f"{name} contains NaN or infinite values")
    return arr


def _check_pair(audio_emb: np.ndarray, text_emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    audio = _as_embeddings(audio_emb, "audio_emb")
    text = _as_embeddings(text_emb, "text_emb")
    if audio.shape[1] != text.shape[1]:
        raise VizInputError(f"audio_emb and text_emb must share the embedding size, got {audio.shape[1]} and "
                            f"{text.shape[1]}: were they produced by the same checkpoint?")
    return audio, text


def _as_labels(labels: np.ndarray | None, n: int, name: str) -> np.ndarray | None:
    """Labels as float [n, 2] (valence, arousal) or None; NaN allowed (drawn grey / left out)."""
    if labels is None:
        return None
    arr = np.asarray(labels, dtype=np.float64)
    if arr.ndim != 2 or arr.shape != (n, 2):
        raise VizInputError(f"{name} must have shape [{n}, 2] (valence, arousal), got {arr.shape}")
    return arr


def _as_strings(values: Sequence[str] | None, n: int, name: str) -> list[str] | None:
    if values is None:
        return None
    out = [str(v) for v in values]
    if len(out) != n:
        raise VizInputError(f"{name} has {len(out)} entries but there are {n} points")
    return out


@contextlib.contextmanager
def _atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix); on success rename it onto ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # a fresh name (not mkstemp, whose 0600 mode would make downloads private): writers create it with the umask
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp{target.suffix}")
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# ----------------------------------------------------------------------------------------------------------------
# the modality gap


def _subsample(a: np.ndarray, k: int, seed: int) -> np.ndarray:
    """At most ``k`` rows of ``a``, drawn by a generator seeded with ``seed`` alone (same rows for equal sizes)."""
    if a.shape[0] <= k:
        return a
    idx = np.random.default_rng(seed).choice(a.shape[0], size=k, replace=False)
    return a[np.sort(idx)]


def modality_gap(audio_emb: np.ndarray, text_emb: np.ndarray, seed: int = 0, max_points: int = 2000) -> dict:
    """How far apart the two modalities sit in the embedding space.

    Keys: "mmd" (:func:`emorank.metrics.alignment.mmd_rbf`, RBF kernel, median-heuristic bandwidth), "wasserstein"
    (:func:`emorank.metrics.alignment.wasserstein`, exact W1), "centroid_distance" (Euclidean distance between the audio
    and the text centroids: the usual modality-gap measure, Liang et al. 2022, computed on all rows), and the
    sizes "n_audio", "n_text" (all rows) and "n_used_audio", "n_used_text" (rows that entered MMD and W1).

    For speed MMD and W1 use at most ``max_points`` rows per modality, drawn with ``seed`` (the same generator
    for both, so identical sets stay identical and give 0).
    """
    audio, text = _check_pair(audio_emb, text_emb)
    if max_points < 2:
        raise VizInputError(f"max_points must be >= 2, got {max_points}")
    a = _subsample(audio, max_points, seed).astype(np.float64)  # [<=max_points, D]
    t = _subsample(text, max_points, seed).astype(np.float64)  # [<=max_points, D]
    centroid = np.linalg.norm(audio.astype(np.float64).mean(0) - text.astype(np.float64).mean(0))
    return {"mmd": mmd_rbf(a, t), "wasserstein": wasserstein(a, t), "centroid_distance": float(centroid),
            "n_audio": int(audio.shape[0]), "n_text": int(text.shape[0]),
            "n_used_audio": int(a.shape[0]), "n_used_text": int(t.shape[0])}


# ----------------------------------------------------------------------------------------------------------------
# projections


def _top2_directions(centred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two leading principal directions [2, D] and all component variances (descending, >= 0).

    Eigen-decomposition of the smaller Gram matrix (D x D or N x N): 3-5x faster than an SVD of a tall [N, D]
    matrix, and squaring the condition number is harmless for a 2-D picture.
    """
    n, d = centred.shape
    if n >= d:
        evals, evecs = np.linalg.eigh(centred.T @ centred)  # ascending; evecs [D, D]
        evals, dirs = np.clip(evals[::-1], 0.0, None), evecs[:, ::-1].T  # [D], [D, D]
    else:
        evals, evecs = np.linalg.eigh(centred @ centred.T)  # ascending; evecs [N, N]
        evals, u = np.clip(evals[::-1], 0.0, None), evecs[:, ::-1]
        keep = evals > 1e-12 * max(float(evals[0]), 1e-300)
        dirs = np.zeros((n, d))
        dirs[keep] = (centred.T @ u[:, keep] / np.sqrt(evals[keep])).T  # right singular vectors [K, D]
    top = np.zeros((2, d))
    k = min(2, dirs.shape[0])
    top[:k] = dirs[:k]
    top[:k][evals[:k] <= 1e-12 * max(float(evals[0]), 1e-300)] = 0.0  # rank < 2: a zero axis, not noise
    return top, evals


def _project_pca(x: np.ndarray, seed: int, params: dict) -> tuple[np.ndarray, dict]:
    """Top-2 principal components of ``x`` [N, D] (deterministic: each axis's largest loading is positive)."""
    x = x.astype(np.float64)
    centred = x - x.mean(0)  # [N, D]
    components, evals = _top2_directions(centred)  # [2, D]
    for row in components:
        peak = np.argmax(np.abs(row))
        if row[peak] < 0:
            row *= -1.0
    total = float(evals.sum())
    ratio = [float(v) / total if total > 0 else 0.0 for v in evals[:2]] + [0.0] * max(0, 2 - evals.size)
    return centred @ components.T, {"explained_variance_ratio": ratio}  # [N, 2]


class _UmapWarmup:
    """Process-wide UMAP state: the fit lock (kernels compile once, fits never overlap) and the warm-up thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._guard = threading.Lock()
        self.thread: threading.Thread | None = None
        self.warm = False
        self.error: BaseException | None = None

    def run(self) -> None:
        """Import umap and fit a tiny random array (compiles the numba kernels the small-data path uses)."""
        try:
            x = np.random.default_rng(0).normal(size=(32, 8)).astype(np.float32)  # [32, 8]
            _project_umap(x, 0, _resolve_params("umap", {"n_epochs": 10}, x.shape[0]))  # compile, not optimise
        except Exception as exc:  # kept for inspection; the next real UMAP fit raises the same error itself
            self.error = exc

    def start(self, background: bool) -> threading.Thread | None:
        with self._guard:
            if self.warm:
                return None
            if self.thread is not None and self.thread.is_alive():
                return self.thread
            if not background:
                self.run()
                return None
            self.thread = threading.Thread(target=self.run, name="emorank-umap-warmup", daemon=True)
            self.thread.start()
            return self.thread

    def wait(self) -> None:
        """Block until a running warm-up ends (its compiled kernels then serve the caller's fit)."""
        thread = self.thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()


_UMAP = _UmapWarmup()


def warm_umap(background: bool = True) -> threading.Thread | None:
    """Import umap-learn and compile its kernels on a tiny fit, so the first real UMAP map is fast.

    With ``background=True`` the work runs in a daemon thread, which is returned (the running one if a warm-up is
    already under way); ``None`` when UMAP is already warm or ``background=False`` (then it ran here). A later
    :func:`embedding_map` with ``method="umap"`` waits for a running warm-up instead of compiling twice.
    Call it once when an app starts. The warm-up covers umap's exact small-data path (joint sets under 4096
    points); larger sets also compile pynndescent's kernels on their first fit (numba caches those on disk).
    """
    return _UMAP.start(background)


def _project_umap(x: np.ndarray, seed: int, params: dict) -> tuple[np.ndarray, dict]:
    """UMAP of ``x`` [N, D] with a fixed random_state (single-threaded, hence deterministic)."""
    try:
        import umap  # lazy: 3-20 s
    except ImportError as exc:
        raise ImportError("method='umap' needs the umap-learn package (pip install umap-learn); "
                          "method='pca' works without it") from exc

    with _UMAP.lock, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # umap warns that a seed disables parallelism: that is the point
        reducer = umap.UMAP(n_components=2, random_state=seed, n_jobs=1, **params)
        coords = reducer.fit_transform(np.ascontiguousarray(x, dtype=np.float32))  # [N, 2]
        _UMAP.warm = True
    return np.asarray(coords, dtype=np.float64), {}


PROJECTIONS: dict[str, Callable[[np.ndarray, int, dict], tuple[np.ndarray, dict]]] = {
    "pca": _project_pca,
    "umap": _project_umap,
}


def _resolve_params(method: str, params: dict, n_points: int) -> dict:
    """Defaults merged with ``params``; unknown names raise; UMAP's neighbourhood is capped by the set size."""
    if method not in PROJECTIONS:
        raise VizInputError(f"unknown projection method {method!r}; valid: {sorted(PROJECTIONS)}")
    defaults = PROJECTION_DEFAULTS.get(method, {})
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        valid = sorted(defaults) or "none"
        raise VizInputError(f"unknown parameter(s) {unknown} for method {method!r}; valid: {valid}")
    resolved = {**defaults, **params}
    if method == "umap":
        if n_points < 4:
            raise VizInputError(f"UMAP needs at least 4 points in total, got {n_points}; use method='pca'")
        resolved["n_neighbors"] = int(max(2, min(int(resolved["n_neighbors"]), n_points - 1)))
    return resolved


def projection_cache_key(audio: np.ndarray, text: np.ndarray, method: str, seed: int, params: dict,
                         with_gap: bool = True) -> str:
    """SHA-256 of both arrays (shape, dtype, bytes), the method, the seed, the resolved params and the gap flag."""
    h = hashlib.sha256()
    for arr in (audio, text):
        arr = np.ascontiguousarray(arr)
        h.update(f"{arr.shape}|{arr.dtype.str}|".encode())
        h.update(arr.tobytes())
    h.update(json.dumps({"v": CACHE_VERSION, "method": method, "seed": seed, "params": params, "gap": with_gap},
                        sort_keys=True, default=str).encode())
    return h.hexdigest()


def _read_cached(path: Path) -> EmbeddingMap | None:
    """The map stored at ``path``, or None when absent or unreadable (a broken file is recomputed)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta_json"]))
            return EmbeddingMap(data["coords_audio"], data["coords_text"], meta["method"], meta["params"],
                                meta["gap"], meta["info"], from_cache=True)
    except (OSError, ValueError, KeyError, json.JSONDecodeError):
        return None


def _write_cached(path: Path, emap: EmbeddingMap) -> None:
    meta = {"method": emap.method, "params": emap.params, "gap": emap.gap, "info": emap.info}
    with _atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, coords_audio=emap.coords_audio, coords_text=emap.coords_text,
                 meta_json=np.array(json.dumps(meta, default=str)))


def embedding_map(audio_emb: np.ndarray, text_emb: np.ndarray, method: str = "umap", seed: int = 0,
                  cache_dir: str | os.PathLike | None = None, *, with_gap: bool = True, gap_max_points: int = 2000,
                  **params) -> EmbeddingMap:
    """Project audio [N, D] and text [M, D] embeddings to 2-D with one projection fitted on both.

    Args:
        audio_emb, text_emb: embeddings in the same space (cast to float32).
        method: "pca" (numpy SVD, milliseconds) or "umap" (umap-learn; see :func:`warm_umap`).
        seed: UMAP random_state and the gap's subsampling seed; same inputs + seed -> same map.
        cache_dir: folder for ``<sha256>.npz`` projections (key: :func:`projection_cache_key`); a repeat call
            reads the file instead of fitting. Writes are atomic. None: no cache.
        with_gap: also measure :func:`modality_gap` (MMD and exact W1 on <= ``gap_max_points`` rows per
            modality, about a second for 2000).
        **params: projection parameters (UMAP: n_neighbors, min_dist, spread, metric, init, n_epochs).
    Returns:
        EmbeddingMap with coords_audio [N, 2], coords_text [M, 2].
    """
    audio, text = _check_pair(audio_emb, text_emb)
    resolved = _resolve_params(method, params, audio.shape[0] + text.shape[0])
    cache_file = None
    if cache_dir is not None:
        key = projection_cache_key(audio, text, method, seed, resolved, with_gap)
        cache_file = Path(cache_dir) / f"{method}-{key[:32]}.npz"
        cached = _read_cached(cache_file)
        if cached is not None:
            return cached
    joint = np.concatenate([audio, text])  # [N + M, D]: one projection, so the gap stays visible
    if method == "umap":
        _UMAP.wait()
    coords, info = PROJECTIONS[method](joint, seed, resolved)  # [N + M, 2]
    gap = modality_gap(audio, text, seed=seed, max_points=gap_max_points) if with_gap else {}
    emap = EmbeddingMap(coords[:audio.shape[0]], coords[audio.shape[0]:], method, resolved, gap, info)
    if cache_file is not None:
        _write_cached(cache_file, emap)
    return emap


# ----------------------------------------------------------------------------------------------------------------
# embeddings download


def _coordinate_rows(modality: str, coords: np.ndarray, names: list[str] | None, labels: np.ndarray | None):
    for i in range(coords.shape[0]):
        v, a = (labels[i] if labels is not None else (np.nan, np.nan))
        yield [modality, i, names[i] if names is not None else "", f"{coords[i, 0]:.6g}", f"{coords[i, 1]:.6g}",
               "" if not np.isfinite(v) else f"{v:.4g}", "" if not np.isfinite(a) else f"{a:.4g}"]


def save_embeddings(path: str | os.PathLike, audio_emb: np.ndarray, text_emb: np.ndarray, meta: dict | None = None,
                    *, emb_map: EmbeddingMap | None = None, labels_audio: np.ndarray | None = None,
                    labels_text: np.ndarray | None = None, names_audio: Sequence[str] | None = None,
                    names_text: Sequence[str] | None = None) -> tuple[Path, Path]:
    """Write ``<path>.npz`` (audio_emb, text_emb, labels, names, meta as JSON) and ``<path>.csv`` (2-D map).

    The CSV has one row per point: modality, index, name, x, y, valence, arousal (empty when unknown); the
    coordinates come from ``emb_map`` or, when None, from a PCA map computed here. Both writes are atomic.
    Returns (npz path, csv path).
    """
    audio, text = _check_pair(audio_emb, text_emb)
    n, m = audio.shape[0], text.shape[0]
    la, lt = _as_labels(labels_audio, n, "labels_audio"), _as_labels(labels_text, m, "labels_text")
    na, nt = _as_strings(names_audio, n, "names_audio"), _as_strings(names_text, m, "names_text")
    emap = emb_map if emb_map is not None else embedding_map(audio, text, method="pca", with_gap=False)
    if emap.coords_audio.shape[0] != n or emap.coords_text.shape[0] != m:
        raise VizInputError(f"emb_map has {emap.coords_audio.shape[0]} audio / {emap.coords_text.shape[0]} text "
                            f"points but the embeddings have {n} / {m}")
    base = Path(path)
    base = base.with_suffix("") if base.suffix.lower() in (".npz", ".csv") else base
    npz_path, csv_path = base.with_name(base.name + ".npz"), base.with_name(base.name + ".csv")
    arrays = {"audio_emb": audio, "text_emb": text,
              "meta_json": np.array(json.dumps({**(meta or {}), "map_method": emap.method,
                                                "map_params": emap.params}, default=str))}
    for key, value in (("labels_audio", la), ("labels_text", lt)):
        if value is not None:
            arrays[key] = value
    for key, value in (("names_audio", na), ("names_text", nt)):
        if value is not None:
            arrays[key] = np.array(value, dtype=str)
    with _atomic_path(npz_path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    with _atomic_path(csv_path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["modality", "index", "name", "x", "y", "valence", "arousal"])
        writer.writerows(_coordinate_rows("audio", emap.coords_audio, na, la))
        writer.writerows(_coordinate_rows("text", emap.coords_text, nt, lt))
    return npz_path, csv_path
