"""Benchmark: the demo app's slider-to-results latency through its API, and its start-up times.

    python bench/app_latency.py [--data DIR] [--checkpoints DIR ...] [--queries 50] [--k 5] [--json out.json]
    python bench/app_latency.py --startup [--data DIR] [--checkpoints DIR ...]

(run from the repository root). Latency mode launches the app in this process on the demo collection (the demo
corpus test split), waits for its background warm-up (feature fill, caption grids, UMAP), then sends `--queries`
random valence-arousal points (uniform on the sliders' 0.5 grid, seeded) through gradio_client, from a separate
client process, and reports median and p95 wall-clock round trips of:

* retrieve         the JSON endpoint `/retrieve` (valence, arousal -> caption + top-k clips);
* slider (UI)      what a slider move triggers in the browser: `/slide` (caption, table, V-A plane and k audio
                   players), the audio files not downloaded (a browser fetches them lazily);
* slider + audio   the same, with the k audio files downloaded by the client.

When no checkpoint is found, a quick EmotionRankCLAP is trained on the demo corpus first (data/runs/bench-erc).

Start-up mode runs `python app.py` as a subprocess on a fresh data folder in a temporary folder (first start: the
page answers while the corpus and the feature cache build in the background), then `--repeat` times again on the
same folder (restarts), timing each until the page answers HTTP 200 and until Explore is usable (a `/retrieve`
query answered).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
WARM_THREADS = ("emorank-warm", "emorank-umap-warmup")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def summary(seconds: list[float]) -> dict:
    ms = np.asarray(seconds) * 1000.0
    return {"n": int(ms.size), "median_ms": float(np.median(ms)), "p95_ms": float(np.percentile(ms, 95)),
            "mean_ms": float(ms.mean()), "max_ms": float(ms.max())}


def ensure_checkpoint(data: Path, checkpoint_dirs: list[str] | None) -> list[str] | None:
    """The checkpoint folders to use; trains a quick EmotionRankCLAP into data/runs when there is none."""
    from emorank.app.bounds import REPO_DIR
    from emorank.app.build import ensure_demo, find_checkpoints

    dirs = [Path(d) for d in checkpoint_dirs] if checkpoint_dirs else [REPO_DIR / "checkpoints"]
    if find_checkpoints(dirs, data / "runs"):
        return checkpoint_dirs
    from emorank.data.manifest import read_csv_manifest
    from emorank.encoders.cache import FeatureCache
    from emorank.training.trainer import TrainConfig, train

    assets = ensure_demo(data, checkpoint_dirs=dirs, splits=("train", "dev", "test"))
    print("no checkpoint found: training a quick EmotionRankCLAP (15 epochs) into data/runs/bench-erc", flush=True)
    with FeatureCache(assets.cache_path) as cache:
        train(read_csv_manifest(assets.manifest_path), TrainConfig(epochs=15), data / "runs" / "bench-erc",
              cache=cache, progress=False)
    return checkpoint_dirs


def latency(args) -> dict:
    """Launch the app here, wait for its warm-up, then time the queries from a separate client process (so the
    client does not share this process's interpreter lock with the server, as a browser would not)."""
    import app  # noqa: E402 (the repository's app.py)

    from emorank.app.bounds import DEMO_TEST

    data = Path(args.data).resolve()
    dirs = ensure_checkpoint(data, args.checkpoints)
    t0 = time.perf_counter()
    demo, h = app.create(str(data), checkpoint_dirs=dirs)
    _, url, _ = app.launch(demo, h, server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True,
                           quiet=True)
    ready = time.perf_counter() - t0
    while any(t.name in WARM_THREADS for t in threading.enumerate()):
        time.sleep(0.5)
    warm = time.perf_counter() - t0
    checkpoint = h.default_checkpoint()
    cmd = [sys.executable, __file__, "--client", url, "--checkpoint", checkpoint, "--queries", str(args.queries),
           "--k", str(args.k), "--seed", str(args.seed)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=args.timeout)
    except subprocess.CalledProcessError as err:
        raise RuntimeError(f"the client process failed:\n{err.stderr[-3000:]}") from err
    finally:
        demo.close()
    return {"url": url, "checkpoint": checkpoint, "collection": DEMO_TEST, "k": args.k,
            "clips": len(h.ws.source(DEMO_TEST).manifest), "launch_s": ready, "warm_s": warm,
            "cpus": os.cpu_count(), "load_avg": os.getloadavg(), "latency": json.loads(out.stdout)}


def client_queries(url: str, checkpoint: str, queries: int, k: int, seed: int) -> dict:
    """Time each path over the same random V-A points (run in the client process)."""
    from gradio_client import Client

    from emorank.app.bounds import DEMO_TEST

    rng = np.random.default_rng(seed)
    points = rng.integers(0, 13, size=(queries, 2)) * 0.5 + 1.0  # the sliders' grid 1.0, 1.5, ..., 7.0
    lean, full = Client(url, verbose=False, download_files=False), Client(url, verbose=False)
    cases = {"retrieve": lambda v, a: lean.predict(checkpoint=checkpoint, collection=DEMO_TEST, valence=v,
                                                   arousal=a, k=k, api_name="/retrieve"),
             "slider (UI)": lambda v, a: lean.predict(checkpoint, DEMO_TEST, v, a, k, api_name="/slide"),
             "slider + audio": lambda v, a: full.predict(checkpoint, DEMO_TEST, v, a, k, api_name="/slide")}
    results = {}
    for name, call in cases.items():
        for _ in range(2):  # untimed warm-up of this path
            call(1.0, 7.0)
        times = []
        for v, a in points:
            t = time.perf_counter()
            call(float(v), float(a))
            times.append(time.perf_counter() - t)
        results[name] = summary(times)
    return results


def start_once(data: Path, checkpoint_dirs: list[str] | None, timeout: float) -> dict:
    """Seconds from `python app.py` to the first HTTP 200 of the page ("page_s") and to the first answered
    /retrieve query ("usable_s": Explore works)."""
    import httpx
    from gradio_client import Client

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    cmd = [sys.executable, str(ROOT / "app.py"), "--data", str(data), "--port", str(port)]
    if checkpoint_dirs:
        cmd += ["--checkpoints", *checkpoint_dirs]
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    out: dict = {}
    try:
        while time.perf_counter() - t0 < timeout:
            if proc.poll() is not None:
                raise RuntimeError(f"app.py exited with {proc.returncode}")
            try:
                if "page_s" not in out:
                    if httpx.get(url, timeout=5).status_code == 200:
                        out["page_s"] = time.perf_counter() - t0
                    continue
                client = Client(url, verbose=False, download_files=False)
                names = [c["name"] for c in client.predict(api_name="/checkpoints")]
                client.predict(checkpoint="emotionrankclap" if "emotionrankclap" in names else names[0],
                               valence=6.0, arousal=2.0, k=5, api_name="/retrieve")
                out["usable_s"] = time.perf_counter() - t0
                return out
            except Exception:  # noqa: BLE001 - not up (or not built) yet
                time.sleep(0.25)
        raise TimeoutError(f"app.py did not answer within {timeout:.0f} s")
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def startup(args) -> dict:
    """A fresh data folder in a temporary folder (first start: the demo builds in the background while the page
    answers), then restarts on the same folder."""
    data = Path(args.data).resolve() if args.data else Path(tempfile.mkdtemp(prefix="emorank-startup-")) / "demo"
    if data.exists() and any(data.iterdir()) and not args.data:
        shutil.rmtree(data)
    first = start_once(data, args.checkpoints, args.timeout)
    later = [start_once(data, args.checkpoints, args.timeout) for _ in range(args.repeat)]
    return {"data": str(data), "first": first, "later": later, "cpus": os.cpu_count(), "load_avg": os.getloadavg()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="demo data folder (latency default: $EMORANK_DATA or ./data/demo; "
                        "start-up default: a fresh temporary folder)")
    parser.add_argument("--checkpoints", nargs="+", help="folders of checkpoints (default: ./checkpoints)")
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--startup", action="store_true", help="measure first and later start-up instead")
    parser.add_argument("--repeat", type=int, default=2, help="later starts to time (start-up mode)")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--client", help=argparse.SUPPRESS)  # internal: the timing client process (server URL)
    parser.add_argument("--checkpoint", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))  # a script in bench/: make the repository's emorank and app.py importable
    if args.client:
        print(json.dumps(client_queries(args.client, args.checkpoint, args.queries, args.k, args.seed)))
        return
    if args.startup:
        out = startup(args)
        first = out["first"]
        print(f"fresh data folder: page {first['page_s']:.1f} s, explore usable {first['usable_s']:.1f} s; restarts: "
              + ", ".join(f"page {r['page_s']:.1f} s / usable {r['usable_s']:.1f} s" for r in out["later"])
              + f" (load average {out['load_avg'][0]:.1f} on {out['cpus']} CPUs)")
    else:
        from emorank.app.build import default_data_dir
        args.data = args.data or str(default_data_dir())
        out = latency(args)
        print(f"{out['clips']} clips ({out['collection']}), checkpoint {out['checkpoint']}, k={out['k']}; app "
              f"launched in {out['launch_s']:.1f} s, warm after {out['warm_s']:.1f} s; load average "
              f"{out['load_avg'][0]:.1f} on {out['cpus']} CPUs")
        print(f"{'path':<16}{'median ms':>11}{'p95 ms':>9}{'max ms':>9}")
        for name, r in out["latency"].items():
            print(f"{name:<16}{r['median_ms']:>11.1f}{r['p95_ms']:>9.1f}{r['max_ms']:>9.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
