"""Benchmark: cross-modal Rank-N-Contrast, emorank's sorted O(N^2 log N) form vs the released O(N^3) form.

    python bench/rnc_loss.py [--sizes 64 256 512 1024] [--repeat 3] [--device cpu|cuda] [--dim 512] [--threads T]

(run from the repository root with emorank installed, or with PYTHONPATH=.; on a busy CPU pass --threads 1:
intra-op threads competing with other processes make small-op timings erratic)

For each batch size N it times one forward + backward pass (median of --repeat runs after one warm-up) of
``emorank.losses.RankNContrastLoss`` and of the formulation of the released Rank-N-Contrast code (a Python loop
over the positive j building an N x N mask per step; autograd keeps every mask), and measures memory:

* peak: on CUDA, ``torch.cuda.max_memory_allocated`` above the memory held before the pass; on CPU (Linux), the
  peak resident set size during ONE pass, run in a fresh process, minus the resident size just before it (the
  kernel's high-water mark VmHWM is reset through /proc/self/clear_refs; allocator overhead included).
* saved: bytes of the tensors autograd keeps for the backward pass (unique storages seen by a
  ``saved_tensors_hooks`` pack hook), independent of the allocator.

The two losses are also compared on the same inputs (|delta loss| column). The naive form is skipped where its
predicted memory (4 N^3 bytes of float32 masks) exceeds half of the available memory or its predicted time
(cubic extrapolation from the previous size) exceeds --naive-limit-s; the table says so.

Inputs: random L2-normalised [N, dim] float32 embeddings, (valence, arousal) drawn uniformly on 1..7 and rounded
to 0.1 (ties, as with annotator means), logit scale 1.0 (requires grad).
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing as mp
import os
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

try:
    from emorank.losses import RankNContrastLoss
except ModuleNotFoundError as exc:  # run as a file without the package installed
    raise SystemExit(
        "cannot import emorank: `pip install -e .` or run as `PYTHONPATH=. python bench/rnc_loss.py`"
    ) from exc


def released_style_rnc(audio_emb, text_emb, labels, logit_scale):
    """Cross-modal RNC the way the released Rank-N-Contrast code computes it: O(N^3) time and memory."""
    n = audio_emb.shape[0]
    logits = logit_scale * F.normalize(audio_emb, dim=1) @ F.normalize(text_emb, dim=1).T  # [N, N]
    logits = logits - logits.max(dim=1, keepdim=True).values.detach()  # cancels in the ratio
    exp_logits = logits.exp()
    y = labels.double()  # float64 distances like emorank's, so that both see the same ties
    diff = y[:, None, :] - y[None, :, :]
    dist = (diff * diff).sum(-1).sqrt()  # [N, N]
    loss = 0.0
    for j in range(n):
        neg_mask = (dist >= dist[:, j : j + 1]).to(logits.dtype)  # [N, N]: k in S_ij for every anchor i
        pos_log_probs = logits[:, j] - torch.log((neg_mask * exp_logits).sum(dim=-1))
        loss = loss - (pos_log_probs / n**2).sum()
    return loss


IMPLEMENTATIONS: dict[str, Callable] = {"ours": RankNContrastLoss(), "naive": released_style_rnc}


@dataclass
class Inputs:
    audio: torch.Tensor
    text: torch.Tensor
    labels: torch.Tensor
    scale: torch.Tensor


def make_inputs(n: int, dim: int, device: str, seed: int = 0) -> Inputs:
    g = torch.Generator().manual_seed(seed)
    audio = F.normalize(torch.randn(n, dim, generator=g), dim=1).to(device).requires_grad_(True)
    text = F.normalize(torch.randn(n, dim, generator=g), dim=1).to(device).requires_grad_(True)
    labels = (1 + 6 * torch.rand(n, 2, generator=g)).mul(10).round().div(10).to(device)
    scale = torch.tensor(1.0, device=device, requires_grad=True)
    return Inputs(audio, text, labels, scale)


def forward_backward(impl: str, x: Inputs) -> float:
    x.audio.grad = x.text.grad = x.scale.grad = None
    loss = IMPLEMENTATIONS[impl](x.audio, x.text, x.labels, x.scale)
    loss.backward()
    return loss.item()


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_pass(impl: str, x: Inputs, repeat: int, device: str) -> tuple[float, float]:
    """(median seconds of forward + backward, loss value)."""
    value = forward_backward(impl, x)  # warm-up
    times = []
    for _ in range(repeat):
        sync(device)
        start = time.perf_counter()
        forward_backward(impl, x)
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), value


def saved_bytes(impl: str, x: Inputs) -> int:
    """Bytes of the unique storages autograd saves for backward during one forward pass."""
    seen: dict[tuple, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        seen[(t.device.type, storage.data_ptr())] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = IMPLEMENTATIONS[impl](x.audio, x.text, x.labels, x.scale)
    del loss
    return sum(seen.values())


def cuda_peak_bytes(impl: str, x: Inputs) -> int:
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    forward_backward(impl, x)
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - base


def proc_status_bytes(key: str) -> int:
    """A memory line of /proc/self/status (VmRSS, VmHWM) in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{key} not in /proc/self/status")


