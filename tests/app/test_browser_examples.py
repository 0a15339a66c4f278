"""The Explore tab's examples in a real browser, on the demo a visitor gets (the shipped checkpoint, the demo test
split): each example, clicked, and the sliders set to the point it means (a shared link), show five clips whose Δ
all lie within EXAMPLE_MAX_DELTA. Skipped without Chromium or playwright."""
import os
import shutil

import pytest

from emorank.app.bounds import DEMO_TEST
from emorank.app.formatting import EXAMPLE_MAX_DELTA, example_caption_points

from test_app import make_handlers, serve
from test_browser import ARGS, CHROMIUM

if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")

CELL = "#hits [data-testid='cell-{}-{}']"  # clip column 1, distance column 4


@pytest.fixture(scope="module")
def page(app_demo):
    handlers = make_handlers(app_demo)
    demo, url = serve(handlers)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium"),
                                    args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(60_000)
        yield page, url, handlers
        browser.close()
    demo.close()


def shown(page) -> list[tuple[str, float]]:
    return [(page.locator(CELL.format(r, 1)).inner_text().strip(), float(page.locator(CELL.format(r, 4)).inner_text()))
            for r in range(5)]


def wait_for_clips(page, ids: list[str]) -> None:
    page.wait_for_function("""(ids) => ids.every((id, r) => {
        const cell = document.querySelector(`#hits [data-testid='cell-${r}-1']`);
        return cell && cell.innerText.trim() === id; })""", arg=ids)


def test_each_example_and_its_point_show_five_clips_within_the_stated_distance(page):
    page, url, h = page
    page.goto(url)
    page.locator(CELL.format(4, 1)).wait_for()
    page.get_by_text("Free-text examples").click()
    for caption, (v, a) in example_caption_points():
        _, expected = h.ws.search("emotionrankclap", DEMO_TEST, caption, k=5, point=(v, a))
        page.get_by_text("…" + caption.removeprefix("The person is speaking"), exact=True).click()
        wait_for_clips(page, [e["id"] for e in expected])
        # a free-text query shows Δ from where the checkpoint places the text; the bar is about the point it means
        assert all(e["distance"] <= EXAMPLE_MAX_DELTA for e in expected), (caption, expected)
    for _, (v, a) in example_caption_points():  # the sliders at the point: what a shared link opens
        _, expected = h.ws.search("emotionrankclap", DEMO_TEST, h.caption(v, a), k=5, point=(v, a))
        page.goto(f"{url}?checkpoint=emotionrankclap&valence={v:g}&arousal={a:g}")
        wait_for_clips(page, [e["id"] for e in expected])
        assert all(d <= EXAMPLE_MAX_DELTA for _, d in shown(page)), ((v, a), shown(page))
