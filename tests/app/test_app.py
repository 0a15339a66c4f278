"""The Gradio app: handlers called directly, then the launched app driven through gradio_client."""
import contextlib
import importlib.util
import json
import socket
import time
from pathlib import Path

import gradio as gr
import httpx
import numpy as np
import pytest
import soundfile as sf
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from emorank.app.bounds import DEMO_ALL, DEMO_TEST
from emorank.app.workspace import Workspace
from emorank.app.jobs import TrainingJobs
from emorank.model.core import EmotionRankCLAP
from emorank.app.bounds import MAX_K, STRIP_VALUES
from emorank.app.handlers import Handlers
from test_workspace import build_assets

ROOT = Path(__file__).resolve().parents[2]


def load_app():
    spec = importlib.util.spec_from_file_location("app", ROOT / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_handlers(assets) -> Handlers:
    ws = Workspace(assets, allow_local_paths=True)
    return Handlers(ws, TrainingJobs(on_checkpoint=ws.add_checkpoint, cache_path=assets.cache_path))


def serve(h: Handlers):
    """Launch the app on a free local port; returns (demo, url)."""
    app = load_app()
    demo = app.build_app(h)
    _, url, _ = app.launch(demo, h, warm=False, server_name="127.0.0.1", server_port=free_port(),
                           prevent_thread_lock=True, quiet=True)
    return demo, url


@pytest.fixture(scope="module")
def assets(tmp_path_factory, demo_corpus, session_cache, trained_checkpoint):
    return build_assets(tmp_path_factory.mktemp("app"), demo_corpus, session_cache, trained_checkpoint)


@pytest.fixture(scope="module")
def h(assets):
    return make_handlers(assets)


@pytest.fixture(scope="module")
def server(assets):
    handlers = make_handlers(assets)
    demo, url = serve(handlers)
    yield url, handlers
    handlers.jobs.stop()
    handlers.jobs.wait(30)
    demo.close()


@pytest.fixture(scope="module")
def client(server):
    return Client(server[0], verbose=False)  # downloads files: a dict with a "path" key would break the call


# ------------------------------------------------------------------------------------------- handlers
def test_caption_follows_the_sliders(h):
    low, high = h.caption(1.0, 1.0), h.caption(7.0, 7.0)
    assert low.startswith("The person is speaking") and low != high
    assert h.caption(7.0, 7.0) == high and not any(c.isdigit() for c in low + high)


def test_explore_returns_playable_hits_table_and_plane(h):
    caption = h.caption(6.0, 2.0)
    table, fig, *players, explain = h.explore("emotionrankclap", DEMO_TEST, caption, 6.0, 2.0, 3)
    assert len(table) == 3 and [row[0] for row in table] == [1, 2, 3]
    for row in table:  # the distance column: each clip's label distance from the query point
        assert row[4] == pytest.approx(np.hypot(row[2] - 6.0, row[3] - 2.0), abs=0.01)
    assert "mean Δ" in explain and "?checkpoint=emotionrankclap&valence=6&arousal=2" in explain
    sims = [row[-1] for row in table]
    assert sims == sorted(sims, reverse=True)
    assert len(players) == MAX_K
    assert all(p["visible"] and Path(p["value"]).is_file() and p["label"].startswith(f"#{i + 1}")
               for i, p in enumerate(players[:3]))
    assert not any(p["visible"] for p in players[3:])
    assert [t.name for t in fig.data] == ["pick", "retrieved", "query"]  # pick: the clickable grid
    assert (fig.data[2].x[0], fig.data[2].y[0]) == (6.0, 2.0)
    assert list(fig.data[1].x) == [row[2] for row in table] and list(fig.data[1].customdata) == [r[1] for r in table]
    free_table, free, *_, free_explain = h.explore("emotionrankclap", DEMO_TEST, "A warm and happy voice.", 6.0, 2.0, 3)
    star = (free.data[2].x[0], free.data[2].y[0])  # free text: the star is where the checkpoint reads the caption
    assert star != (6.0, 2.0) and "reads as valence" in free_explain and "caption=" in free_explain
    assert all(row[4] == pytest.approx(np.hypot(row[2] - star[0], row[3] - star[1]), abs=0.02) for row in free_table)


def test_a_slider_move_returns_caption_and_results_in_one_call(h):
    caption, table, fig, *players, _ = h.slide("emotionrankclap", DEMO_TEST, 2.5, 6.0, 4)
    assert caption == h.caption(2.5, 6.0)
    assert table == h.explore("emotionrankclap", DEMO_TEST, caption, 2.5, 6.0, 4)[0]
    assert sum(p["visible"] for p in players) == 4 and (fig.data[2].x[0], fig.data[2].y[0]) == (2.5, 6.0)


def test_strip_plays_one_distinct_clip_per_step(h):
    note, *players = h.strip("emotionrankclap", DEMO_TEST, "valence", 4.0)
    assert "valence" in note and len(players) == len(STRIP_VALUES)
    files = [p["value"] for p in players if p["visible"]]
    assert len(files) == len(set(files)) == len(STRIP_VALUES)
    _, records = h.ws.neighbours("emotionrankclap", DEMO_TEST, "valence", 4.0)
    tau = h.ws.row_tau(records, "valence")
    assert f"Kendall τ = {tau:.2f}" in note and "averages" in note  # the row's tau, next to the checkpoint's mean
    assert h.ws.row_tau([{"valence": v} for v in STRIP_VALUES], "valence") == pytest.approx(1.0)
    assert h.ws.row_tau([{"valence": v} for v in STRIP_VALUES[::-1]], "valence") == pytest.approx(-1.0)


def test_side_by_side_answers_the_same_query_with_a_second_checkpoint(h):
    caption = h.caption(6.0, 2.0)
    table, note = h.compare("clap-sce-av", DEMO_TEST, caption, 6.0, 2.0, 4)
    direct = h.api_retrieve("clap-sce-av", DEMO_TEST, query=caption, k=4)["hits"]
    assert [row[1] for row in table] == [hit["id"] for hit in direct]
    assert all(row[4] == pytest.approx(np.hypot(row[2] - 6.0, row[3] - 2.0), abs=0.01) for row in table)
    assert note.startswith("**clap-sce-av**: mean Δ")
    assert h.compare("(none)", DEMO_TEST, caption, 6.0, 2.0, 4)[0] == []


def test_clicks_on_the_plane_query_a_point_or_play_a_clip(h):
    v, a, player_ = h.plane_click(DEMO_TEST, json.dumps({"valence": 6.25, "arousal": 1.75}))
    assert (v, a) == (6.0, 2.0) or (v, a) == (6.5, 2.0)  # snapped to the sliders' 0.5 step
    clip = h.ws.source(DEMO_TEST).manifest.ids[0]
    *_, played = h.plane_click(DEMO_TEST, json.dumps({"clip": clip}))
    assert played["visible"] and Path(played["value"]).is_file() and clip in played["label"]
    assert h.map_click(DEMO_TEST, json.dumps({"clip": clip}))["value"] == played["value"]
    for bad in ("not json", json.dumps({"clip": "../../etc/passwd"}), json.dumps({"valence": 99, "arousal": 1})):
        with pytest.raises(gr.Error) as err:
            h.plane_click(DEMO_TEST, bad)
        assert "/" not in str(err.value.message)


def test_a_shared_link_sets_the_query(h):
    from starlette.requests import Request

    def visit(query: str):
        return h.from_url("emotionrankclap", 4, 4, "x", gr.Request(Request({"type": "http", "query_string":
                                                                             query.encode(), "headers": []})))
    ckpt, v, a, caption = visit("valence=6.5&arousal=1.5&checkpoint=clap-sce-av")
    assert (ckpt, v, a, caption) == ("clap-sce-av", 6.5, 1.5, h.caption(6.5, 1.5))
    ckpt, v, a, caption = visit("caption=A+tense+voice.&checkpoint=nope")
    assert caption == "A tense voice." and all(isinstance(x, type(gr.skip())) for x in (ckpt, v, a))
    assert all(isinstance(x, type(gr.skip())) for x in visit("valence=99&arousal=x"))


def test_model_cards_say_what_each_checkpoint_was_trained_on(h):
    card = h.card("emotionrankclap")
    assert "synthetic speech" in card and "Not good at: real voices" in card and "egemaps" in card
    assert h.ws.checkpoint_label("emotionrankclap").endswith("synthetic")
    assert h.voice_checkpoint() == "emotionrankclap"  # no real-speech checkpoint in this workspace


def test_train_defaults_follow_the_recipe_with_a_paper_toggle(h):
    from emorank.training.trainer import RECIPE_MIN_STEPS, TrainConfig

    epochs, lr, note = h.budget(False)
    assert lr == TrainConfig.recipe().lr == 1e-3 and str(RECIPE_MIN_STEPS) in note
    assert h.budget(True)[1] == TrainConfig.paper().lr


def test_api_retrieve_by_point_equals_retrieve_by_its_caption(h):
    by_point = h.api_retrieve("emotionrankclap", DEMO_TEST, valence=2.0, arousal=6.5, k=4)
    by_text = h.api_retrieve("emotionrankclap", DEMO_TEST, query=by_point["caption"], k=4)
    assert by_point["hits"] == by_text["hits"] and len(by_point["hits"]) == 4
    assert all(hit["url"].startswith("/gradio_api/emorank-clip/") for hit in by_point["hits"])  # opaque names
    with pytest.raises(gr.Error, match="give a query caption"):
        h.api_retrieve("emotionrankclap", DEMO_TEST)


def test_errors_are_readable_gradio_errors(h, tmp_path, monkeypatch):
    with pytest.raises(gr.Error, match="unknown checkpoint 'nope'; available"):
        h.explore("nope", DEMO_TEST, "x", 4, 4, 3)
    with pytest.raises(gr.Error, match="upload or record a clip first"):
        h.analyse(None, "emotionrankclap", DEMO_TEST)
    bad = tmp_path / "photo.wav"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    with pytest.raises(gr.Error, match="photo.wav"):
        h.analyse(str(bad), "emotionrankclap", DEMO_TEST)
    with pytest.raises(gr.Error, match="needs 'train' and 'dev' rows"):
        h.api_train(collection=DEMO_TEST)
    with pytest.raises(gr.Error, match="unknown system 'nope'; valid system names: .*emotionrankclap"):
        h.api_train(system="nope")

    def boom(*args, **kwargs):
        raise KeyError("disk on fire")
    monkeypatch.setattr(h.ws, "index", boom)
    with pytest.raises(gr.Error, match=r"unexpected error \(KeyError\)"):
        h.strip("emotionrankclap", DEMO_TEST, "valence", 4.0)


def test_analyse_view_places_the_clip_and_lists_neighbours(h):
    clip = h.ws.source(DEMO_TEST).manifest.path[0]
    summary, fig, captions, table, *players = h.analyse(clip, "emotionrankclap", DEMO_TEST)
    assert "Estimated valence" in summary and len(captions) == len(table) == len(players)
    assert [t.name for t in fig.data] == ["retrieved", "query"]
    star = (fig.data[1].x[0], fig.data[1].y[0])
    assert all(1 <= v <= 7 for v in star)


def test_add_collection_updates_every_collection_list(h, tmp_path, demo_corpus):
    folder = tmp_path / "clips"
    folder.mkdir()
    for clip in sorted((Path(demo_corpus).parent / "audio").glob("*.wav"))[:3]:
        (folder / clip.name).write_bytes(clip.read_bytes())
    everything, labelled, labelled2, note, near = h.add_collection(str(folder), "")
    assert "clips" in [v for _, v in near["choices"]]
    assert everything["value"] == "clips" and "clips" in everything["choices"]
    assert "clips" not in labelled["choices"] and labelled == labelled2
    assert "estimates" in note
    table, _, first, *_ = h.explore("emotionrankclap", "clips", "The person is speaking calmly.", 4, 4, 2)
    assert [row[5] for row in table] == ["estimated", "estimated"]
    sr, wav = first["value"]  # a folder the server was not launched with: sent as samples, never served as a file
    assert sr == 16000 and wav.ndim == 1 and wav.size > 1000
    with pytest.raises(gr.Error, match="does not exist"):
        h.add_collection(str(tmp_path / "nowhere"), "")


def test_embedding_view_side_by_side_with_gap_numbers_and_downloads(h):
    fig, gaps, files = h.embedding("emotionrankclap", "clap-sce-av", DEMO_TEST, "pca", "valence", 200)
    assert [row[0] for row in gaps] == ["emotionrankclap", "clap-sce-av"]
    assert all(np.isfinite(row[1:4]).all() and row[1] >= 0 and row[4] > 0 for row in gaps)
    assert len(fig.data) >= 4  # audio + text traces of both maps
    names = sorted(Path(f).name for f in files)
    assert names == sorted(["embedding-map.html", "embeddings-emotionrankclap.npz", "embeddings-emotionrankclap.csv",
                            "embeddings-clap-sce-av.npz", "embeddings-clap-sce-av.csv"])
    emb = np.load(next(f for f in files if f.endswith("emotionrankclap.npz")))
    assert emb["audio_emb"].shape == emb["text_emb"].shape


def test_evaluate_compares_checkpoints_in_the_papers_tables(h):
    rows, paper, fig, path = h.evaluate(["emotionrankclap", "clap-sce-av"], DEMO_TEST, "test", 2, 10)
    assert [r[0] for r in rows] == ["emotionrankclap", "clap-sce-av"]
    assert "Table 1" in paper and "Table 2" in paper and "EmotionRankCLAP (A-V)" in paper
    report = json.loads(Path(path).read_text())
    assert set(report["reports"]) == {"emotionrankclap", "clap-sce-av"}
    assert len(report["reports"]["emotionrankclap"]["alignment"]["mmd"]["values"]) == 2
    assert {t.name for t in fig.data} >= {"AOC", "VOC"}


# ------------------------------------------------------------------------------------------- launched app
def test_named_endpoints_exist(client):
    named = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert named == {"/caption", "/retrieve", "/analyse", "/estimate_va", "/embedding_map", "/evaluate",
                     "/checkpoints", "/collections"}  # the MCP tools; training is reached by scripts only


def test_api_caption_retrieve_and_served_files(client, server):
    url, h = server
    caption = client.predict(6.0, 2.0, api_name="/caption")
    assert caption == h.caption(6.0, 2.0)
    res = client.predict(checkpoint="emotionrankclap", collection=DEMO_TEST, valence=6.0, arousal=2.0, k=3,
                         api_name="/retrieve")
    assert res["caption"] == caption and len(res["hits"]) == 3
    audio = httpx.get(url.rstrip("/") + res["hits"][0]["url"])
    assert audio.status_code == 200 and audio.content[:4] == b"RIFF"


def test_server_refuses_files_outside_the_collections(server, tmp_path):
    url, h = server
    secret = tmp_path / "secret.txt"
    secret.write_text("do not serve")
    corpus_root_file = h.ws.assets.manifest_path  # beside the clips' folder, not in it
    for path in (ROOT / "app.py", secret, Path("/etc/passwd"), corpus_root_file, h.ws.assets.cache_path):
        r = httpx.get(f"{url.rstrip('/')}/gradio_api/file={path}")
        assert r.status_code == 403, path


def test_api_analyse_upload_and_bad_upload(client, tmp_path, server):
    clip = server[1].ws.source(DEMO_TEST).manifest.path[1]
    res = client.predict(handle_file(clip), "emotionrankclap", DEMO_TEST, 3, api_name="/analyse")
    assert 1 <= res["valence"] <= 7 and len(res["clips"]) == 3 and len(res["captions"]) == 3
    silent = tmp_path / "quiet.wav"
    sf.write(silent, np.zeros(8000, np.float32), 16000)
    with pytest.raises(AppError, match="quiet.wav: silent audio"):
        client.predict(handle_file(str(silent)), "emotionrankclap", DEMO_TEST, 3, api_name="/analyse")


@contextlib.contextmanager
def serve_folder(folder):
    """A plain HTTP server on loopback serving `folder` (a clip's URL for the URL inputs); yields its base URL."""
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def test_estimate_va_takes_what_gradio_client_sends(client, server, tmp_path):
    """handle_file of a local file (the client uploads it: a FileData dict arrives), a URL (fetched by emorank
    within bounds; handle_file of a URL is fetched by Gradio itself, public addresses only) and base64 data all reach
    the same estimate; a URL that returns no audio and inline data too large are refused in one sentence."""
    import base64

    clip = server[1].ws.source(DEMO_TEST).manifest.path[1]
    local = client.predict(handle_file(clip), "emotionrankclap", api_name="/estimate_va")
    assert 1 <= local["valence"] <= 7 and 1 <= local["arousal"] <= 7 and local["caption"]
    (tmp_path / "voice.wav").write_bytes(Path(clip).read_bytes())
    (tmp_path / "page.html").write_text("<html>not audio</html>")
    server[1].ws.private_urls = True  # served on loopback: tests only
    try:
        with serve_folder(tmp_path) as base:
            remote = client.predict(f"{base}/voice.wav", "emotionrankclap", api_name="/estimate_va")
            with pytest.raises(AppError, match="returned text/html, not audio"):
                client.predict(f"{base}/page.html", "emotionrankclap", api_name="/estimate_va")
    finally:
        server[1].ws.private_urls = False
    inline = client.predict("data:audio/wav;base64," + base64.b64encode(Path(clip).read_bytes()).decode(),
                            "emotionrankclap", api_name="/estimate_va")
    assert (remote["valence"], remote["arousal"]) == (local["valence"], local["arousal"]) == \
        (inline["valence"], inline["arousal"])
    with pytest.raises(AppError, match="larger than 12 MB"):
        client.predict("data:audio/wav;base64," + "A" * (17 * 1024 * 1024), "emotionrankclap",
                       api_name="/estimate_va")
    assert not any(server[1].ws.clips_dir.iterdir())  # fetched and decoded clips are removed once analysed


def test_api_embedding_map_and_lists(client):
    res = client.predict(checkpoint="emotionrankclap", collection=DEMO_TEST, method="pca", max_points=500,
                         api_name="/embedding_map")
    assert res["method"] == "pca" and res["gap"]["mmd"] >= 0 and len(res["audio"]) == len(res["text"]) > 0
    names = [c["name"] for c in client.predict(api_name="/checkpoints")]
    assert {"emotionrankclap", "clap-sce-av"} <= set(names)
    cols = {c["name"]: c for c in client.predict(api_name="/collections")}
    assert cols[DEMO_TEST]["labelled"] and cols[DEMO_ALL]["clips"] >= cols[DEMO_TEST]["clips"]


def wait_for(client, predicate, timeout=90):
    t0 = time.time()
    while time.time() - t0 < timeout:
        status = client.predict(api_name="/training_status")
        if predicate(status):
            return status
        time.sleep(0.2)
    raise AssertionError(f"training status never reached the expected state: {status}")


def test_training_job_is_exclusive_stoppable_and_its_checkpoint_appears(client, server):
    started = client.predict(DEMO_ALL, "emotionrankclap", 500, 16, 1e-3, 0, "api run", False,
                             api_name="/train")  # undocumented (no MCP tool): positional arguments
    assert started["active"] and started["name"] == "api-run"
    wait_for(client, lambda s: s["step"] >= 1 or not s["active"])
    with pytest.raises(AppError, match="already running: api-run"):
        client.predict(DEMO_ALL, "emotionrankclap", 15, 64, 1e-3, 0, "second", False, api_name="/train")
    during = client.predict(checkpoint="emotionrankclap", collection=DEMO_TEST, valence=2.0, arousal=2.0, k=2,
                            api_name="/retrieve")
    assert len(during["hits"]) == 2  # exploring keeps working while the job runs
    client.predict(api_name="/stop_training")
    final = wait_for(client, lambda s: not s["active"])
    assert final["state"] == "stopped" and final["checkpoint"] == "runs/api-run/checkpoint"  # no server paths
    assert "listed as runs/api-run" in final["summary"]
    shown = server[1].follow_training()  # what the Train tab shows
    status, _ = next(shown)
    assert "listed as runs/api-run" in status and str(server[1].ws.assets.data_dir) not in status
    checkpoint = server[1].ws.assets.data_dir / final["checkpoint"]
    assert EmotionRankCLAP.from_checkpoint(checkpoint).extra["stopped"] is True
    assert "runs/api-run" in [c["name"] for c in client.predict(api_name="/checkpoints")]
    res = client.predict(checkpoint="runs/api-run", collection=DEMO_TEST, query="The person is speaking softly.",
                         k=2, api_name="/retrieve")
    assert len(res["hits"]) == 2


def test_upload_problems_are_told_as_something_a_visitor_can_do(h, tmp_path):
    long, silent, short = tmp_path / "long.wav", tmp_path / "hush.wav", tmp_path / "blip.wav"
    sf.write(long, 0.1 * np.sin(np.arange(31 * 8000) / 5.0).astype(np.float32), 8000)
    sf.write(silent, np.zeros(16000, np.float32), 16000)
    sf.write(short, 0.1 * np.ones(800, np.float32), 16000)
    expected = {long: "long.wav: too long; upload a clip of at most 30 s",
                silent: "hush.wav: silent audio, there is no speech to analyse",
                short: "blip.wav: too short; upload a clip of at least 0.3 s"}
    for path, start in expected.items():
        with pytest.raises(gr.Error) as err:
            h.analyse(str(path), "emotionrankclap", DEMO_TEST)
        message = err.value.message
        assert message.startswith(start), message
        assert not any(word in message for word in ("allow_silent", "max_seconds", "min_seconds", "=", str(tmp_path)))


def test_output_folders_are_removed_at_exit_and_stale_ones_swept_at_start(tmp_path):
    import os
    import subprocess
    import sys

    from emorank.app.serving import OWNER_FILE, app_output_dir

    code = "import sys; from emorank.ui import app_output_dir; print(app_output_dir(sys.argv[1]))"
    made = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True,
                          cwd=ROOT).stdout.strip()
    assert Path(made).name.startswith("emorank-app-") and not Path(made).exists()  # removed at exit
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    folders = {name: tmp_path / f"emorank-app-{name}" for name in ("dead", "alive", "old", "recent")}
    for f in folders.values():
        f.mkdir()
        (f / "evaluation.json").write_text("{}")
    (folders["dead"] / OWNER_FILE).write_text(str(dead.pid))
    (folders["alive"] / OWNER_FILE).write_text(str(os.getpid()))
    os.utime(folders["old"], (time.time() - 3 * 86400, time.time() - 3 * 86400))
    mine = app_output_dir(tmp_path)
    assert not folders["dead"].exists() and not folders["old"].exists()
    assert folders["alive"].exists() and folders["recent"].exists() and mine.is_dir()