def cpu_peak_child(impl: str, n: int, dim: int, threads: int) -> int:
    """Run in a fresh process: peak RSS during one forward + backward pass minus the RSS before it, in bytes.

    The kernel's high-water mark (VmHWM) is reset first by writing 5 to /proc/self/clear_refs, so the peak of
    importing torch does not hide the pass. A pass at N = 8 first loads kernels and thread pools.
    """
    torch.set_num_threads(threads)
    forward_backward(impl, make_inputs(8, dim, "cpu"))
    x = make_inputs(n, dim, "cpu")
    before = proc_status_bytes("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    forward_backward(impl, x)
    return proc_status_bytes("VmHWM") - before


def cpu_peak_bytes(impl: str, n: int, dim: int, threads: int) -> int:
    with cf.ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(cpu_peak_child, impl, n, dim, threads).result()


def available_bytes(device: str) -> int:
    if device == "cuda":
        free, _ = torch.cuda.mem_get_info()
        return free
    with open("/proc/meminfo") as f:
        info = dict(line.split(":", 1) for line in f)
    return int(info["MemAvailable"].split()[0]) * 1024


def measure(impl: str, n: int, args: argparse.Namespace) -> dict:
    x = make_inputs(n, args.dim, args.device)
    seconds, value = time_pass(impl, x, args.repeat, args.device)
    saved = saved_bytes(impl, x)
    if args.device == "cuda":
        peak = cuda_peak_bytes(impl, x)
    else:
        peak = cpu_peak_bytes(impl, n, args.dim, torch.get_num_threads())
    return {"s": seconds, "loss": value, "saved": saved, "peak": peak}


def mib(b: float) -> str:
    return f"{b / 2**20:9.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256, 512, 1024])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per cell (median reported)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--dim", type=int, default=512, help="embedding dimension (paper: 512)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--naive-limit-s", type=float, default=60.0, help="skip naive above this predicted time")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device visible to torch")
    if args.threads:
        torch.set_num_threads(args.threads)

    print(f"torch {torch.__version__}, device {args.device}"
          + (f" ({torch.cuda.get_device_name()})" if args.device == "cuda" else
             f", {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}")
          + f", dim {args.dim}, float32, forward+backward, median of {args.repeat}")
    peak_name = ("cuda max_memory_allocated above the start" if args.device == "cuda"
                 else "peak RSS (VmHWM) minus RSS before, one pass in a fresh process")
    print(f"peak = {peak_name}; saved = tensors kept by autograd for backward\n")
    header = (f"{'N':>5} | {'ours ms':>9} {'naive ms':>10} {'x':>7} | {'ours peak':>9} {'naive peak':>10} {'x':>6} | "
              f"{'ours saved':>10} {'naive saved':>11} {'x':>6} | {'|dloss|':>8}")
    print(header + "\n" + "-" * len(header) + "   (memory in MiB)")
    last_naive: tuple[int, float] | None = None
    for n in args.sizes:
        ours = measure("ours", n, args)
        predicted_bytes = 4 * n**3
        predicted_s = last_naive[1] * (n / last_naive[0]) ** 3 if last_naive else 0.0
        row = f"{n:>5} | {ours['s'] * 1e3:9.1f} "
        if predicted_bytes > available_bytes(args.device) / 2 or predicted_s > args.naive_limit_s:
            print(row + f"naive skipped: predicted {predicted_bytes / 2**30:.1f} GiB of masks, ~{predicted_s:.0f} s"
                  f" | ours peak {mib(ours['peak'])} MiB, saved {mib(ours['saved'])} MiB")
            continue
        naive = measure("naive", n, args)
        last_naive = (n, naive["s"])
        print(row + f"{naive['s'] * 1e3:10.1f} {naive['s'] / ours['s']:7.1f} | "
              f"{mib(ours['peak'])} {mib(naive['peak']):>10} {naive['peak'] / max(ours['peak'], 1):6.1f} | "
              f"{mib(ours['saved']):>10} {mib(naive['saved']):>11} {naive['saved'] / ours['saved']:6.1f} | "
              f"{abs(ours['loss'] - naive['loss']):8.1e}")


if __name__ == "__main__":
    main()
