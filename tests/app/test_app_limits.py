"""What one request may ask of the app, and how a refusal reads: bounded folder scans ("/" answered at once),
booleans that are booleans, control characters named as such, huge numbers shown short, and collections that
can be removed (the 64-collection limit says how)."""
import json
import os
import re
import threading
import time

import gradio as gr
import numpy as np
import pytest
import soundfile as sf
from gradio_client import Client

import emorank.app.collections as collections
from emorank.app.bounds import DEMO_ALL, DEMO_TEST, WorkspaceError
from emorank.app.build import plan_demo
from emorank.app.handlers import Handlers
from emorank.app.jobs import TrainingJobs
from emorank.app.workspace import Workspace
from test_app import free_port, load_app


def handlers(root, **kwargs) -> Handlers:
    """Handlers over a workspace with nothing built (the refusals below come before any model is needed)."""
    ws = Workspace(plan_demo(root / "data", checkpoint_dirs=[]), **kwargs)
    return Handlers(ws, TrainingJobs(on_checkpoint=ws.add_checkpoint, cache_path=ws.assets.cache_path))


def clips(folder, n: int = 2):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        sf.write(folder / f"c{i}.wav", 0.1 * np.sin(np.arange(8000) / (5.0 + i)).astype(np.float32), 16000)
    return folder


def refusal(fn, *args, **kwargs) -> str:
    with pytest.raises(gr.Error) as err:
        fn(*args, **kwargs)
    message = err.value.message
    assert "unexpected error" not in message, message
    return message


# ------------------------------------------------------------------------------------------- folder scans
def test_adding_the_root_folder_is_answered_at_once(tmp_path):
    h = handlers(tmp_path, allow_local_paths=True)  # loopback: every folder allowed
    answer: list[str] = []
    t0 = time.perf_counter()
    worker = threading.Thread(target=lambda: answer.append(refusal(h.add_collection, "/", "", "")), daemon=True)
    worker.start()
    worker.join(collections.SCAN_SECONDS + 20)
    assert answer, f"adding / was not answered within {collections.SCAN_SECONDS + 20:.0f} s"
    assert time.perf_counter() - t0 < collections.SCAN_SECONDS + 20
    assert "too many files and folders to look through" in answer[0] and "manifest CSV" in answer[0], answer[0]
    assert set(h.ws.collections()) == set()


def test_scans_are_bounded_and_skip_unreadable_places(tmp_path, monkeypatch):
    ws = Workspace(plan_demo(tmp_path / "data", checkpoint_dirs=[]), allow_local_paths=True,
                   local_roots=[tmp_path])
    clips(tmp_path / "voices" / "good")
    clips(tmp_path / "voices" / "locked")
    real_scandir = os.scandir

    def scandir(path="."):
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)
    monkeypatch.setattr(os, "scandir", scandir)
    source = ws.add_collection(tmp_path / "voices", "voices")  # the unreadable folder is skipped, not fatal
    assert [os.path.basename(p) for p in source.manifest.path] == ["c0.wav", "c1.wav"]
    assert all("/good/" in p for p in source.manifest.path)
    monkeypatch.setattr(collections, "MAX_SCAN_ENTRIES", 3)
    with pytest.raises(WorkspaceError, match=r"voices holds too many files and folders to look through \(more than 3"):
        ws.add_collection(tmp_path / "voices")
    monkeypatch.setattr(collections, "MAX_SCAN_ENTRIES", 1000)
    monkeypatch.setattr(collections, "SCAN_SECONDS", 0.0)
    with pytest.raises(WorkspaceError, match="0 s of scanning"):
        collections.scan_folder(tmp_path / "voices", seconds=0.0)


# ------------------------------------------------------------------------------------------- arguments
def test_booleans_are_booleans(tmp_path):
    h = handlers(tmp_path)
    for bad in ("yes", "true", "False", 1, 0, None, [True]):
        message = refusal(h.api_train, DEMO_ALL, "emotionrankclap", 15, 64, 1e-3, 0, "", bad)
        assert message.startswith("paper_budget must be true or false"), (bad, message)
    assert not h.jobs.running