def test_request_outputs_are_bounded(h):
    from emorank.app.serving import MAX_OUTPUTS

    made = [h._new_output("eval-") for _ in range(MAX_OUTPUTS + 8)]
    kept = [f for f in h.output_dir.iterdir() if f.is_dir()]
    assert len(kept) == MAX_OUTPUTS and made[-1] in kept and made[0] not in kept


def test_every_example_returns_only_clips_near_what_it_means_where_it_is_shown(app_demo):
    """The Explore defaults (shipped emotionrankclap, demo test split): every one of the top-5 clips of each
    example caption, and of the slider caption at the point it means, lies within EXAMPLE_MAX_DELTA of that point;
    a random pick of five clips rarely does."""
    from emorank.app.formatting import EXAMPLE_MAX_DELTA, example_caption_points

    ws = Workspace(app_demo)
    examples = example_caption_points()
    assert len(examples) >= 4 and all(point is not None for _, point in examples)
    assert {(v > 4, a > 4) for _, (v, a) in examples} >= {(False, False), (False, True), (True, True)}
    for caption, (v, a) in examples:
        for query in (caption, ws.caption(v, a)):  # the free text, and the sliders set to its point
            _, hits = ws.search("emotionrankclap", DEMO_TEST, query, k=5, point=(v, a))
            far = [(h["id"], h["emotion"], h["distance"]) for h in hits if h["distance"] > EXAMPLE_MAX_DELTA]
            assert len(hits) == 5 and not far, (query, (v, a), far)
    labels = ws.source(DEMO_TEST).manifest.va()  # [N, 2]
    rng = np.random.default_rng(0)
    random_ok = [np.hypot(*(labels[rng.permutation(len(labels))[:5]] - point).T).max() <= EXAMPLE_MAX_DELTA
                 for _, point in examples for _ in range(100)]
    assert np.mean(random_ok) < 0.1  # the bar means something


