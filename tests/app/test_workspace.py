"""emorank.app: first-start bootstrap (build) and the workspace the app serves (no gradio here)."""
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emorank.data.audio import AudioLengthError, AudioReadError, SilentAudioError
from emorank.data.manifest import read_csv_manifest
from emorank.data.manifest import Manifest
from emorank.app.bounds import DEMO_ALL, DEMO_TEST, WorkspaceError
from emorank.app.workspace import Workspace
from emorank.app.build import DemoAssets, clip_folders, corpus_manifest, ensure_demo, find_checkpoints, plan_demo, query_captions
from emorank.app.collections import folder_manifest
from emorank.training.trainer import TrainConfig, train

REPO_CHECKPOINTS = Path(__file__).resolve().parents[2] / "checkpoints"


def build_assets(root: Path, demo_corpus, cache, checkpoint, progress=None):
    """Demo assets around the session's small corpus: the corpus linked in, EmotionRankCLAP (the session's
    checkpoint) and a CLAP-SCE (A-V) trained here for two epochs as the shipped checkpoints."""
    root.mkdir(parents=True, exist_ok=True)
    data, shipped = root / "data", root / "checkpoints"
    data.mkdir()
    os.symlink(Path(demo_corpus).parent, data / "corpus")
    shutil.copytree(checkpoint, shipped / "emotionrankclap")
    sce = train(read_csv_manifest(demo_corpus), TrainConfig(system="clap-sce-av", epochs=2, batch_size=32,
                                                            device="cpu", workers=1),
                root / "sce", cache=cache, progress=False)
    shutil.copytree(sce.checkpoint, shipped / "clap-sce-av")
    return ensure_demo(data, progress or (lambda f, m: None), checkpoint_dirs=[shipped], cache_path=cache.path)


@pytest.fixture(scope="module")
def assets(tmp_path_factory, demo_corpus, session_cache, trained_checkpoint):
    return build_assets(tmp_path_factory.mktemp("demo"), demo_corpus, session_cache, trained_checkpoint)


@pytest.fixture(scope="module")
def ws(assets):
    return Workspace(assets, allow_local_paths=True)


def test_ensure_demo_builds_once_with_visible_progress(tmp_path):
    calls = []
    cache = tmp_path / "own-cache.sqlite"  # its own cache: other tests may have cached the same clips already
    first = ensure_demo(tmp_path / "d", lambda f, m: calls.append((f, m)), n=10, workers=1,
                        checkpoint_dirs=[tmp_path / "none"], cache_path=cache)
    assert first.built[:2] == ["corpus", "audio features"] and first.manifest_path.is_file()
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and fractions[0] == 0.0
    assert any("rendering clips" in m for _, m in calls) and "demo ready" in calls[-1][1]
    assert first.checkpoints == {} and first.cache_path == cache
    t0 = time.perf_counter()
    again = ensure_demo(tmp_path / "d", lambda f, m: None, n=10, checkpoint_dirs=[tmp_path / "none"],
                        cache_path=cache)
    assert again.built == [] and time.perf_counter() - t0 < 10


def test_a_corpus_built_directly_in_the_data_folder_is_used(tmp_path):
    assert corpus_manifest(tmp_path) == tmp_path / "corpus" / "manifest.csv"
    (tmp_path / "manifest.csv").write_text("path,valence,arousal\n")
    assert corpus_manifest(tmp_path) == tmp_path / "manifest.csv"


def test_clip_folders_are_the_minimal_folders_holding_the_clips(tmp_path):
    paths = [tmp_path / "a" / "x.wav", tmp_path / "a" / "sub" / "y.wav", tmp_path / "ab" / "z.wav"]
    m = Manifest(path=[str(p) for p in paths], valence=[1.0] * 3, arousal=[1.0] * 3)
    assert clip_folders(m) == [os.path.realpath(tmp_path / "a"), os.path.realpath(tmp_path / "ab")]


def test_query_captions_are_cached_after_bootstrap(assets):
    from emorank.encoders.registry import build_text_encoder
    from emorank.encoders.cache import FeatureCache, text_sha

    texts = query_captions()
    assert len(texts) == 13 * 13 and all(t.startswith("The person is speaking") for t in texts)
    with FeatureCache(assets.cache_path) as cache:
        have = cache.get_many(build_text_encoder("minilm").fingerprint(), [text_sha(t) for t in texts])
    assert len(have) == len(set(texts))


