import numpy as np
import pytest

from emorank.model import EmotionRankCLAP
from emorank.retrieval import Collection


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
    est = collection.estimate_va(collection.audio_emb)
    assert est.shape == (len(collection), 2)
    assert est.min() >= 1 and est.max() <= 7
    assert np.corrcoef(est[:, 1], collection.manifest.arousal)[0, 1] > 0.3


def test_search_by_embedding_finds_the_clip_itself_first(collection):
    for row in (0, len(collection) // 2):
        hits = collection.search_embedding(collection.audio_emb[row], k=3)
        assert hits[0].row == row and hits[0].score == pytest.approx(1.0, abs=1e-5)


def test_free_text_queries_stay_in_a_bounded_memory_cache_never_on_disk(collection, session_cache):
    from emorank.retrieval import QueryCache, text_embeddings

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
