"""The app as an attacker sees it: every handler, listed in the API or not, called through Gradio's queue by its
fn_index (raw HTTP: POST /gradio_api/queue/join, then the SSE stream of /gradio_api/queue/data), against a
launched app on 127.0.0.1. Server paths must stay confined, messages must not leak paths or file contents."""
import inspect
import json
import os
import re
import shutil
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emorank.app.bounds import DEMO_TEST, WorkspaceError, is_loopback, local_paths_policy
from emorank.app.workspace import Workspace
from emorank.app.build import ensure_demo
from emorank.app.jobs import TrainingJobs
from emorank.app.handlers import Handlers
from test_app import load_app, free_port

SECRET = "TOP-SECRET-LINE-4f2a"


@pytest.fixture(scope="module")
def layout(tmp_path_factory, demo_corpus, session_cache, trained_checkpoint):
    """A data folder around the session's corpus, an `allowed` folder (the operator's --local-root) and, outside
    it, a `private` folder with a secret CSV line and a secret audio clip."""
    root = tmp_path_factory.mktemp("security")
    data, shipped = root / "data", root / "checkpoints"
    data.mkdir()
    os.symlink(Path(demo_corpus).parent, data / "corpus")
    shutil.copytree(trained_checkpoint, shipped / "emorankclap")
    assets = ensure_demo(data, lambda f, m: None, checkpoint_dirs=[shipped], cache_path=session_cache.path)
    allowed, private = root / "allowed", root / "private"
    allowed.mkdir()
    private.mkdir()
    clip = sorted((Path(demo_corpus).parent / "audio").glob("*.wav"))[0]
    shutil.copy(clip, private / "secret.wav")
    (private / "secret.csv").write_text(f"path,valence,arousal\n{SECRET}.wav,4,4\n")
    shutil.copy(clip, allowed / "mine.wav")
    return assets, allowed, private


@pytest.fixture(scope="module")
def app(layout):
    """The app launched as an operator who opted in to server paths under one folder only."""
    assets, allowed, _ = layout
    ws = Workspace(assets, allow_local_paths=True, local_roots=[allowed])
    h = Handlers(ws, TrainingJobs(on_checkpoint=ws.add_checkpoint, cache_path=assets.cache_path))
    module = load_app()
    demo = module.build_app(h)
    _, url, _ = module.launch(demo, h, warm=False, server_name="127.0.0.1", server_port=free_port(),
                              prevent_thread_lock=True, quiet=True)
    yield url.rstrip("/"), demo, h
    demo.close()


def fn_index(demo, name: str) -> int:
    """The queue index of the handler whose Python name is `name` (what an attacker reads from /config)."""
    names = lambda fn: {getattr(fn, "__name__", ""), getattr(getattr(fn, "__wrapped__", None), "__name__", "")}  # noqa: E731
    found = [i for i, block_fn in demo.fns.items() if name in names(block_fn.fn)]  # an API tool wraps its handler
    assert found, f"no handler named {name}"
    return found[0]


def call(url: str, index: int, data: list, timeout: float = 60) -> dict:
    """Post `data` to handler `index` through the queue and return its process_completed message."""
    session = uuid.uuid4().hex
    with httpx.Client(timeout=timeout) as http:
        joined = http.post(f"{url}/gradio_api/queue/join",
                           json={"data": data, "fn_index": index, "session_hash": session, "event_data": None,
                                 "trigger_id": None})
        assert joined.status_code == 200, joined.text
        with http.stream("GET", f"{url}/gradio_api/queue/data", params={"session_hash": session}) as stream:
            for line in stream.iter_lines():
                if line.startswith("data:"):
                    msg = json.loads(line[5:])
                    if msg.get("msg") == "process_completed":
                        return msg
    raise AssertionError("the queue never completed the call")


def error_of(msg: dict) -> str:
    assert msg["success"] is False, f"the call succeeded: {str(msg)[:300]}"
    return str(msg["output"].get("error"))