def test_find_checkpoints_lists_shipped_then_runs_and_skips_other_folders(tmp_path, assets):
    shipped, runs = tmp_path / "ck", tmp_path / "runs"
    shutil.copytree(assets.checkpoints["emotionrankclap"], shipped / "erc")
    (shipped / "notes").mkdir()
    shutil.copytree(assets.checkpoints["clap-sce-av"], runs / "mine" / "checkpoint")
    (runs / "broken").mkdir(parents=True)
    found = find_checkpoints([shipped], runs)
    assert list(found) == ["erc", "runs/mine"]
    assert found["runs/mine"] == (runs / "mine" / "checkpoint").resolve()


def test_workspace_lists_demo_collections_and_checkpoints(ws, assets):
    assert set(ws.checkpoints()) == {"emotionrankclap", "clap-sce-av"}
    cols = ws.collections()
    assert list(cols)[:2] == [DEMO_TEST, DEMO_ALL]
    assert set(cols[DEMO_TEST].manifest.split) == {"test"} and cols[DEMO_TEST].labelled
    assert len(cols[DEMO_ALL].manifest) == len(read_csv_manifest(assets.manifest_path))
    assert ws.allowed_roots() == [os.path.realpath(assets.manifest_path.parent / "audio")]
    assert ws.checkpoint_label("emotionrankclap") == "emotionrankclap · synthetic"  # the name first, then the data
    with pytest.raises(WorkspaceError, match="unknown checkpoint 'nope'; available: .*emotionrankclap"):
        ws.index("nope", DEMO_TEST)
    with pytest.raises(WorkspaceError, match="no collection called 'nope'; choose one from the list"):
        ws.index("emotionrankclap", "nope")


def test_index_is_cached_per_checkpoint_and_collection(ws):
    a = ws.index("emotionrankclap", DEMO_TEST)
    assert ws.index("emotionrankclap", DEMO_TEST) is a
    b = ws.index("clap-sce-av", DEMO_TEST)
    assert b is not a and b.model is not a.model and len(b) == len(a)


def test_index_is_rebuilt_when_the_checkpoint_folder_changes(ws, tmp_path, assets):
    path = ws.add_checkpoint("copy", shutil.copytree(assets.checkpoints["emotionrankclap"], tmp_path / "copy"))
    first = ws.index(path, DEMO_TEST)
    cfg = tmp_path / "copy" / "config.json"
    os.utime(cfg, ns=(cfg.stat().st_atime_ns, cfg.stat().st_mtime_ns + 10**9))
    assert ws.index(path, DEMO_TEST) is not first


def test_hit_records_match_a_brute_force_search(ws):
    from emorank.search.retrieval import text_embeddings

    index = ws.index("emotionrankclap", DEMO_TEST)
    query = "The person is speaking in a very energetic manner, sounding quite negative."
    records = ws.hit_records(index, index.search_text(query, 4))
    q = text_embeddings(index.model, [query])[0]
    expected = np.argsort(-(index.audio_emb @ q), kind="stable")[:4]
    assert [r["id"] for r in records] == [index.manifest.ids[i] for i in expected]
    assert [r["rank"] for r in records] == [1, 2, 3, 4] and all(r["labels"] == "rated" for r in records)
    assert [r["valence"] for r in records] == [round(float(index.manifest.valence[i]), 3) for i in expected]
    assert all("path" not in r and os.path.isfile(r["file"]) for r in records)


def test_folder_collection_is_unlabelled_and_shows_estimates(ws, tmp_path, demo_corpus):
    folder = tmp_path / "voices"
    folder.mkdir()
    clips = sorted((Path(demo_corpus).parent / "audio").glob("*.wav"))[:6]
    for i, clip in enumerate(clips):
        sub = folder / ("nested" if i % 2 else "")
        sub.mkdir(exist_ok=True)
        shutil.copy(clip, sub / clip.name)
    (folder / "readme.txt").write_text("not audio")
    source = ws.add_collection(folder, "my voices")
    assert source.name == "my voices" and not source.labelled and len(source.manifest) == 6
    assert np.isnan(source.manifest.valence).all()
    assert str(folder.resolve()) in ws.allowed_roots()  # the folder, which covers its nested folder
    assert str((folder / "nested").resolve()) not in ws.allowed_roots()
    index = ws.index("emotionrankclap", "my voices")
    records = ws.hit_records(index, index.search_text("The person is speaking calmly.", 3))
    assert all(r["labels"] == "estimated" and 1 <= r["valence"] <= 7 and 1 <= r["arousal"] <= 7 for r in records)
    again = ws.add_collection(folder, "my voices")
    assert again.name == "my voices-2"


