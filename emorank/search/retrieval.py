"""Retrieval over a collection of clips: caption -> clips, V-A point -> clips, clip -> V-A estimate.

    index = Collection.from_manifest(model, manifest.split_of("test"))
    index.search_va(6.0, 2.0, k=5)            # hits: dicts with path, labels, score
    index.search_text("The person is speaking in a tense, hurried voice.")
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from emorank.captions.va import va_caption
from emorank.data.manifest import Manifest
from emorank.encoders.cache import FeatureCache
from emorank.search.index import EmbeddingIndex, top_k
from emorank.metrics.va import va_from_similarity, va_grid
from emorank.model.core import EmotionRankCLAP

AXES = {"valence": 0, "arousal": 1}
MAX_K = 10_000  # clips one search returns at most


def check_k(k) -> int:
    """`k` (clips to return) as an int from 1 to MAX_K, else ValueError with a short message (the CLI's
    ``search --k`` and the app's requests both end here)."""
    try:
        ok = not isinstance(k, bool) and float(k).is_integer() and 1 <= k <= MAX_K
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise ValueError(f"k (clips to return) must be a whole number from 1 to {MAX_K}, got {_shown(k)}")
    return int(k)


def _shown(value) -> str:
    """A short rendering of a caller's value for a message (a 309-digit number is not a message)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and abs(int(value)) >= 10 ** 15:
        return "a number of more than 15 digits"
    text = repr(value)
    return text if len(text) <= 24 else text[:21] + "..."


VA_TEMPERATURE = 0.02  # softmax temperature of V-A estimates over the caption grid (metrics.va.va_from_similarity)


def audio_embeddings(model: EmotionRankCLAP, manifest: Manifest, cache: FeatureCache | None = None,
                     progress: bool = True, workers: int | None = None) -> tuple[Manifest, np.ndarray]:
    """Joint-space embeddings [M, D] of the readable clips of a manifest (and the manifest of those clips)."""
    cache = cache or FeatureCache()
    enc = model.audio_encoder  # refuses a checkpoint whose encoder settings changed (EmotionRankCLAP._matching)
    feats = cache.audio_features(manifest.path, enc, workers=workers, progress=progress)
    kept = manifest.subset(feats.rows)
    return kept, model.embed_audio_features(feats.values, kept.speaker)


def text_embeddings(model: EmotionRankCLAP, texts: Sequence[str], cache: FeatureCache | None = None) -> np.ndarray:
    """Joint-space embeddings [N, D] of texts, through the feature cache when one is given."""
    raw = cache.text_features(list(texts), model.text_encoder) if cache is not None else \
        model.text_encoder.encode(list(texts))
    return model.embed_text_features(raw)


def grid_embeddings(model: EmotionRankCLAP, step: float = 0.5, phrasings: int = 3, seed: int = 0,
                    cache: FeatureCache | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Caption embeddings of a V-A grid: ([G, 2] grid points, [G, D] mean of `phrasings` captions each).

    Our interpretation of "V-A estimation from embeddings": each grid point is described by a few phrasings of
    its V-A caption, their embeddings averaged and renormalised."""
    grid = va_grid(step)  # [G, 2]
    rng = np.random.default_rng(seed)
    texts = [va_caption(v, a, rng) for v, a in grid for _ in range(phrasings)]
    emb = text_embeddings(model, texts, cache).reshape(len(grid), phrasings, -1).mean(axis=1)
    return grid, emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)