def test_a_control_character_is_named_as_such(tmp_path):
    h = handlers(tmp_path)
    for query, shown in (("calm\x00voice", "U+0000"), ("a\x1bvoice", "U+001B"), ("x\x7f", "U+007F")):
        message = refusal(h.api_retrieve, "emotionrankclap", DEMO_TEST, query, None, None, 5)
        assert message == f"the query caption contains a control character ({shown}); type plain text", message
    too_long = refusal(h.api_retrieve, "emotionrankclap", DEMO_TEST, "x" * 501)
    assert "at most 500 characters of text (got 501)" in too_long


def test_huge_numbers_are_shown_short(tmp_path):
    h = handlers(tmp_path)
    cases = [((1e308,), "1e+308"), ((-1e308,), "-1e+308"), ((10 ** 400,), "a 401-digit number"),
             (("1" * 400,), "(got '111111111111111111111111111111111111...)"), ((10 ** 20,), "1e+20")]
    for (k,), shown in cases:
        message = refusal(h.api_retrieve, "emotionrankclap", DEMO_TEST, "The person is speaking.", None, None, k)
        pattern = r"k \(clips to return\) must be a whole number from 1 to 50 \(got .{1,45}\)"
        assert re.fullmatch(pattern, message), message
        assert shown in message, (shown, message)
    message = refusal(h.caption, 1e308, 4.0)
    assert message == "valence must be a number from 1 to 7 (got 1e+308)", message


# ------------------------------------------------------------------------------------------- collections
def test_collections_can_be_removed_and_stay_removed(tmp_path, monkeypatch):
    h = handlers(tmp_path, allow_local_paths=True, local_roots=[tmp_path])
    ws = h.ws
    h.add_collection(str(clips(tmp_path / "a")), "first", "")
    h.add_collection(str(clips(tmp_path / "b")), "second", "")
    saved = ws.definitions_path
    assert [d["name"] for d in json.loads(saved.read_text())] == ["first", "second"]
    everything, train, evaluate, note = h.remove_collection("first", DEMO_ALL, DEMO_TEST)
    assert "first" not in everything["choices"] and everything["value"] == DEMO_TEST and "Removed **first**" in note
    assert (train["value"], evaluate["value"]) == (DEMO_ALL, DEMO_TEST)
    assert set(ws.collections()) == {"second"} and (tmp_path / "a" / "c0.wav").is_file()  # files untouched
    assert [d["name"] for d in json.loads(saved.read_text())] == ["second"]
    again = Workspace(ws.assets, allow_local_paths=True, local_roots=[tmp_path])
    assert again.restore_collections() == ["second"]  # removed for good: not back after a restart
    for name, says in ((DEMO_TEST, "demo collections cannot be removed"), ("nope", "no collection called 'nope'"),
                       ("", "choose the collection to remove")):
        assert says in refusal(h.remove_collection, name), name
    assert "cannot be added or removed" in refusal(handlers(tmp_path / "closed").api_remove_collection, "second")
    monkeypatch.setattr(collections, "MAX_COLLECTIONS", 1)
    message = refusal(h.add_collection, str(tmp_path / "a"), "third", "")
    assert "at most 1 collections; remove one first" in message and "restart" not in message


def test_removal_through_the_launched_app_and_its_button(tmp_path):
    h = handlers(tmp_path, allow_local_paths=True, local_roots=[tmp_path])
    h.add_collection(str(clips(tmp_path / "a")), "mine", "")
    h.add_collection(str(clips(tmp_path / "b")), "other", "")
    module = load_app()
    demo = module.build_app(h)
    buttons = [b for b in demo.blocks.values() if isinstance(b, gr.Button) and b.elem_id == "remove-collection"]
    assert len(buttons) == 1 and buttons[0].visible is not False
    wired = [f for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "remove_collection"]
    assert wired and wired[0].inputs[0].elem_id == "collection"  # removes the collection chosen at the top
    _, url, _ = module.launch(demo, h, warm=False, server_name="127.0.0.1", server_port=free_port(),
                              prevent_thread_lock=True, quiet=True)
    try:
        left = Client(url, verbose=False).predict("mine", api_name="/remove_collection")
        assert [c["name"] for c in left] == ["other"] and set(h.ws.collections()) == {"other"}
    finally:
        demo.close()