def test_manifest_collection_and_bad_paths(ws, tmp_path, demo_corpus):
    source = ws.add_collection(demo_corpus)
    assert source.labelled and source.name == "manifest" and len(source.manifest) > 0
    with pytest.raises(WorkspaceError, match="does not exist"):
        ws.add_collection(tmp_path / "missing")
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(WorkspaceError, match=r"x\.txt is neither a folder of audio, a dataset folder nor a manifest \.csv"):
        ws.add_collection(tmp_path / "x.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(WorkspaceError, match="no audio files"):
        ws.add_collection(tmp_path / "empty")
    with pytest.raises(WorkspaceError, match="give a manifest CSV, a folder of audio or a Hugging Face dataset"):
        ws.add_collection("  ")
    with pytest.raises(WorkspaceError, match="at most 2"):
        folder_manifest(Path(demo_corpus).parent, max_files=2)


def test_local_paths_can_be_disabled(assets, demo_corpus):
    locked = Workspace(assets, allow_local_paths=False)
    with pytest.raises(WorkspaceError, match="disabled"):
        locked.add_collection(demo_corpus)


def test_analyse_finds_the_clip_itself_and_estimates_its_position(ws, tmp_path, demo_corpus):
    folder = tmp_path / "few"
    folder.mkdir()
    for clip in sorted((Path(demo_corpus).parent / "audio").glob("*.wav"))[:5]:
        shutil.copy(clip, folder / clip.name)
    ws.add_collection(folder, "few")  # no speakers: clips and uploads share the global normalisation
    clip = str((folder / sorted(os.listdir(folder))[2]).resolve())
    res = ws.analyse(clip, "emotionrankclap", "few", k=3)
    assert res["clips"][0]["file"] == clip and res["clips"][0]["similarity"] == pytest.approx(1.0, abs=1e-4)
    assert 1 <= res["valence"] <= 7 and 1 <= res["arousal"] <= 7
    index = ws.index("emotionrankclap", "few")
    expected = index.estimate_va(index.audio_emb[2:3])[0]
    assert (res["valence"], res["arousal"]) == pytest.approx(tuple(expected), abs=1e-3)
    sims = [c["similarity"] for c in res["captions"]]
    assert len(sims) == 3 and sims == sorted(sims, reverse=True)
    assert all(c["caption"].startswith("The person is speaking") for c in res["captions"])


RAVDESS_EMOTIONS = ["neutral", "calm", "happy", "sad", "angry", "fear", "disgust", "surprise"]


def ravdess_folder(folder: Path, demo_corpus, n: int = 16) -> Path:
    """Demo clips copied under RAVDESS file names (MM-VC-EE-II-SS-RR-AA.wav, actors 20-23), in Actor_ folders."""
    clips = sorted((Path(demo_corpus).parent / "audio").glob("*.wav"))[:n]
    for i, clip in enumerate(clips):
        actor = 20 + i % 4
        sub = folder / f"Actor_{actor:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        shutil.copy(clip, sub / f"03-01-{i % 8 + 1:02d}-01-01-{i // 8 + 1:02d}-{actor:02d}.wav")
    return folder


def ravdess_checkpoint(folder: Path, checkpoint) -> Path:
    """A copy of a checkpoint whose config says it was trained on RAVDESS (what the app reads to match corpora)."""
    shutil.copytree(checkpoint, folder)
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, "dataset": "ravdess", "license": "cc-by-nc-sa-4.0"}))
    return folder


def test_a_folder_of_ravdess_files_is_read_with_its_labels(ws, tmp_path, demo_corpus):
    from emorank.data.proxies import INTENSITY_FACTORS, category_va

    source = ws.add_collection(ravdess_folder(tmp_path / "RAVDESS", demo_corpus), "ravdess voices")
    m = source.manifest
    assert source.labelled and source.corpus == "ravdess" and "RAVDESS folder" in source.origin
    assert len(m) == 16 and not np.isnan(m.valence).any()
    assert [RAVDESS_EMOTIONS[int(Path(f).name[6:8]) - 1] for f in m.path] == m.emotion  # from each file name
    assert set(m.emotion) == set(RAVDESS_EMOTIONS) and set(m.split) == {"test"}  # actors 20-23: the test split
    happy = m.emotion.index("happy")
    assert (m.valence[happy], m.arousal[happy]) == pytest.approx(category_va("happy", INTENSITY_FACTORS["normal"])[:2], abs=0.01)
    index = ws.index("emotionrankclap", "ravdess voices")
    assert ws.hit_records(index, index.search_text("The person is speaking.", 2))[0]["labels"] == "rated"