def assert_private(text: str, *folders: Path) -> None:
    assert SECRET not in text
    for folder in folders:
        assert str(folder) not in text and str(folder.resolve()) not in text


# ------------------------------------------------------------------------------------------- policy
def test_server_paths_are_off_unless_the_app_listens_on_loopback():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4") and not is_loopback("")
    assert local_paths_policy("127.0.0.1", environ={}) is True
    for host in ("0.0.0.0", "::", "10.0.0.2", None):
        assert local_paths_policy(host, environ={}) is False
    assert local_paths_policy("127.0.0.1", share=True, environ={}) is False
    assert local_paths_policy("127.0.0.1", environ={"SPACE_ID": "me/emorank"}) is False
    assert local_paths_policy("0.0.0.0", opt_in=True, environ={}) is True
    assert local_paths_policy("127.0.0.1", opt_out=True, environ={}) is False


def test_a_workspace_refuses_server_paths_by_default(layout):
    assets, allowed, _ = layout
    with pytest.raises(WorkspaceError, match="disabled"):
        Workspace(assets).add_collection(allowed)


# ------------------------------------------------------------------------------------------- through the queue
def test_hidden_add_collection_refuses_paths_outside_the_allowed_roots(app, layout):
    url, demo, h = app
    _, allowed, private = layout
    index = fn_index(demo, "add_collection")
    refusals = {}
    for path in ("/etc", "/root", "/usr", "/etc/passwd", "/no/such/place", str(private), str(private / "secret.csv"),
                 str(allowed / ".." / "private"), "~"):
        refusals[path] = error_of(call(url, index, [path, "", ""]))
        assert "outside the folders this server allows" in refusals[path], refusals[path]
        assert_private(refusals[path], private, allowed)
    assert len(set(refusals.values())) == 1  # an existing and a missing path get the same answer: no oracle
    assert set(h.ws.collections()) == {"demo corpus · test split", "demo corpus · all splits"}


def test_symbolic_links_out_of_the_allowed_roots_are_refused(app, layout):
    url, demo, h = app
    _, allowed, private = layout
    os.symlink(private, allowed / "link-to-private", target_is_directory=True)
    os.symlink(private / "secret.csv", allowed / "link.csv")
    index = fn_index(demo, "add_collection")
    for path in (allowed / "link-to-private", allowed / "link.csv"):
        assert "outside the folders" in error_of(call(url, index, [str(path), "", ""]))
    # a folder inside the roots whose own link leads out: its clips outside are never listed
    inside = allowed / "voices"
    inside.mkdir()
    shutil.copy(allowed / "mine.wav", inside / "a.wav")
    os.symlink(private / "secret.wav", inside / "b.wav")
    done = call(url, index, [str(inside), "voices", ""])
    assert done["success"], done
    assert h.ws.source("voices").manifest.path == [str((inside / "a.wav").resolve())]


def test_manifest_errors_never_quote_the_file(app, layout):
    url, demo, _ = app
    _, allowed, private = layout
    index = fn_index(demo, "add_collection")
    cases = {
        "missing.csv": f"path,valence,arousal\n{SECRET}.wav,4,4\n",  # names a file that is not there
        "outside.csv": f"path,valence,arousal\n{private / 'secret.wav'},4,4\n",  # names a file outside the roots
        "garbled.csv": f"path,valence,arousal\nmine.wav,{SECRET},4\n",  # a cell that is not a number
        "header.csv": f"{SECRET}\n1,2,3\n",  # no usable header
    }
    for name, body in cases.items():
        (allowed / name).write_text(body)
        message = error_of(call(url, index, [str(allowed / name), "", ""]))
        assert name in message, message
        assert_private(message, private, allowed)


def test_analyse_reads_uploads_only(app, layout):
    url, demo, h = app
    _, _, private = layout
    for name in ("analyse", "api_analyse"):
        index = fn_index(demo, name)
        data = [{"path": str(private / "secret.wav"), "meta": {"_type": "gradio.FileData"}}, "emorankclap",
                DEMO_TEST] + ([3] if name == "api_analyse" else [])
        message = error_of(call(url, index, data))
        assert_private(message, private)
    with pytest.raises(WorkspaceError, match="outside the folders"):  # the library confines it too
        h.ws.analyse(private / "secret.wav", "emorankclap", DEMO_TEST)


