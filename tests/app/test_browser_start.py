"""First start in a real browser: the page answers while the demo builds in the background, shows the build's
progress, then the first results by itself (headless Chromium; skipped without it)."""
import os
import shutil
import threading
import time

import pytest

import emorank.app.build

from test_app import free_port, load_app
from test_browser import ARGS, CHROMIUM
from test_workspace import build_assets

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")


RELEASE = threading.Event()  # the build's feature step waits for it, so "while building" is not a race


@pytest.fixture(scope="module")
def fresh_app(tmp_path_factory, demo_corpus, session_cache, trained_checkpoint):
    shipped = build_assets(tmp_path_factory.mktemp("shipped"), demo_corpus, session_cache,
                           trained_checkpoint).checkpoint_dirs
    real_fill = emorank.app.build.fill_audio_features

    def gated_fill(*args, **kwargs):
        assert RELEASE.wait(120), "the test never let the build continue"
        return real_fill(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(emorank.app.build, "fill_audio_features", gated_fill)
        app = load_app()
        t0 = time.perf_counter()
        demo, h = app.create(str(tmp_path_factory.mktemp("fresh") / "data"), warm=False, checkpoint_dirs=shipped,
                             cache_path=session_cache.path, n=16, workers=1)
        _, url, _ = app.launch(demo, h, warm=False, server_name="127.0.0.1", server_port=free_port(),
                               prevent_thread_lock=True, quiet=True)
        yield url, h, time.perf_counter() - t0
        RELEASE.set()
        h.ws.build.ready.wait(120)
        demo.close()


def test_the_page_answers_while_the_demo_builds_then_shows_results(fresh_app):
    url, h, launched_s = fresh_app
    assert launched_s < 30 and not h.ws.build.ready.is_set()  # up before the corpus's features exist
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium"),
                                    args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(120_000)
        page.goto(url)
        banner = page.locator("#build-status")
        banner.wait_for(state="visible", timeout=30_000)
        assert "Preparing the demo" in banner.inner_text()
        RELEASE.set()  # let the build finish: the results must then appear by themselves
        page.wait_for_function("document.querySelectorAll('#hits div[role=row]').length >= 2")  # results, unasked
        assert h.ws.build.ready.is_set()
        banner.wait_for(state="hidden", timeout=30_000)
        browser.close()
