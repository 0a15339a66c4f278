"""The README's screenshots, taken from the app on the full demo collection (1000 clips) at 1400 px and 390 px.

    EMORANK_DATA=/tmp/emorank-demo-data python bench/screenshots.py --out assets

Launches `python app.py` on a free loopback port (the demo is built first if the data folder is new), opens it in
headless Debian Chromium through playwright, and writes screenshot-explore.png (a slider query given by a share
link), screenshot-side-by-side.png (the same query answered by a second checkpoint), screenshot-embedding.png (the
PCA map of both modalities) and screenshot-phone.png (390 px wide). Requests go to 127.0.0.1 only.
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
QUERY = "?checkpoint=emotionrankclap&valence=2&arousal=6.5"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float) -> None:
    end = time.time() + timeout
    while time.time() < end:
        try:
            urllib.request.urlopen(url, timeout=5)
            return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"the app at {url} did not answer within {timeout:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="assets", help="folder for the PNG files")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for the demo to be ready")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    server = subprocess.Popen([sys.executable, "app.py", "--port", str(port), "--no-local-paths"],
                              env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    try:
        wait_http(url, 120)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(args.timeout * 1000)
            page.goto(url + QUERY)
            page.wait_for_function("document.querySelectorAll('#hits div[role=row]').length >= 5")
            page.locator(".hit audio").first.wait_for(state="attached")
            page.wait_for_timeout(1500)
            page.screenshot(path=str(out / "screenshot-explore.png"))
            if not page.locator("#compare-hits").is_visible():
                page.locator("#compare .label-wrap").first.click()  # open the accordion
            page.locator("#compare-hits [data-testid='cell-0-1']").wait_for()
            page.wait_for_function("document.querySelector('#compare-note').innerText.includes('mean Δ')")
            page.wait_for_timeout(800)
            page.locator("#compare").screenshot(path=str(out / "screenshot-side-by-side.png"))
            page.get_by_role("tab", name="Embedding space").click()
            page.get_by_label("PCA (fast)").check()
            page.get_by_role("button", name="Draw the embedding space").click()
            page.wait_for_function("(() => { const g = document.querySelector('#embedding-plot .js-plotly-plot');"
                                   " return g && g.data && g.data.length >= 2; })()")
            page.wait_for_timeout(1500)
            page.locator("#embedding-plot").screenshot(path=str(out / "screenshot-embedding.png"))
            phone = browser.new_page(viewport={"width": 390, "height": 844})
            phone.set_default_timeout(args.timeout * 1000)
            phone.goto(url + QUERY)
            phone.wait_for_function("document.querySelectorAll('#hits div[role=row]').length >= 5")
            phone.wait_for_timeout(1500)
            phone.screenshot(path=str(out / "screenshot-phone.png"))
            browser.close()
    finally:
        server.terminate()
        server.wait(30)
    for name in ("explore", "side-by-side", "embedding", "phone"):
        f = out / f"screenshot-{name}.png"
        print(f"{f}: {f.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