def test_analyse_takes_neighbours_from_the_checkpoints_own_corpus_with_distances(assets, tmp_path, demo_corpus,
                                                                                 trained_checkpoint):
    from emorank.app.analysis import MATCHING

    ws = Workspace(assets, allow_local_paths=True)
    name = ws.add_checkpoint("real", ravdess_checkpoint(tmp_path / "real", trained_checkpoint))
    clip = sorted((Path(demo_corpus).parent / "audio").glob("*.wav"))[0]
    alone = ws.analyse(clip, name, MATCHING, k=3)  # only synthetic collections are loaded: none is its corpus
    assert alone["clips"] == [] and alone["collection"] is None and "no collection of RAVDESS" in alone["neighbours"]
    ws.add_collection(ravdess_folder(tmp_path / "ravdess", demo_corpus), "ravdess test")
    res = ws.analyse(clip, name, MATCHING, k=3)
    assert res["collection"] == "ravdess test" and "RAVDESS speech" in res["neighbours"]
    assert len(res["clips"]) == 3 and all(c["id"].startswith("Actor_") for c in res["clips"])
    for c in res["clips"]:  # distance: from the clip's estimate to the neighbour's label on the 1..7 plane
        assert c["distance"] == pytest.approx(np.hypot(c["valence"] - res["valence"], c["arousal"] - res["arousal"]),
                                              abs=0.01)
    assert (res["valence"], res["arousal"]) == (alone["valence"], alone["arousal"])
    demo = ws.analyse(clip, "emotionrankclap", MATCHING, k=3)  # the synthetic checkpoint: the synthetic clips
    assert demo["collection"] == DEMO_TEST and all(c["distance"] is not None for c in demo["clips"])
    chosen = ws.analyse(clip, name, DEMO_TEST, k=3)  # a collection chosen by hand is used, with a warning
    assert chosen["collection"] == DEMO_TEST and "mean little" in chosen["neighbours"]


def test_analyse_refuses_bad_uploads_with_the_file_named(ws, tmp_path):
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio")
    with pytest.raises(AudioReadError, match="notes.wav"):
        ws.analyse(text, "emotionrankclap", DEMO_TEST)
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(16000, np.float32), 16000)
    with pytest.raises(SilentAudioError, match="silent.wav"):
        ws.analyse(silent, "emotionrankclap", DEMO_TEST)
    long = tmp_path / "long.wav"
    sf.write(long, 0.1 * np.ones(31 * 8000, np.float32), 8000)
    with pytest.raises(AudioLengthError, match="long.wav"):
        ws.analyse(long, "emotionrankclap", DEMO_TEST)


def test_run_dirs_are_unique_and_clean(ws):
    name, path = ws.new_run_dir("my run/../x")
    assert name == "my-run-..-x"
    path.mkdir(parents=True)
    name2, path2 = ws.new_run_dir("my run/../x")
    assert name2 == f"{name}-2" and path2.parent == path.parent == ws.assets.runs_dir


def test_what_visitors_can_add_is_bounded(assets, tmp_path, monkeypatch, demo_corpus):
    import emorank.app.collections as collections
    import emorank.app.workspace as workspace

    ws = Workspace(assets, allow_local_paths=True, local_roots=[tmp_path])
    folder = tmp_path / "clips"
    folder.mkdir()
    shutil.copy(sorted((Path(demo_corpus).parent / "audio").glob("*.wav"))[0], folder / "a.wav")
    monkeypatch.setattr(collections, "MAX_COLLECTIONS", 4)
    ws.add_collection(folder)
    ws.add_collection(folder)
    with pytest.raises(WorkspaceError, match="at most 4 collections"):
        ws.add_collection(folder)
    assert len(ws.collections()) == 4
    runs = Workspace(DemoAssets(data_dir=tmp_path, manifest_path=assets.manifest_path,
                                     cache_path=assets.cache_path, runs_dir=tmp_path / "runs", checkpoint_dirs=[]))
    monkeypatch.setattr(workspace, "MAX_RUNS", 3)
    for i in range(3):
        runs.new_run_dir(f"r{i}")[1].mkdir(parents=True)
    with pytest.raises(WorkspaceError, match="storage for training runs is full"):
        runs.new_run_dir("one more")


