"""The app in a real browser (headless Chromium through Playwright): sliders, results, players, embedding plot.

Skipped, with the reason, when /usr/bin/chromium or the playwright package is missing. Screenshots go to
$EMORANK_SCREENSHOTS (default: the test's tmp folder) under the names README.md uses (screenshot-*.png).
"""
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from test_app import make_handlers, serve
from test_workspace import build_assets, ravdess_checkpoint, ravdess_folder

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")


@pytest.fixture(scope="module")
def url(tmp_path_factory, demo_corpus, session_cache, trained_checkpoint):
    assets = build_assets(tmp_path_factory.mktemp("browser"), demo_corpus, session_cache, trained_checkpoint)
    handlers = make_handlers(assets)
    demo, address = serve(handlers)
    yield address, handlers
    demo.close()


@pytest.fixture(scope="module")
def page(url):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium"),
                                    args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(30_000)
        page.goto(url[0])  # never wait for "networkidle": Gradio keeps a connection open
        yield page
        browser.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    folder = Path(os.environ.get("EMORANK_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


STAR_AT = """([v, a]) => {
    const plot = document.querySelector('#va-plane .js-plotly-plot');
    const star = plot && plot.data && plot.data.find(t => t.name === 'query');
    return !!star && star.x[0] === v && star.y[0] === a;
}"""
FIRST_ROW = "#hits [data-testid='cell-0-1']"  # the Dataframe is an ARIA grid: first data row, clip column


def first_clip(page) -> str:
    return page.locator(FIRST_ROW).inner_text()


def test_sliders_change_caption_and_results_with_players(page, shots, url):
    caption = page.locator("#caption textarea")
    page.wait_for_function("document.querySelectorAll(\"#hits div[role=row]\").length >= 5")
    page.locator(".hit audio").first.wait_for(state="attached")
    page.wait_for_function(STAR_AT, arg=[4, 4])
    before_caption, before_hits = caption.input_value(), first_clip(page)
    expected_caption = url[1].caption(1, 7)
    assert before_caption.startswith("The person is speaking")
    page.locator("#valence input[type=range]").fill("1")
    page.locator("#arousal input[type=range]").fill("7")
    page.wait_for_function(STAR_AT, arg=[1, 7])  # the last query's results are on screen
    page.wait_for_function("document.querySelector('#explain').innerText.includes('mean Δ')")
    after = caption.input_value()
    assert after != before_caption and after == expected_caption
    assert first_clip(page) != before_hits or page.locator(FIRST_ROW).count() == 1
    visible = page.locator(".hit:visible")
    assert visible.count() == 5 and page.locator(".hit audio").count() >= 5
    assert page.locator("#va-plane .js-plotly-plot").count() == 1
    page.screenshot(path=str(shots / "screenshot-explore.png"))
    page.screenshot(path=str(shots / "explore-full.png"), full_page=True)


def test_free_text_query_and_ordinal_strip(page):
    caption = page.locator("#caption textarea")
    caption.fill("A whisper, tender and content.")
    caption.press("Enter")  # a free-text query has no V-A point: the plane drops the star
    page.locator("#va-plane .gtitle", has_text="Free text").wait_for()
    assert page.locator(".strip:visible").count() == 7
    example = "The person is speaking in a negative, fairly energetic way."
    page.get_by_text("Free-text examples").click()
    page.get_by_text("… in a negative, fairly energetic way.").click()  # a shipped example: fills, searches
    page.wait_for_function("(t) => document.querySelector('#caption textarea').value === t", arg=example)


PIXEL = """([id, v, a]) => {
    const gd = document.querySelector(`#${id} .js-plotly-plot`);
    const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, box = gd.getBoundingClientRect();
    return [box.left + xa._offset + xa.l2p(v), box.top + ya._offset + ya.l2p(a)];
}"""


def test_click_on_the_plane_queries_that_point(page):
    page.get_by_role("tab", name="Explore").click()
    page.wait_for_function("!!document.querySelector('#va-plane .js-plotly-plot')")
    page.wait_for_timeout(700)  # the plane may be redrawn (and replaced) by the previous answer: let it settle
    page.evaluate("document.querySelector('#va-plane .js-plotly-plot').scrollIntoView({block: 'center'})")
    v, a = page.evaluate("""() => {  // a grid point with no retrieved clip nearby (a click on a clip plays it)
        const gd = document.querySelector('#va-plane .js-plotly-plot');
        const clips = gd.calcdata[gd._fullData.findIndex(t => t.name === 'retrieved')];
        const free = ([v, a]) => clips.every(pt => Math.hypot(pt.x - v, pt.y - a) > 0.75);
        return [[6.5, 1.5], [1.5, 6.5], [1.5, 1.5], [6.5, 6.5], [4, 6.5], [6.5, 4]].find(free);
    }""")
    for attempt in range(3):  # the plane may still be redrawing the previous answer when first clicked
        x, y = page.evaluate(PIXEL, ["va-plane", v, a])
        page.mouse.click(x, y)
        try:
            page.wait_for_function(STAR_AT, arg=[v, a], timeout=10_000)
            break
        except sync_api.TimeoutError:
            assert attempt < 2, "a click on the plane never queried its point"
    assert float(page.locator("#valence input[type=number]").input_value()) == v


def test_side_by_side_answers_with_the_second_checkpoint(page, shots):
    page.locator("#compare-hits [data-testid='cell-0-1']").wait_for()
    assert page.locator("#compare-hits [data-testid='cell-0-1']").inner_text().strip()
    page.wait_for_function("document.querySelector('#compare-note').innerText.includes('mean Δ')")
    page.locator("#compare").screenshot(path=str(shots / "screenshot-side-by-side.png"))


def test_an_error_is_one_toast_without_a_path(page):
    page.get_by_text("Add a collection").click()
    page.get_by_label("Where").fill("/etc/passwd")
    page.get_by_role("button", name="Add", exact=True).click()
    toast = page.locator(".toast-body")
    toast.first.wait_for()
    page.wait_for_timeout(800)
    assert toast.count() == 1
    message = toast.first.inner_text()
    assert "passwd is neither a folder of audio" in message and "/etc" not in message
    page.locator(".toast-close").first.click()


FARTHEST_CLIP = """() => {
    const gd = document.querySelector('#embedding-plot .js-plotly-plot');
    const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, box = gd.getBoundingClientRect();
    const px = (pt) => [box.left + xa._offset + xa.l2p(pt.x), box.top + ya._offset + ya.l2p(pt.y)];
    const i = gd._fullData.findIndex(t => t.customdata && typeof t.customdata[0] === 'string');
    const others = gd.calcdata.filter((_, j) => j !== i).flat().map(px);
    let best = null, far = -1;  // the clip farthest (on screen) from every other point: a click finds it
    gd.calcdata[i].forEach((pt, n) => {
        const [x, y] = px(pt), d = Math.min(...others.map(([u, w]) => Math.hypot(u - x, w - y)));
        if (d > far) { far = d; best = [gd._fullData[i].customdata[n], x, y]; }
    });
    return best;
}"""


def test_click_on_the_embedding_map_plays_the_clip(page, shots):
    page.get_by_role("tab", name="Embedding space").click()
    page.get_by_label("PCA (fast)").check()
    page.get_by_role("button", name="Draw the embedding space").click()
    page.locator("#embedding-plot .js-plotly-plot").wait_for(state="visible", timeout=60_000)
    page.wait_for_function("document.querySelector('#embedding-plot .js-plotly-plot').data.length >= 2")
    assert page.locator("#embedding-plot .js-plotly-plot .scatterlayer .trace").count() >= 2
    for attempt in range(3):
        # a redraw (the projection or checkpoint changed) replaces the plot and rebinds its click handler within
        # ~0.4 s: find the target point afresh on each attempt, after the plot has settled
        page.wait_for_timeout(700)
        page.evaluate("document.querySelector('#embedding-plot .js-plotly-plot').scrollIntoView({block: 'center'})")
        clip, x, y = page.evaluate(FARTHEST_CLIP)
        page.mouse.click(x, y)
        try:
            page.locator(".map-clicked audio").wait_for(state="attached", timeout=10_000)
            break
        except sync_api.TimeoutError:
            assert attempt < 2, "a click on the embedding map never played its clip"
    assert "clicked" in page.locator(".map-clicked").inner_text()
    page.screenshot(path=str(shots / "screenshot-embedding.png"), full_page=True)


CUT_LABELS = """() => [...document.querySelectorAll('[data-testid="block-info"], label span, button, .tab-nav button')]
    .filter(e => e.offsetParent !== null && e.clientWidth > 0 && e.scrollWidth > e.clientWidth + 1)
    .map(e => e.innerText.slice(0, 60))
    .concat([...document.querySelectorAll('[role=tablist]')]  // a tab row whose names wrap is clipped in height
        .filter(t => t.offsetParent !== null && t.scrollHeight > t.clientHeight + 1).map(t => 'tabs: ' + t.innerText))
    .concat([...document.querySelectorAll('[role=tab]')]  // each visible tab name on one line
        .filter(b => b.offsetParent !== null && b.getClientRects().length > 0
                && b.scrollHeight > parseFloat(getComputedStyle(b).lineHeight) * 1.6 + 16)
        .map(b => 'tab: ' + b.innerText))
    .concat([...document.querySelectorAll('input[role=combobox]')]  // a drop-down's chosen value, whole
        .filter(e => e.offsetParent !== null && e.value && e.scrollWidth > e.clientWidth + 1)
        .map(e => 'dropdown: ' + e.value))
    .concat([...document.querySelectorAll('.token > span, .token')]  // a multiselect's chosen values, whole
        .filter(e => e.offsetParent !== null && e.scrollWidth > e.clientWidth + 1)
        .map(e => 'token: ' + e.innerText))"""


def test_phone_width_shows_every_label_whole(page, url, shots):
    phone = page.context.browser.new_page(viewport={"width": 390, "height": 844})  # the module's one browser
    phone.set_default_timeout(30_000)
    phone.goto(url[0])
    phone.wait_for_function("document.querySelectorAll('#hits div[role=row]').length >= 5")
    phone.locator(".hit audio").first.wait_for(state="attached")
    assert phone.evaluate(CUT_LABELS) == []
    phone.screenshot(path=str(shots / "screenshot-phone.png"), full_page=False)
    phone.close()


ERROR_PILLS = """() => [...document.querySelectorAll('*')]
    .filter(e => e.offsetParent !== null && e.children.length === 0 && (e.innerText || '').trim() === 'Error'
                 && !e.closest('.toast-body')).length"""


def test_a_bad_upload_is_one_toast_without_a_path(page, url, tmp_path):
    """A silent clip and a file that is no audio at all: each one toast, one sentence naming the file only, and
    one error mark (on the summary), not one per output."""
    hush, junk = tmp_path / "hush.wav", tmp_path / "notes.wav"
    sf.write(hush, np.zeros(16000, np.float32), 16000)
    junk.write_text("this is not audio\n" * 50)
    page = page.context.browser.new_page(viewport={"width": 1280, "height": 900})  # its own page: no state shared
    page.set_default_timeout(30_000)
    page.goto(url[0])
    page.get_by_role("tab", name="Analyse").click()
    toast = page.locator(".toast-body")
    for path, says in ((hush, "hush.wav: silent audio"), (junk, "notes.wav: not a readable audio file")):
        marks = page.evaluate(ERROR_PILLS)  # marks already on the page (the previous upload's summary)
        page.locator("#analyse-audio input[type=file]").set_input_files(str(path))
        toast.first.wait_for()
        page.wait_for_timeout(1500)  # a second toast or more marks would show by now
        messages = [t.inner_text().split("\n")[-1] for t in toast.all()]
        assert len(messages) == 1 and messages[0].startswith(says), messages
        assert messages[0].count(". ") == 0 and str(tmp_path) not in messages[0] and "/tmp" not in messages[0]
        assert page.evaluate(ERROR_PILLS) <= marks + 1
        page.locator(".toast-close").first.click()
        toast.first.wait_for(state="detached")
        page.locator("#analyse-audio").get_by_label("Clear").click()  # back to an empty upload box
    page.close()


def test_wide_window_shows_every_label_whole(page, url):
    wide = page.context.browser.new_page(viewport={"width": 1400, "height": 1000})
    wide.set_default_timeout(30_000)
    wide.goto(url[0])
    wide.wait_for_function("document.querySelectorAll('#hits div[role=row]').length >= 5")
    wide.locator(".hit audio").first.wait_for(state="attached")
    assert wide.evaluate(CUT_LABELS) == []
    wide.close()


def choose(page, elem_id: str, name: str) -> None:
    """Pick the option of a drop-down whose label starts with `name` (typed to filter, then clicked)."""
    import re

    box = page.locator(f"#{elem_id} input")
    box.click()
    box.fill(name)
    page.locator("[role=option]", has_text=name).first.click()
    sync_api.expect(box).to_have_value(re.compile("^" + re.escape(name)))


def test_a_real_speech_checkpoint_finds_neighbours_in_its_own_corpus(page, url, tmp_path, demo_corpus,
                                                                     trained_checkpoint):
    """Analyse with a checkpoint trained on RAVDESS: the nearest clips come from the RAVDESS collection (not the
    synthetic demo shown in Explore), each with its distance from the star, and the summary says where from."""
    handlers = url[1]
    handlers.ws.add_checkpoint("emotionrankclap-ravdess",
                               ravdess_checkpoint(tmp_path / "real", trained_checkpoint))
    handlers.ws.add_collection(ravdess_folder(tmp_path / "RAVDESS", demo_corpus), "ravdess test")
    voice = sorted((Path(demo_corpus).parent / "audio").glob("*.wav"))[3]
    page = page.context.browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(60_000)
    page.goto(url[0])
    page.get_by_role("tab", name="Analyse").click()
    choose(page, "analyse-checkpoint", "emotionrankclap-ravdess")
    page.locator("#analyse-audio input[type=file]").set_input_files(str(voice))
    page.wait_for_function("document.querySelector('#analyse-summary').innerText.includes('Nearest clips from')")
    assert "ravdess test" in page.locator("#analyse-summary").inner_text()
    cell = "#analyse-hits [data-testid='cell-{}-{}']"
    page.locator(cell.format(4, 1)).wait_for()
    rows = [[page.locator(cell.format(r, c)).inner_text().strip() for c in (1, 4)] for r in range(5)]
    for clip, distance in rows:
        assert clip.startswith("Actor_"), rows  # a RAVDESS clip, not a synthetic one
        assert float(distance) >= 0, rows  # the distance column is filled
    page.close()


BROKEN_WORDS = """(selector) => {  // words split across lines (a break after a hyphen is a line break, not a cut word)
  const out = [];
  for (const cell of document.querySelectorAll(selector)) {
    if (cell.offsetParent === null) continue;
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (const m of node.data.matchAll(/[^\\s-]+-?/g)) {
        const range = document.createRange();
        range.setStart(node, m.index);
        range.setEnd(node, m.index + m[0].length);
        const lines = new Set([...range.getClientRects()].filter(r => r.width > 0).map(r => Math.round(r.top)));
        if (lines.size > 1) out.push(m[0]);
      }
    }
  }
  return out;
}"""
TABLE_FITS = """() => {  // every column of the results table inside the visible width of its panel
  const wrap = document.querySelector('#eval-table .table-wrap');
  const right = wrap.getBoundingClientRect().right + 1;
  return [...document.querySelectorAll('#eval-table th')].filter(th => th.getBoundingClientRect().right > right)
    .map(th => th.innerText);
}"""
SPILLED = """() => [...document.querySelectorAll('#eval-table th, #eval-table td')]  // text wider than its own cell
  .filter(c => c.offsetParent !== null && [...c.querySelectorAll('span')].some(s => s.scrollWidth > c.clientWidth))
  .map(c => c.innerText)"""


def open_tab(page, name: str) -> None:
    """A tab by name, through Gradio's "More tabs" menu when the window is too narrow to show it."""
    tab = page.get_by_role("tab", name=name)
    if tab.count() and tab.first.is_visible():
        tab.first.click()
        return
    page.get_by_label("More tabs").click()
    page.locator(".overflow-dropdown button", has_text=name).click()


def test_evaluate_tables_and_dropdowns_show_every_word_whole_at_real_widths(page, url, shots):
    """At 1400 px the results table fits its panel; at 1400 and 390 px no word of the results or the significance
    tables is split across lines (they scroll instead), and every drop-down shows its whole value."""
    for width in (1400, 390):
        view = page.context.browser.new_page(viewport={"width": width, "height": 1000})
        view.set_default_timeout(120_000)
        view.goto(url[0])
        view.wait_for_function("document.querySelectorAll('#hits div[role=row]').length >= 2")
        view.locator("#compare-checkpoint input").wait_for()
        assert view.evaluate(CUT_LABELS) == [], width  # Explore: drop-downs (checkpoint, collection, compare)
        open_tab(view, "Evaluate")
        for slider, value in (("eval-trials", "2"), ("eval-lists", "10")):  # the quickest run
            box = view.locator(f"#{slider} input[type=number]")
            box.fill(value)
            box.press("Enter")
        view.get_by_role("button", name="Run the paper's tests").click()
        view.locator("#eval-table [data-testid='cell-1-0']").wait_for()
        view.get_by_text("Significance between systems").click()
        view.locator("#eval-paper table").first.wait_for()
        view.wait_for_timeout(500)
        assert view.evaluate(BROKEN_WORDS, "#eval-table th, #eval-table td, #eval-paper th, #eval-paper td") == []
        assert view.evaluate(SPILLED) == [], width
        if width == 1400:
            assert view.evaluate(TABLE_FITS) == []
        assert view.evaluate(CUT_LABELS) == [], width  # Evaluate: the multiselect's values and the tables' labels
        view.screenshot(path=str(shots / f"evaluate-{width}.png"), full_page=True)
        view.close()