class QueryCache:
    """Joint-space embeddings of query texts under one model, in memory, least recently used dropped first.

    Queries are what visitors type, so they never go to the corpus feature cache on disk (which would grow with
    every distinct query, forever). A text's raw features are read from `cache` when the corpus cache already has
    them (e.g. the slider captions `ensure_demo` encodes), else encoded; nothing is ever written there.
    Thread-safe; the text encoder runs one batch at a time (tokenizers are not re-entrant)."""

    def __init__(self, model: EmotionRankCLAP, max_items: int = 2048, cache: FeatureCache | None = None) -> None:
        if max_items < 1:
            raise ValueError(f"max_items must be at least 1, got {max_items}")
        self.model, self.max_items, self.cache = model, max_items, cache
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._encode_lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings [N, D] of `texts` (L2-normalised), each distinct missing text computed once, in one batch."""
        texts = list(texts)
        with self._lock:
            found = {t: self._items[t] for t in dict.fromkeys(texts) if t in self._items}
            for t in found:
                self._items.move_to_end(t)
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if missing:
            found.update(zip(missing, self._compute(missing)))
            with self._lock:
                for t in missing:
                    self._items[t] = found[t]
                    self._items.move_to_end(t)
                while len(self._items) > self.max_items:
                    self._items.popitem(last=False)
        if not texts:
            return np.zeros((0, 0), np.float32)
        return np.stack([found[t] for t in texts])

    def _compute(self, texts: list[str]) -> np.ndarray:
        from emorank.encoders.cache import text_sha

        enc = self.model.text_encoder
        shas = [text_sha(t) for t in texts]
        raw = self.cache.get_many(enc.fingerprint(), shas) if self.cache is not None else {}
        new = [t for t, s in zip(texts, shas) if s not in raw]
        if new:
            with self._encode_lock:
                raw.update(zip((text_sha(t) for t in new), enc.encode(new)))
        return self.model.embed_text_features(np.stack([raw[s] for s in shas]))  # [N, D]


@dataclass
class Hit:
    row: int
    path: str
    score: float
    valence: float
    arousal: float
    emotion: str
    speaker: str

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class Collection:
    """Embedded clips of one manifest, searchable by text, by V-A point and along an axis."""

    def __init__(self, model: EmotionRankCLAP, manifest: Manifest, audio_emb: np.ndarray,
                 cache: FeatureCache | None = None, seed: int = 0,
                 grid: tuple[np.ndarray, np.ndarray] | None = None, queries: QueryCache | None = None) -> None:
        """`grid`: the model's `grid_embeddings`, when the caller already has them (computed lazily otherwise);
        `queries`: the model's query-embedding cache, when shared between collections (a private one otherwise)."""
        self.model, self.manifest, self.audio_emb, self.cache, self.seed = model, manifest, audio_emb, cache, seed
        self.index = EmbeddingIndex(audio_emb, dtype="float32")  # exact, scores as `audio_emb @ q`
        self._grid = grid
        self.queries = queries if queries is not None else QueryCache(model, cache=cache)

    @classmethod
    def from_manifest(cls, model: EmotionRankCLAP, manifest: Manifest, cache: FeatureCache | None = None,
                      progress: bool = True) -> "Collection":
        cache = cache or FeatureCache()
        kept, emb = audio_embeddings(model, manifest, cache, progress)
        return cls(model, kept, emb, cache)

    def __len__(self) -> int:
        return len(self.manifest)

    def _hits(self, scores: np.ndarray, k: int, exclude: Iterable[int] = ()) -> list[Hit]:
        """The k best clips of one score row [N], best first, ties by row (a stable sort's order), none excluded."""
        values, rows = top_k(scores, k, exclude)  # [1, k'] each
        return self._hit_list(values[0], rows[0])

    def _hit_list(self, values: np.ndarray, rows: np.ndarray) -> list[Hit]:
        m = self.manifest
        return [Hit(int(i), m.path[i], float(s), float(m.valence[i]), float(m.arousal[i]), m.emotion[i],
                    m.speaker[i]) for s, i in zip(values, rows)]

    def search_embedding(self, embedding: np.ndarray, k: int = 5) -> list[Hit]:
        """The k clips most cosine-similar to a joint-space embedding [D] (e.g. of an uploaded clip); all of them
        when k exceeds the collection. ValueError for k outside 1..MAX_K."""
        k = check_k(k)
        values, rows = self.index.search(np.asarray(embedding, dtype=np.float32).reshape(-1), k)  # [1, k'] each
        return self._hit_list(values[0], rows[0])

    def search_text(self, text: str, k: int = 5) -> list[Hit]:
        """The k clips most cosine-similar to a caption."""
        if not text or not text.strip():
            raise ValueError("the query text is empty")
        k = check_k(k)  # before the text is embedded
        return self.search_embedding(self.queries.embed([text])[0], k)

    def search_va(self, valence: float, arousal: float, k: int = 5) -> tuple[str, list[Hit]]:
        """Caption built from a V-A point, and its k nearest clips."""
        caption = va_caption(valence, arousal, np.random.default_rng(self.seed))
        return caption, self.search_text(caption, k)

    def ordinal_neighbours(self, axis: str, fixed: float, values: Sequence[float] | None = None) -> list[Hit]:
        """One clip per step along `axis` (the other axis held at `fixed`), never the same clip twice: the
        paper's Figure 3 retrieval, so the ordering can be heard."""
        if axis not in AXES:
            raise ValueError(f"unknown axis {axis!r}; valid: {', '.join(AXES)}")
        values = list(values if values is not None else np.arange(1.0, 7.01, 1.0))
        points = [(v, fixed) if axis == "valence" else (fixed, v) for v in values]
        rng = np.random.default_rng(self.seed)
        q = self.queries.embed([va_caption(v, a, rng) for v, a in points])  # [L, D]
        taken: list[int] = []
        hits = []
        for row in self.index.scores(q):  # [L, N], one product for all steps
            hit = self._hits(row, 1, taken)
            if not hit:
                break
            taken.append(hit[0].row)
            hits.append(hit[0])
        return hits

    def estimate_va(self, audio_emb: np.ndarray, temperature: float = VA_TEMPERATURE) -> np.ndarray:
        """V-A estimates [N, 2] for embeddings [N, D], similarity-weighted over a caption grid."""
        if self._grid is None:
            self._grid = grid_embeddings(self.model, cache=self.cache)
        grid, grid_emb = self._grid
        return va_from_similarity(np.atleast_2d(audio_emb) @ grid_emb.T, grid, temperature)
