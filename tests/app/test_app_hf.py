"""A Hugging Face dataset becomes a collection in the app (offline: a parquet dataset written here)."""
import json
from pathlib import Path

import pytest

datasets = pytest.importorskip("datasets")

from emorank.app.bounds import DEMO_TEST, WorkspaceError
from emorank.app.workspace import Workspace
from test_app import make_handlers  # noqa: E402
from test_workspace import build_assets  # noqa: E402


@pytest.fixture(scope="module")
def h(tmp_path_factory, demo_corpus, session_cache, trained_checkpoint):
    return make_handlers(build_assets(tmp_path_factory.mktemp("hf"), demo_corpus, session_cache, trained_checkpoint))


def write_parquet(folder: Path, demo_corpus, n: int = 6) -> Path:
    clips = sorted((Path(demo_corpus).parent / "audio").glob("*.wav"))[:n]
    rows = {"audio": [str(c) for c in clips], "valence": [1.0 + (i % 5) for i in range(n)],
            "arousal": [5.0 - (i % 5) for i in range(n)]}
    ds = datasets.Dataset.from_dict(rows).cast_column("audio", datasets.Audio())  # the bytes go into the file
    folder.mkdir(parents=True)
    ds.to_parquet(str(folder / "train-00000.parquet"))
    return folder


def test_a_parquet_dataset_becomes_a_collection_that_answers_queries(h, tmp_path, demo_corpus, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = write_parquet(tmp_path / "voices-parquet", demo_corpus)
    everything, labelled, _, note, _ = h.add_collection(str(folder), "parquet voices", "valence, arousal, 1-5")
    assert everything["value"] == "parquet voices" and "parquet voices" in labelled["choices"]
    source = h.ws.source("parquet voices")
    assert len(source.manifest) == 6 and source.labelled
    assert source.manifest.va()[:, 0].min() == 1.0 and source.manifest.va()[:, 0].max() == 7.0  # 1-5 -> 1-7
    hits = h.api_retrieve("emotionrankclap", "parquet voices", query="The person is speaking calmly.", k=3)["hits"]
    assert len(hits) == 3 and all(1.0 <= hit["valence"] <= 7.0 for hit in hits)
    saved = json.loads((h.ws.assets.data_dir / "collections.json").read_text())
    assert {"name": "parquet voices", "labels": "valence, arousal, 1-5", "path": str(folder.resolve())} in saved
    with pytest.raises(Exception, match="label column"):  # a readable error naming what to fix
        h.add_collection(str(folder), "", "mood")


def test_hub_ids_need_a_network_and_paths_stay_confined(h, tmp_path, demo_corpus):
    offline = Workspace(h.ws.assets, hub_datasets=False)
    with pytest.raises(WorkspaceError, match="cannot reach the Hugging Face Hub"):
        offline.add_collection("someone/emotional-speech")
    confined = Workspace(h.ws.assets, allow_local_paths=True, local_roots=[str(tmp_path / "only-here")],
                         hub_datasets=False)
    folder = write_parquet(tmp_path / "elsewhere", demo_corpus, n=2)
    with pytest.raises(WorkspaceError, match="outside the folders this server allows"):
        confined.add_collection(folder)
    assert DEMO_TEST in confined.collections()
