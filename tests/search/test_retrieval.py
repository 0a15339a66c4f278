import numpy as np
import pytest

from emorank.model.core import EmotionRankCLAP
from emorank.search.retrieval import Collection


@pytest.fixture(scope="module")
def collection(trained_checkpoint, demo_manifest, session_cache):
    model = EmotionRankCLAP.from_checkpoint(trained_checkpoint)
    return Collection.from_manifest(model, demo_manifest, session_cache, progress=False)


def test_search_returns_k_sorted_hits_with_labels(collection):
    caption, hits = collection.search_va(6.5, 6.5, k=5)
    assert caption.startswith("The person is speaking")
    assert len(hits) == 5
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert all(1 <= h.valence <= 7 and h.path.endswith(".wav") for h in hits)


def test_high_arousal_query_finds_more_aroused_clips_than_low(collection):
    _, high = collection.search_va(4.0, 7.0, k=10)
    _, low = collection.search_va(4.0, 1.0, k=10)
    assert np.mean([h.arousal for h in high]) > np.mean([h.arousal for h in low])


def test_text_search_is_deterministic_and_rejects_empty(collection):
    a = collection.search_text("The person is speaking in a loud, agitated voice.", k=3)
    b = collection.search_text("The person is speaking in a loud, agitated voice.", k=3)
    assert [h.row for h in a] == [h.row for h in b]
    with pytest.raises(ValueError, match="empty"):
        collection.search_text("   ")


def test_ordinal_neighbours_never_repeat_a_clip(collection):
    hits = collection.ordinal_neighbours("arousal", fixed=4.0)
    assert len(hits) == 7 and len({h.row for h in hits}) == 7
    with pytest.raises(ValueError, match="valid: valence, arousal"):
        collection.ordinal_neighbours("dominance", fixed=4.0)


def test_estimate_va_is_on_the_label_scale_and_tracks_arousal(collection):
    """The estimate is the softmax(similarity / temperature)-weighted mean of the caption grid's points, row by
    row, and it separates the clips rated most and least aroused by more than a scale point."""
    from emorank.metrics.va import va_grid
    from emorank.search.retrieval import grid_embeddings

    est = collection.estimate_va(collection.audio_emb)
    assert est.shape == (len(collection), 2)
    grid, grid_emb = grid_embeddings(collection.model, cache=collection.cache)
    assert np.array_equal(grid, va_grid())
    for i in range(0, len(collection), 7):
        w = np.exp((grid_emb @ collection.audio_emb[i]) / 0.02)  # the default temperature
        np.testing.assert_allclose(est[i], w @ grid / w.sum(), rtol=1e-5)  # float32 similarities
    arousal = collection.manifest.arousal
    assert np.corrcoef(est[:, 1], arousal)[0, 1] > 0.3
    high, low = arousal >= np.quantile(arousal, 0.75), arousal <= np.quantile(arousal, 0.25)
    assert est[high, 1].mean() - est[low, 1].mean() > 1.0


def test_search_by_embedding_finds_the_clip_itself_first(collection):
    for row in (0, len(collection) // 2):
        hits = collection.search_embedding(collection.audio_emb[row], k=3)
        assert hits[0].row == row and hits[0].score == pytest.approx(1.0, abs=1e-5)


def test_free_text_queries_stay_in_a_bounded_memory_cache_never_on_disk(collection, session_cache):
    from emorank.search.retrieval import QueryCache, text_embeddings

    rows = session_cache.count()
    queries = QueryCache(collection.model, max_items=8, cache=session_cache)
    index = Collection(collection.model, collection.manifest, collection.audio_emb, cache=session_cache,
                       queries=queries)
    texts = [f"The person is speaking, query number {'x' * i}." for i in range(20)]
    for t in texts:
        index.search_text(t, k=2)
    assert session_cache.count() == rows  # the corpus feature cache on disk did not grow
    assert len(queries) == 8  # least recently used dropped first
    expected = text_embeddings(collection.model, texts[-3:])
    np.testing.assert_allclose(queries.embed(texts[-3:]), expected, atol=1e-5)  # same numbers as the oracle
    queries.embed([texts[-8]])  # touched: now the most recent, so it survives the next new query
    queries.embed(["A brand new query."])
    assert texts[-8] in queries._items and texts[-7] not in queries._items
    with pytest.raises(ValueError, match="at least 1"):
        QueryCache(collection.model, max_items=0)


def _former_order(scores: np.ndarray, k: int, exclude=()) -> list[int]:
    """Oracle: what Collection did before the index, a full stable argsort of -scores skipping excluded rows."""
    return [int(i) for i in np.argsort(-scores, kind="stable") if i not in set(exclude)][:k]


@pytest.fixture(scope="module")
def tied(collection):
    """The collection with every third clip's embedding copied onto the next two rows: many exact ties."""
    emb = collection.audio_emb.copy()
    for offset in (1, 2):
        emb[offset::3] = emb[0::3][:len(emb[offset::3])]
    return Collection(collection.model, collection.manifest, emb, cache=collection.cache, queries=collection.queries)


def test_search_matches_the_former_full_sort_including_ties(tied):
    rng = np.random.default_rng(0)
    queries = [tied.audio_emb[0], tied.audio_emb[7], *rng.normal(size=(3, tied.audio_emb.shape[1]))]
    for q in queries:
        q = np.asarray(q, dtype=np.float32)
        for k in (1, 3, 10, len(tied) + 5):
            hits = tied.search_embedding(q, k)
            scores = tied.audio_emb @ q
            assert [h.row for h in hits] == _former_order(scores, k)
            assert [h.score for h in hits] == [float(scores[h.row]) for h in hits]
    first = tied.search_embedding(tied.audio_emb[3], 3)
    assert [h.row for h in first] == [3, 4, 5]  # three identical clips: lowest row first
    for bad in (0, -1, 1e308, 10 ** 400, 2.5, True):  # refused, never an empty answer or a 309-digit message
        with pytest.raises(ValueError, match=r"^k \(clips to return\) must be a whole number from 1 to 10000, "
                                             r"got .{1,40}$"):
            tied.search_embedding(tied.audio_emb[0], bad)


def test_ordinal_strip_matches_the_former_implementation(tied):
    from emorank.captions.va import va_caption

    for axis, fixed in (("arousal", 4.0), ("valence", 2.0)):
        values = np.arange(1.0, 7.01, 1.0)
        points = [(v, fixed) if axis == "valence" else (fixed, v) for v in values]
        rng = np.random.default_rng(tied.seed)
        q = tied.queries.embed([va_caption(v, a, rng) for v, a in points])  # [L, D]
        taken: list[int] = []
        for row in q @ tied.audio_emb.T:
            taken.append(_former_order(row, 1, taken)[0])
        assert [h.row for h in tied.ordinal_neighbours(axis, fixed)] == taken
    few = Collection(tied.model, tied.manifest.subset(np.arange(3)), tied.audio_emb[:3], queries=tied.queries)
    assert sorted(h.row for h in few.ordinal_neighbours("valence", 4.0)) == [0, 1, 2]  # stops when none is left
