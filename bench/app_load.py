"""Benchmark: the demo app under many visitors at once, idle and while a training job runs.

    EMORANK_DATA=/tmp/emorank-demo-data python bench/app_load.py [--clients 20] [--requests 25] [--json out.json]

(run from the repository root). Launches the app in this process on 127.0.0.1 (random port; no background
warm-up, the index of the default checkpoint on the demo test split is built before timing), then times `/retrieve`
calls (random valence-arousal points on the sliders' 0.5 grid, seeded, k=5) from separate client processes (so the
clients do not share this process's interpreter lock), each visitor speaking Gradio's queue protocol over one
keep-alive HTTP connection as a browser does (`--via gradio_client` uses gradio_client instead; its own CPU cost
per call, about 50 ms here against the server's 7 ms, then bounds what 2 shared cores can show):

1. single client: `--single` sequential calls (the baseline);
2. idle: `--clients` clients at once (threads spread over `--procs` processes), `--requests` calls each;
3. training: the same load while a training job started through `/train` runs (stopped afterwards).

Prints median, p95 and max round trips, requests per second and errors per phase, with ratios against the single
client, the server process's memory (RSS at the end of each phase and its peak, sampled every 0.2 s), the sessions
Gradio keeps, and the machine's 1-minute load average as each phase starts (the machine may be shared). Requests
go to 127.0.0.1 only; every phase is bounded in count and by `--timeout`.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def summary(seconds: list[float], wall: float, errors: int) -> dict:
    ms = np.asarray(seconds) * 1000.0
    return {"n": int(ms.size), "errors": errors, "median_ms": float(np.median(ms)) if ms.size else float("nan"),
            "p95_ms": float(np.percentile(ms, 95)) if ms.size else float("nan"),
            "max_ms": float(ms.max()) if ms.size else float("nan"), "wall_s": wall,
            "rps": ms.size / wall if wall > 0 else float("nan")}


# ------------------------------------------------------------------------------------------- client process
class QueueClient:
    """A visitor as the browser's JavaScript client is one: POST /gradio_api/queue/join, then read the session's
    SSE stream /gradio_api/queue/data until the event completes (one keep-alive HTTP connection per visitor).
    Same protocol and server work as gradio_client, without its per-call helper threads and 50 ms polling."""

    def __init__(self, url: str) -> None:
        import uuid

        import httpx

        self.url, self.http, self.session = url.rstrip("/"), httpx.Client(timeout=60), uuid.uuid4().hex
        config = self.http.get(f"{self.url}/config").json()
        self.fn_index = {d.get("api_name"): d["id"] for d in config["dependencies"]}

    def predict(self, *data, api_name: str):
        joined = self.http.post(f"{self.url}/gradio_api/queue/join",
                                json={"data": list(data), "fn_index": self.fn_index[api_name.lstrip("/")],
                                      "session_hash": self.session, "event_data": None, "trigger_id": None})
        joined.raise_for_status()
        event = joined.json()["event_id"]
        with self.http.stream("GET", f"{self.url}/gradio_api/queue/data",
                              params={"session_hash": self.session}) as stream:
            for line in stream.iter_lines():
                if line.startswith("data:"):
                    msg = json.loads(line[5:])
                    if msg.get("msg") == "process_completed" and msg.get("event_id") == event:
                        if not msg.get("success"):
                            raise RuntimeError(str(msg.get("output", {}).get("error")))
                        return msg["output"]["data"][0]
        raise RuntimeError("the event stream ended before the result")


def client_process(url: str, checkpoint: str, collection: str, threads: int, requests: int, seed: int,
                   start_at: float, via: str = "http") -> dict:
    """`threads` clients (QueueClient, or gradio_client.Client with via="gradio_client"), `requests` sequential
    /retrieve calls each, all starting at wall-clock time `start_at`; returns the round trips and errors."""
    if via == "gradio_client":
        from gradio_client import Client

        clients = [Client(url, verbose=False, download_files=False) for _ in range(threads)]
    else:
        clients = [QueueClient(url) for _ in range(threads)]
    times: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        rng = np.random.default_rng(seed * 1000 + i)
        points = rng.integers(0, 13, size=(requests, 2)) * 0.5 + 1.0  # the sliders' grid 1.0, 1.5, ..., 7.0
        for v, a in points:
            t = time.perf_counter()
            try:
                res = clients[i].predict(checkpoint, collection, "", float(v), float(a), 5, api_name="/retrieve")
                ok = len(res["hits"]) == 5
            except Exception as err:  # noqa: BLE001 - counted, reported
                ok, res = False, repr(err)[:200]
            with lock:
                (times.append(time.perf_counter() - t) if ok else errors.append(str(res)[:200]))

    time.sleep(max(0.0, start_at - time.time()))
    cpu = time.process_time()
    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return {"times": times, "errors": errors, "cpu_s": time.process_time() - cpu}


def load(url: str, checkpoint: str, collection: str, clients: int, requests: int, procs: int, seed: int,
         timeout: float, via: str) -> dict:
    """`clients` concurrent clients spread over `procs` processes; one summary over all their calls."""
    procs = max(1, min(procs, clients))
    share = [clients // procs + (i < clients % procs) for i in range(procs)]
    start_at = time.time() + 4.0 + 0.5 * procs  # every process imported and connected before the first call
    cmd = lambda i, n: [sys.executable, __file__, "--client", url, "--checkpoint", checkpoint,  # noqa: E731
                        "--collection", collection, "--threads", str(n), "--requests", str(requests),
                        "--seed", str(seed + i), "--start-at", repr(start_at), "--via", via]
    running = [subprocess.Popen(cmd(i, n), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for i, n in enumerate(share) if n]
    times, errors, client_cpu = [], [], 0.0
    server_cpu = None
    for p in running:
        if server_cpu is None:
            time.sleep(max(0.0, start_at - time.time()))
            server_cpu = time.process_time()  # this process: the server (and a training job's thread, if any)
        out, err = p.communicate(timeout=timeout)
        if p.returncode:
            raise RuntimeError(f"a client process failed:\n{err[-3000:]}")
        res = json.loads(out)
        times += res["times"]
        errors += res["errors"]
        client_cpu += res["cpu_s"]
    wall = time.time() - start_at
    out = summary(times, wall, len(errors))
    n = max(1, len(times) + len(errors))
    out.update(first_errors=errors[:3], server_cpu_ms_per_request=1000 * (time.process_time() - server_cpu) / n,
               client_cpu_ms_per_request=1000 * client_cpu / n)
    return out


# ------------------------------------------------------------------------------------------- server side
class MemoryWatch:
    """This process's resident memory (MB), sampled every 0.2 s in a thread; `phase()` returns (and resets) the
    peak since the last call."""

    def __init__(self) -> None:
        self.peak, self._stop = self.rss(), threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    @staticmethod
    def rss() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, self.rss())

    def phase(self) -> dict:
        now = self.rss()
        out = {"rss_mb": now, "peak_rss_mb": max(self.peak, now)}
        self.peak = now
        return out

    def stop(self) -> None:
        self._stop.set()


def timed(phase: Callable[[], dict], memory: MemoryWatch, demo) -> dict:
    """Run one load phase; add the load average at its start, memory and the sessions Gradio keeps."""
    load_avg = os.getloadavg()
    memory.phase()
    out = phase()
    out.update(memory.phase(), load_avg_1min=load_avg[0], sessions_kept=len(demo.state_holder.session_data))
    return out


def measure(args) -> dict:
    import app  # noqa: E402 (the repository's app.py)
    from gradio_client import Client

    from emorank.app.bounds import DEMO_ALL, DEMO_TEST
    from emorank.app.build import ensure_demo

    data = Path(args.data).resolve()
    ensure_demo(data, splits=("train", "dev", "test"))  # training needs every split's features (built once)
    demo, h = app.create(str(data))
    _, url, _ = app.launch(demo, h, warm=False, server_name="127.0.0.1", server_port=free_port(),
                           prevent_thread_lock=True, quiet=True)
    checkpoint = h.default_checkpoint()
    memory = MemoryWatch()
    out = {"checkpoint": checkpoint, "collection": DEMO_TEST, "clips": len(h.ws.source(DEMO_TEST).manifest),
           "cpus": os.cpu_count(), "load_avg_before": os.getloadavg(), "clients": args.clients,
           "requests": args.requests, "rss_mb_at_start": memory.rss()}
    common = dict(checkpoint=checkpoint, collection=DEMO_TEST, procs=args.procs, seed=args.seed,
                  timeout=args.timeout, via=args.via)
    out["via"] = args.via
    try:
        load(url, clients=1, requests=5, **common)  # untimed warm-up of every path
        out["single"] = timed(lambda: load(url, clients=1, requests=args.single, **common), memory, demo)
        out["idle"] = timed(lambda: load(url, clients=args.clients, requests=args.requests, **common), memory, demo)
        control = Client(url, verbose=False, download_files=False)
        control.predict(DEMO_ALL, "emotionrankclap", 500, 64, 1e-4, 0, "bench-load", False,
                        api_name="/train")  # an undocumented endpoint (not an MCP tool): positional arguments
        t0 = time.time()
        while time.time() - t0 < args.timeout:  # wait until it trains (features ready, first step done)
            status = control.predict(api_name="/training_status")
            if status["step"] >= 1 or not status["active"]:
                break
            time.sleep(0.5)
        if not status["active"]:
            raise RuntimeError(f"the training job ended before the load: {status['summary']}")
        out["training"] = timed(lambda: load(url, clients=args.clients, requests=args.requests, **common), memory,
                                demo)
        out["training"]["job_still_running"] = control.predict(api_name="/training_status")["active"]
        control.predict(api_name="/stop_training")
        h.jobs.wait(120)
    finally:
        memory.stop()
        h.jobs.stop()
        h.jobs.wait(120)
        demo.close()
    out["load_avg_after"] = os.getloadavg()
    return out


def report(out: dict) -> str:
    base = out["single"]
    lines = [f"{out['clips']} clips ({out['collection']}), checkpoint {out['checkpoint']}, /retrieve k=5; "
             f"{out['clients']} clients x {out['requests']} requests through {out['via']}; {out['cpus']} CPUs, load "
             f"average before {out['load_avg_before'][0]:.1f}",
             f"{'phase':<26}{'median ms':>10}{'p95 ms':>9}{'max ms':>8}{'req/s':>8}{'errors':>8}{'median x':>10}"
             f"{'p95 x':>8}{'req/s x':>9}{'server CPU ms/req':>19}{'client CPU ms/req':>19}{'RSS MB':>8}"
             f"{'peak MB':>9}{'sessions':>9}{'load 1m':>9}"]
    for name, label in (("single", "single client"), ("idle", f"{out['clients']} clients, idle"),
                        ("training", f"{out['clients']} clients, training")):
        r = out.get(name)
        if r:
            lines.append(f"{label:<26}{r['median_ms']:>10.0f}{r['p95_ms']:>9.0f}{r['max_ms']:>8.0f}{r['rps']:>8.1f}"
                         f"{r['errors']:>8d}{r['median_ms'] / base['median_ms']:>10.1f}"
                         f"{r['p95_ms'] / base['p95_ms']:>8.1f}{r['rps'] / base['rps']:>9.2f}"
                         f"{r['server_cpu_ms_per_request']:>19.1f}{r['client_cpu_ms_per_request']:>19.1f}"
                         f"{r['rss_mb']:>8.0f}{r['peak_rss_mb']:>9.0f}{r['sessions_kept']:>9d}"
                         f"{r['load_avg_1min']:>9.1f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="demo data folder (default: $EMORANK_DATA or ./data/demo)")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=25, help="calls per client")
    parser.add_argument("--single", type=int, default=50, help="calls of the single-client baseline")
    parser.add_argument("--procs", type=int, default=4, help="client processes the clients are spread over")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--via", choices=("http", "gradio_client"), default="http",
                        help="client: the queue protocol over plain HTTP as a browser speaks it (default), or "
                             "gradio_client (whose own CPU cost per call, ~50 ms here, then dominates on 2 cores)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds any phase may take")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--client", help=argparse.SUPPRESS)  # internal: a client process (server URL)
    parser.add_argument("--checkpoint", help=argparse.SUPPRESS)
    parser.add_argument("--collection", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))  # a script in bench/: make the repository's emorank and app.py importable
    if args.client:
        if not args.client.startswith(("http://127.0.0.1:", "http://localhost:")):
            raise SystemExit("the load client only sends requests to 127.0.0.1")
        print(json.dumps(client_process(args.client, args.checkpoint, args.collection, args.threads, args.requests,
                                        args.seed, args.start_at, args.via)))
        return
    from emorank.app.build import default_data_dir

    args.data = args.data or str(default_data_dir())
    out = measure(args)
    print(report(out))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
