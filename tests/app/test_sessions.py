"""Memory a visitor can make the server hold: the sessions Gradio keeps and the workspace's caches are bounded,
whatever the number of visitors or of distinct queries."""
import gc
import json
import os
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from emorank.app.bounds import DEMO_TEST, MAX_SESSIONS
from emorank.app.build import ensure_demo
from emorank.app.jobs import TrainingJobs
from emorank.app.handlers import Handlers
from emorank.app.workspace import Workspace
from test_app import free_port, load_app
from test_app_security import fn_index

MB = 2 ** 20
PER_SESSION_MB = 1.0  # the stated ceiling of what one kept session may cost (measured: about 0.7 MB)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MB


@pytest.fixture(scope="module")
def assets(tmp_path_factory, demo_corpus, session_cache, trained_checkpoint):
    root = tmp_path_factory.mktemp("sessions")
    data, shipped = root / "data", root / "checkpoints"
    data.mkdir()
    os.symlink(Path(demo_corpus).parent, data / "corpus")
    for name in ("emotionrankclap", "copy-1", "copy-2", "copy-3"):
        shutil.copytree(trained_checkpoint, shipped / name)
    return ensure_demo(data, lambda f, m: None, checkpoint_dirs=[shipped], cache_path=session_cache.path)


def test_sessions_kept_and_memory_stay_bounded_under_many_visitors(assets):
    """3 x MAX_SESSIONS visitors, each its own session (raw queue protocol, distinct session hashes), each running
    the page's search view (table, V-A plane, players: what a visit leaves in its session)."""
    ws = Workspace(assets)
    h = Handlers(ws, TrainingJobs(on_checkpoint=ws.add_checkpoint, cache_path=assets.cache_path))
    module = load_app()
    demo = module.build_app(h)
    _, url, _ = module.launch(demo, h, warm=False, server_name="127.0.0.1", server_port=free_port(),
                              prevent_thread_lock=True, quiet=True)
    url, index = url.rstrip("/"), fn_index(demo, "explore")
    http = httpx.Client(timeout=120, limits=httpx.Limits(max_connections=8))

    def visit(i: int) -> bool:
        session, v, a = uuid.uuid4().hex, 1 + (i % 13) / 2, 1 + (i // 13 % 13) / 2
        joined = http.post(f"{url}/gradio_api/queue/join", json={
            "data": ["emotionrankclap", DEMO_TEST, h.caption(v, a), v, a, 5], "fn_index": index,
            "session_hash": session, "event_data": None, "trigger_id": None})
        assert joined.status_code == 200, joined.text
        with http.stream("GET", f"{url}/gradio_api/queue/data", params={"session_hash": session}) as stream:
            for line in stream.iter_lines():
                if line.startswith("data:") and (msg := json.loads(line[5:])).get("msg") == "process_completed":
                    return msg["success"]
        return False

    def crowd(start: int, n: int) -> float:
        with ThreadPoolExecutor(4) as pool:
            assert all(pool.map(visit, range(start, start + n)))
        gc.collect()
        return rss_mb()

    try:
        crowd(0, 8)  # warm: index, caption grid, plot code
        before = rss_mb()
        filled = crowd(8, MAX_SESSIONS)
        after = crowd(8 + MAX_SESSIONS, 2 * MAX_SESSIONS)
        kept = len(demo.state_holder.session_data)
    finally:
        http.close()
        demo.close()
    print(f"sessions kept {kept}; RSS {before:.0f} MB -> {filled:.0f} MB after {MAX_SESSIONS} visitors -> "
          f"{after:.0f} MB after {2 * MAX_SESSIONS} more")
    assert kept <= MAX_SESSIONS
    assert after - before < MAX_SESSIONS * PER_SESSION_MB  # the stated ceiling: MAX_SESSIONS sessions' worth
    assert after - filled < 0.25 * MAX_SESSIONS * PER_SESSION_MB  # twice as many visitors again: memory flat


def test_query_embeddings_models_and_grids_are_bounded_across_checkpoints(assets):
    ws = Workspace(assets, max_indexes=2, max_queries=100)
    names = sorted(ws.checkpoints())
    assert len(names) == 4
    for name in names:  # each checkpoint once: a model, its caption grid and its query cache (169 captions)
        assert len(ws.queries(name)) == 100
        ws.grid(name)
    assert len(ws._queries) == len(ws._grids) == 2 and len(ws._models) <= 2
    assert [k[0] for k in ws._queries] == names[-2:]  # the least recently used went first
    ws.queries(names[0])
    assert [k[0] for k in ws._queries] == [names[-1], names[0]]