def test_collections_added_survive_a_restart_and_are_checked_again(assets, tmp_path, demo_corpus):
    folder = tmp_path / "kept"
    folder.mkdir()
    for clip in sorted((Path(demo_corpus).parent / "audio").glob("*.wav"))[:2]:
        (folder / clip.name).write_bytes(clip.read_bytes())
    own = plan_demo(tmp_path / "data", checkpoint_dirs=assets.checkpoint_dirs, cache_path=assets.cache_path)
    own.manifest_path = assets.manifest_path
    first = Workspace(own, allow_local_paths=True, local_roots=[str(tmp_path)])
    first.add_collection(folder, "kept voices")
    saved = json.loads((tmp_path / "data" / "collections.json").read_text())
    assert saved == [{"name": "kept voices", "labels": "", "path": str(folder.resolve())}]  # a definition, no copy
    again = Workspace(own, allow_local_paths=True, local_roots=[str(tmp_path)])
    assert "kept voices" not in again.collections() and again.restore_collections() == ["kept voices"]
    assert len(again.source("kept voices").manifest) == 2
    elsewhere = Workspace(own, allow_local_paths=True, local_roots=[str(tmp_path / "data")])
    assert elsewhere.restore_collections() == []  # today's rules refuse it: not restored
    assert Workspace(own).restore_collections() == []  # server paths off


def test_the_page_can_exist_before_the_demo_is_built(tmp_path, session_cache, assets):
    planned = plan_demo(tmp_path / "fresh", checkpoint_dirs=assets.checkpoint_dirs, cache_path=session_cache.path)
    ws = Workspace(planned)
    assert not ws.build.ready.is_set() and ws.collections() == {}
    with pytest.raises(WorkspaceError, match="still being prepared"):
        ws.search("emotionrankclap", DEMO_TEST, "The person is speaking calmly.")
    seen = []
    report = ws.build.report
    ws.build.report = lambda f, m: (seen.append(m), report(f, m))
    ws.build_demo(warm=False, n=12, workers=1)
    assert ws.build.ready.is_set() and not ws.build.snapshot()["error"] and seen
    private = (str(tmp_path), str(Path(session_cache.path).parent))
    assert not any(folder in m for m in seen for folder in private)  # shown on the page: no server paths
    _, hits = ws.search("emotionrankclap", DEMO_TEST, "The person is speaking calmly.", k=2)
    assert len(hits) >= 1


def test_shipped_caption_features_match_the_encoder(tmp_path, session_cache):
    from emorank.app.bounds import SHIPPED_TEXT_FEATURES
    from emorank.app.build import app_captions, export_text_features, import_text_features
    from emorank.encoders.registry import build_text_encoder
    from emorank.encoders.cache import FeatureCache, text_sha

    enc = build_text_encoder("minilm")
    texts = app_captions()[:5]
    path = export_text_features(session_cache, enc, texts, tmp_path / "shipped.npz")
    with FeatureCache(tmp_path / "empty.sqlite") as empty:
        assert import_text_features(empty, enc, path) == 5
        got = empty.get_many(enc.fingerprint(), [text_sha(t) for t in texts])
    want = session_cache.text_features(texts, enc)
    assert np.allclose(np.stack([got[text_sha(t)] for t in texts]), want, atol=2e-3)
    if SHIPPED_TEXT_FEATURES.is_file():  # the file in assets/ covers every caption the app embeds at start
        with np.load(SHIPPED_TEXT_FEATURES) as shipped:
            assert set(shipped["sha"].tolist()) >= {text_sha(t) for t in app_captions()}


@pytest.mark.parametrize("config_text", ["[1, 2, 3]", '{"format": "emorank-checkpoint", "version": 1, "model": '
                                                       '"x", "normaliser": {"mode": "none"}}'])
def test_a_bad_checkpoint_folder_never_stops_the_page(tmp_path, config_text):
    """A folder whose config.json is valid JSON of the wrong shape is listed nowhere: the page builds, and a
    refresh after such a folder appears in the runs folder still lists the good checkpoints."""
    from emorank.app.jobs import TrainingJobs
    from emorank.app.handlers import Handlers
    from test_app import load_app

    shipped = tmp_path / "checkpoints"
    shutil.copytree(REPO_CHECKPOINTS / "emotionrankclap", shipped / "emotionrankclap")
    (shipped / "bad").mkdir()
    (shipped / "bad" / "config.json").write_text(config_text)
    planned = plan_demo(tmp_path / "data", checkpoint_dirs=[shipped], cache_path=tmp_path / "features.sqlite")
    assert list(planned.checkpoints) == ["emotionrankclap"]
    ws = Workspace(planned)
    h = Handlers(ws, TrainingJobs(on_checkpoint=ws.add_checkpoint, cache_path=planned.cache_path))
    load_app().build_app(h)  # raised AttributeError ('list' object has no attribute 'get') while laying out
    (planned.runs_dir / "later" / "checkpoint").mkdir(parents=True)
    (planned.runs_dir / "later" / "checkpoint" / "config.json").write_text(config_text)
    assert list(ws.refresh_checkpoints()) == ["emotionrankclap"]
    assert ws.checkpoint_label("emotionrankclap") == "emotionrankclap · synthetic"  # still listed, labelled