def test_free_text_far_from_the_template_captions_is_flagged(app_demo):
    """ "A sad, tired whisper." reads as an energetic point under the shipped checkpoint: the explanation says the
    text is far from the captions the heads learnt (threshold: 5th percentile of held-out template phrasings);
    template-like text, and every shipped example, is not flagged."""
    from emorank.app.formatting import example_captions

    h = make_handlers(app_demo)
    index = h.ws.index("emotionrankclap", DEMO_TEST)
    whisper = h.ws.text_typicality("emotionrankclap", index, "A sad, tired whisper.")
    assert not whisper.typical and whisper.score < whisper.threshold and whisper.percentile < 5
    *_, explain = h.explore("emotionrankclap", DEMO_TEST, "A sad, tired whisper.", 4, 4, 3)
    assert "far from the captions the heads learnt" in explain and f"{whisper.score:.2f}" in explain
    for caption in [*example_captions(), h.caption(2, 6)]:
        assert h.ws.text_typicality("emotionrankclap", index, caption).typical, caption
    *_, explain = h.explore("emotionrankclap", DEMO_TEST, example_captions()[0], 4, 4, 3)
    assert "far from" not in explain
    res = h.api_retrieve("emotionrankclap", DEMO_TEST, "A sad, tired whisper.", k=2)
    assert res["text_typicality"]["typical"] is False