def test_api_lists_and_hits_name_things_without_server_paths(app, layout):
    url, demo, h = app
    assets = layout[0]
    for name, data in (("api_checkpoints", []), ("api_collections", []), ("api_training_status", []),
                       ("api_retrieve", ["emorankclap", DEMO_TEST, "", 6.0, 2.0, 3])):
        done = call(url, fn_index(demo, name), data)
        assert done["success"], done
        body = json.dumps(done["output"]["data"])
        assert str(assets.data_dir) not in body and str(Path(assets.data_dir).parent) not in body, body[:400]
    hits = call(url, fn_index(demo, "api_retrieve"), ["emorankclap", DEMO_TEST, "", 6.0, 2.0, 3])
    assert all("file" not in hit and hit["url"] for hit in hits["output"]["data"][0]["hits"])


def test_upload_errors_name_the_file_only(app, tmp_path):
    url, demo, h = app
    silent = tmp_path / "quiet.wav"
    sf.write(silent, np.zeros(8000, np.float32), 16000)
    with httpx.Client(timeout=30) as http:  # upload as a browser does, then call the hidden view by index
        up = http.post(f"{url}/gradio_api/upload", files={"files": ("quiet.wav", silent.read_bytes())})
        assert up.status_code == 200, up.text
    uploaded = up.json()[0]
    message = error_of(call(url, fn_index(demo, "analyse"),
                            [{"path": uploaded, "meta": {"_type": "gradio.FileData"}}, "emorankclap", DEMO_TEST]))
    assert message.startswith("quiet.wav: silent audio") and "allow_silent" not in message
    assert os.path.dirname(uploaded) not in message and "/" not in message


# ------------------------------------------------------------------------------------------- bounded arguments
def user_error(fn, *args) -> str | None:
    """None when `fn(*args)` answers; the message of the clean user error (gr.Error) it raises otherwise. Anything
    else (an exception that is not a gr.Error, or the wrapper's "unexpected error") fails the test."""
    import gradio as gr

    try:
        out = fn(*args)
        if inspect.isgenerator(out):
            list(out)
        return None
    except gr.Error as err:
        assert "unexpected error" not in err.message, (fn.__name__, args, err.message)
        assert "Traceback" not in err.message and "/tmp/" not in err.message, err.message
        return err.message


def test_api_arguments_are_validated_with_clear_messages(app):
    _, _, h = app
    cases = [
        (h.api_retrieve, ("emorankclap", DEMO_TEST, "", 6.0, 2.0, 0), "k .* from 1 to 50"),
        (h.api_retrieve, ("emorankclap", DEMO_TEST, "", 6.0, 2.0, -3), "k .* from 1 to 50"),
        (h.api_retrieve, ("emorankclap", DEMO_TEST, "", 6.0, 2.0, "abc"), "k .* whole number"),
        (h.api_retrieve, ("emorankclap", DEMO_TEST, "x" * 5000, None, None, 5), "at most 500 characters"),
        (h.api_retrieve, ("emorankclap", DEMO_TEST, "", 100, 2.0, 5), "valence must be a number from 1 to 7"),
        (h.caption, (None, 4.0), "valence must be a number"),
        (h.caption, (4.0, 100), "arousal must be a number from 1 to 7"),
        (h.caption, (float("nan"), 4.0), "valence must be a number"),
        (h.api_evaluate, (["emorankclap"], DEMO_TEST, "test", 30, 2000), "ordinality lists .* from 10 to 100"),
        (h.api_evaluate, (["emorankclap"] * 1 + [f"c{i}" for i in range(9)], DEMO_TEST, "test", 2, 10), "at most 4"),
        (h.api_embedding_map, ("emorankclap", DEMO_TEST, "pca", 0), "max_points .* from 10 to 2000"),
        (h.api_embedding_map, ("emorankclap", DEMO_TEST, "pca", -5), "max_points .* from 10 to 2000"),
        (h.api_embedding_map, ("emorankclap", DEMO_TEST, "tsne", 100), "method must be one of pca, umap"),
        (h.api_train, (DEMO_TEST, "emotionrankclap", 100000, 64, 1e-4, 0, ""), "epochs"),
        (h.api_train, (DEMO_TEST, "emotionrankclap", 15, 64, "fast", 0, ""), "lr"),
        (h.api_analyse, ("mine.wav", "emorankclap", DEMO_TEST, 500), "k .* from 1 to 20"),
    ]
    for fn, args, pattern in cases:
        t0 = time.perf_counter()
        message = user_error(fn, *args)
        assert message is not None and re.search(pattern, message), (fn.__name__, args, message)
        assert time.perf_counter() - t0 < 5  # refused before any work


