"""What the launched app hands out about its files: clips are linked under opaque names, so no answer (the JSON API,
the page's own events, the MCP tools) names a server folder; the app runs as on a Space (--host 0.0.0.0,
SPACE_ID set, server paths off)."""
import asyncio
import json
import os
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf
from gradio_client import Client, handle_file

from emorank.app.bounds import DEMO_TEST, local_paths_policy
from emorank.app.build import ensure_demo
from emorank.app.serving import CLIP_ROUTE, ClipLinks
from test_app import free_port, load_app
from test_app_security import call, fn_index

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def space(tmp_path_factory, demo_corpus, session_cache, trained_checkpoint):
    """The app as `python app.py --host 0.0.0.0 --mcp` starts it on a Space; yields (url, demo, handlers, the
    server's folders that no answer may name)."""
    root = tmp_path_factory.mktemp("space")
    data, shipped = root / "data", root / "checkpoints"
    data.mkdir()
    os.symlink(Path(demo_corpus).parent, data / "corpus")
    shutil.copytree(trained_checkpoint, shipped / "emotionrankclap")
    ensure_demo(data, lambda f, m: None, checkpoint_dirs=[shipped], cache_path=session_cache.path)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPACE_ID", "someone/emorank")
        module = load_app()
        allowed = local_paths_policy("0.0.0.0")
        assert allowed is False
        demo, h = module.create(str(data), allow_local_paths=allowed, checkpoint_dirs=[shipped],
                                cache_path=session_cache.path, build=False)
        port = free_port()
        module.launch(demo, h, warm=False, server_name="0.0.0.0", server_port=port, prevent_thread_lock=True,
                      quiet=True, mcp_server=True)
        folders = {str(p) for p in (root, root.resolve(), Path(demo_corpus).parent,
                                    Path(demo_corpus).parent.resolve(), Path(session_cache.path).parent, ROOT)}
        try:
            yield f"http://127.0.0.1:{port}", demo, h, folders
        finally:
            demo.close()


def assert_no_server_folder(answer, folders) -> None:
    body = answer if isinstance(answer, str) else json.dumps(answer)
    for folder in folders:
        assert folder not in body, (folder, body[:500])
    assert "/gradio_api/file=" + str(ROOT) not in body


def assert_opaque_and_playable(url: str, hits: list[dict], h) -> None:
    assert hits and all(set(hit) >= {"url", "id"} and "file" not in hit for hit in hits)
    for hit in hits:
        assert hit["url"].startswith(CLIP_ROUTE + "/") and hit["url"].endswith(".wav")
        token = hit["url"].rsplit("/", 1)[1]
        assert len(token) == 36 and all(c in "0123456789abcdef" for c in token[:32])
        got = httpx.get(url + hit["url"], timeout=30)
        assert got.status_code == 200 and got.content[:4] == b"RIFF"
        assert got.headers["content-type"].startswith("audio/")
        assert got.content == Path(h.links.path(token)).read_bytes()


def test_retrieve_answers_link_clips_under_opaque_names(space):
    url, _, h, folders = space
    client = Client(url, verbose=False)
    res = client.predict(checkpoint="emotionrankclap", collection=DEMO_TEST, valence=6.0, arousal=2.0, k=4,
                         api_name="/retrieve")
    assert_no_server_folder(res, folders)
    assert_opaque_and_playable(url, res["hits"], h)
    again = client.predict(checkpoint="emotionrankclap", collection=DEMO_TEST, valence=6.0, arousal=2.0, k=4,
                           api_name="/retrieve")
    assert [hit["url"] for hit in again["hits"]] == [hit["url"] for hit in res["hits"]]  # stable within a process


def test_analyse_answers_link_clips_under_opaque_names(space, tmp_path):
    url, _, h, folders = space
    clip = h.ws.source(DEMO_TEST).manifest.path[2]
    shutil.copy(clip, tmp_path / "mine.wav")
    res = Client(url, verbose=False).predict(handle_file(str(tmp_path / "mine.wav")), "emotionrankclap", DEMO_TEST,
                                             3, api_name="/analyse")
    assert_no_server_folder(res, folders | {str(tmp_path)})
    assert_opaque_and_playable(url, res["clips"], h)


def test_the_pages_own_events_name_no_server_folder(space, tmp_path):
    """The hidden view events (players, tables, notes) through the queue, as the page calls them."""
    url, demo, h, folders = space
    sf.write(tmp_path / "voice.wav", 0.1 * np.sin(np.arange(16000) / 7.0).astype(np.float32), 16000)
    with httpx.Client(timeout=30) as http:
        up = http.post(f"{url}/gradio_api/upload",
                       files={"files": ("voice.wav", (tmp_path / "voice.wav").read_bytes())})
    upload = {"path": up.json()[0], "meta": {"_type": "gradio.FileData"}}
    caption = h.caption(6.0, 2.0)
    for name, data in (("explore", ["emotionrankclap", DEMO_TEST, caption, 6.0, 2.0, 3]),
                       ("slide", ["emotionrankclap", DEMO_TEST, 2.0, 6.0, 3]),
                       ("strip", ["emotionrankclap", DEMO_TEST, "valence", 4.0]),
                       ("analyse", [upload, "emotionrankclap", DEMO_TEST]),
                       ("api_checkpoints", []), ("api_collections", [])):
        done = call(url, fn_index(demo, name), data)
        assert done["success"], (name, str(done)[:300])
        assert_no_server_folder(done["output"], folders)


def test_the_mcp_retrieve_tool_names_no_server_folder(space):
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    url, _, h, folders = space

    async def retrieve():
        async with streamable_http_client(f"{url}/gradio_api/mcp/") as (read, write, _):
            async with ClientSession(read, write) as session:
                await session.initialize()
                tools = {t.name: t for t in (await session.list_tools()).tools}
                name = next(n for n in tools if "retrieve" in n)
                result = await session.call_tool(name, {"checkpoint": "emotionrankclap", "collection": DEMO_TEST,
                                                        "query": "The person is speaking calmly.", "k": 3})
                return "\n".join(getattr(c, "text", "") for c in result.content)

    text = asyncio.run(retrieve())
    assert CLIP_ROUTE in text, text[:300]
    assert_no_server_folder(text, folders)


def test_clip_links_serve_only_what_they_handed_out(space, tmp_path):
    url, _, h, _ = space
    for bad in ("0" * 32 + ".wav", "..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "../../app.py"):
        r = httpx.get(f"{url}{CLIP_ROUTE}/{bad}", timeout=10)
        assert r.status_code == 404, (bad, r.status_code)
    links = ClipLinks([str(tmp_path.resolve())], max_links=3)
    for i in range(5):
        (tmp_path / f"{i}.wav").write_bytes(b"RIFF")
    made = [links.url(tmp_path / f"{i}.wav") for i in range(5)]
    assert len(links) == 3 and links.path(made[0].rsplit("/", 1)[1]) is None  # bounded: the oldest forgotten
    assert links.path(made[-1].rsplit("/", 1)[1]) == str((tmp_path / "4.wav").resolve())
    assert links.url("/etc/passwd") is None  # outside the served folders: no link at all
    assert ClipLinks([str(tmp_path.resolve())]).url(tmp_path / "4.wav") != made[-1]  # a key per process
    (tmp_path / "4.wav").unlink()
    assert links.path(made[-1].rsplit("/", 1)[1]) is None