def test_each_analysis_says_whether_the_estimate_can_be_trusted(app_demo, tmp_path):
    """A clip of the checkpoint's own corpus is within its training speech; a tone, noise, or synthetic speech
    under a real-speech checkpoint lies farther than 95% of that checkpoint's own test clips and the result says
    not to trust it. The shipped reference (bench/references.py) is what its corpus gives: recomputed here."""
    from emorank.search.typicality import AudioReference, audio_reference

    h = make_handlers(app_demo)
    demo = h.ws.source(DEMO_TEST).manifest
    t = np.arange(48000) / 16000
    tone, noise = tmp_path / "tone.wav", tmp_path / "noise.wav"
    sf.write(tone, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    sf.write(noise, (0.1 * np.random.default_rng(0).normal(size=t.size)).astype(np.float32), 16000)
    for clip in demo.path[:3]:
        res = h.ws.analyse(clip, "emotionrankclap", None, k=1)
        assert res["trusted"] is True and res["typicality"]["score_is"] == "distance", res["typicality"]
    for clip in (tone, noise):
        res = h.ws.analyse(clip, "emotionrankclap", None, k=1)
        assert res["trusted"] is False and res["typicality"]["percentile"] < 5, res["typicality"]
        summary = h.analyse(str(clip), "emotionrankclap", DEMO_TEST)[0]
        assert "Do not trust this estimate" in summary
    real = h.ws.analyse(demo.path[0], "emotionrankclap-ravdess", None, k=1)  # synthetic speech, real checkpoint
    assert real["trusted"] is False
    assert "within the speech" in h.analyse(demo.path[0], "emotionrankclap", DEMO_TEST)[0]
    assert h.estimate_va(demo.path[0], "emotionrankclap")["trusted"] is True
    shipped = AudioReference.load(app_demo.checkpoints["emotionrankclap"])
    again = audio_reference(h.ws.model("emotionrankclap"), h.ws.source(DEMO_ALL).manifest, h.ws.cache)
    assert np.percentile(again.calibration, 95) == pytest.approx(np.percentile(shipped.calibration, 95), rel=1e-3)


def test_shipped_example_voices_are_offered_and_analysed(client, server):
    """The Analyse tab offers the synthetic clips of assets/voices; each analyses to a point on the plane."""
    from emorank.app.formatting import example_voices

    voices = example_voices()
    assert len(voices) >= 4 and all(Path(v).parent == ROOT / "assets" / "voices" for v in voices)
    for v in voices:
        info = sf.info(v)
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16") and 1.5 <= info.duration <= 3
    app = load_app()
    with gr.Blocks() as page:
        app.analyse_tab(server[1])
    offered = [Path(str(sample[0]["path"] if isinstance(sample[0], dict) else sample[0])).name
               for block in page.blocks.values() if isinstance(block, gr.Dataset) for sample in block.samples]
    assert offered == [Path(v).name for v in voices]
    for v in voices:  # through the app's endpoint, as a visitor's upload
        res = client.predict(handle_file(v), "emotionrankclap", DEMO_TEST, 3, api_name="/analyse")
        assert all(np.isfinite(res[key]) and 1 <= res[key] <= 7 for key in ("valence", "arousal")), (v, res)