garbage = st.one_of(st.none(), st.booleans(), st.integers(-10**15, 10**15), st.floats(), st.text(max_size=20),
                    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


def some(*valid):
    return st.one_of(garbage, st.sampled_from(valid))


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)


@FUZZ
@given(data=st.data())
def test_any_garbage_gives_a_clean_user_error(app, layout, data):
    """Every handler a client can reach (named API or hidden view) with arguments drawn from garbage and valid
    values: a result or a readable gr.Error, never an unexpected exception."""
    _, _, h = app
    allowed = layout[1]
    ckpt, coll = some("emorankclap", "(none)"), some(DEMO_TEST, "demo corpus · all splits")
    va, k, text_ = some(1.0, 4.0, 6.5), some(1, 3, 8), some("", "The person is speaking softly.")
    clip = h.ws.source(DEMO_TEST).manifest.path[0]
    calls = {
        h.caption: (va, va),
        h.api_retrieve: (ckpt, coll, text_, va, va, k),
        h.explore: (ckpt, coll, text_, va, va, k),
        h.slide: (ckpt, coll, va, va, k),
        h.strip: (ckpt, coll, some("valence", "arousal"), va),
        h.api_analyse: (some(clip), ckpt, coll, k),
        h.analyse: (some(clip), ckpt, coll),
        h.api_embedding_map: (ckpt, coll, some("pca"), some(10, 50)),
        h.embedding: (ckpt, ckpt, coll, some("pca"), some("modality", "valence"), some(10, 50)),
        h.api_train: (some(DEMO_TEST), some("emotionrankclap", "clap-sce-av"), some(1, 15), some(16, 64),
                      some(1e-4, 1e-3), some(0, 1), text_, some(False, True)),
        h.start_training: (some(DEMO_TEST), some("emotionrankclap"), some(1, 15), some(16, 64), some(1e-4), some(0),
                           text_, some(False, True)),
        h.api_evaluate: (some(["emorankclap"], "emorankclap"), coll, some("test", "dev"), some(2), some(10)),
        h.evaluate: (some(["emorankclap"]), coll, some("test"), some(2), some(10)),
        h.add_collection: (some(str(allowed / "mine.wav"), str(allowed), "/etc"), text_, some("", "emotion")),
        h.remove_collection: (some("allowed", "nope", "/etc"), coll, coll),
        h.api_remove_collection: (some("allowed", "nope", "\x00"),),
        h.refresh_checkpoints: (ckpt, ckpt, ckpt, some(["emorankclap"]), ckpt, ckpt),
        h.compare: (ckpt, coll, text_, va, va, k),
        h.plane_click: (coll, some('{"valence": 6, "arousal": 2}', '{"clip": "x.wav"}')),
        h.map_click: (coll, some('{"clip": "x.wav"}')),
        h.card: (ckpt,),
    }
    fn = data.draw(st.sampled_from(list(calls)), label="handler")
    args = [data.draw(s) for s in calls[fn]]
    user_error(fn, *args)
    assert not h.jobs.running  # no garbage ever starts a training job