@pytest.mark.parametrize("given", ["{abs}", "{abs}/", "~/checkpoints/emotionrankclap", "../checkpoints/emotionrankclap",
                                   "runs/../../emotionrankclap", "C:\\checkpoints\\emotionrankclap"])
def test_a_path_given_as_checkpoint_name_says_names_are_chosen_from_the_list(tmp_path, given):
    """It was "unknown checkpoint 'emotionrankclap'" (the path scrubbed to its last part) while that name was listed."""
    from emorank.app.errors import public_message

    shipped = tmp_path / "checkpoints"
    shutil.copytree(REPO_CHECKPOINTS / "emotionrankclap", shipped / "emotionrankclap")
    ws = Workspace(plan_demo(tmp_path / "data", checkpoint_dirs=[shipped], cache_path=tmp_path / "f.sqlite"))
    with pytest.raises(WorkspaceError) as err:
        ws.checkpoint_path(given.format(abs=shipped / "emotionrankclap"))
    shown = public_message(err.value)
    assert shown == ("no checkpoint is called that: a checkpoint is chosen by its name in the list, not by a path; "
                     "available: emotionrankclap")
    assert str(tmp_path) not in str(err.value)
    assert ws.checkpoint_path("emotionrankclap") == (shipped / "emotionrankclap").resolve()


def test_the_background_build_stops_at_its_next_report_when_the_app_exits(tmp_path):
    """At exit the build's cancel is set (emorank.app.shutdown): its next progress report ends it, so no torch
    work is left running while Python finalises; the page is not told of an error."""
    from emorank.app.build import BuildCancelled, BuildStatus, plan_demo

    status = BuildStatus()
    status.report(0.5, "half")
    status.cancel.set()
    with pytest.raises(BuildCancelled):
        status.report(0.6, "more")
    ws = Workspace(plan_demo(tmp_path / "data", checkpoint_dirs=[tmp_path / "none"]))
    ws.build.cancel.set()
    ws.build_demo(warm=False, n=4, workers=1)
    assert ws.build.snapshot()["error"] == "" and not ws.build.ready.is_set()


def test_a_labels_table_with_file_and_emotion_columns_is_a_labelled_collection(ws, tmp_path, demo_corpus):
    """labels.csv with `file` and `emotion` (what many corpora ship): read with the category proxies, whether the
    label column is typed or found by its name; another scale for valence and arousal is taken when stated."""
    from emorank.data.proxies import INTENSITY_FACTORS, category_va

    clips = sorted((Path(demo_corpus).parent / "audio").glob("*.wav"))[:4]
    for clip in clips:
        shutil.copy(clip, tmp_path / clip.name)
    rows = ["file,emotion"] + [f"{c.name},{e}" for c, e in zip(clips, ["happy", "sad", "anger", "other"])]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    for typed in ("emotion", ""):
        source = ws.add_collection(tmp_path / "labels.csv", f"labels {typed or 'found'}", typed)
        m = source.manifest
        assert source.labelled and m.emotion == ["happy", "sad", "angry"] and len(m) == 3  # "other": no norm
        assert (m.valence[0], m.arousal[0]) == pytest.approx(category_va("happy", INTENSITY_FACTORS["normal"])[:2])
        assert "emotion categories as valence-arousal proxies" in source.origin and "1 row(s)" in source.origin
    (tmp_path / "rated.csv").write_text("clip,val,aro\n" + "".join(f"{c.name},{i + 1},{5 - i}\n"
                                                                  for i, c in enumerate(clips)))
    source = ws.add_collection(tmp_path / "rated.csv", "rated", "val, aro, 1-5")
    assert source.manifest.valence.tolist() == pytest.approx([1.0, 2.5, 4.0, 5.5])
    with pytest.raises(WorkspaceError, match="no column 'mood'"):
        ws.add_collection(tmp_path / "labels.csv", "bad", "mood")
