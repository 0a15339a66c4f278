"""Data-parallel training with torch.distributed (`torchrun`), so the contrastive losses see the global batch.

    torchrun --nproc-per-node 4 -m emorank train --manifest M --out runs/erc --batch-size 256

Every rank draws the same global batch (same seeded generator), computes the embeddings of its own slice, and
all-gathers them with autograd, so the loss (Rank-N-Contrast compares every audio with every caption) is computed
on the whole global batch, identically on every rank. Gradients: the all-gather's backward sums, over ranks, the
gradient of each rank's copy of the loss with respect to this rank's slice (world x the true slice gradient), and
DistributedDataParallel averages parameter gradients over ranks, which gives exactly the single-process gradient of
the global batch. A global batch is truncated to a multiple of the world size (at most world - 1 pairs dropped per
epoch; our interpretation). Feature extraction is sharded by rank into the shared feature cache.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Dist:
    """This process's place in the job; world = 1 means single-process (every method is then the identity)."""

    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def global_order(self, idx: torch.Tensor) -> torch.Tensor:
        """The batch truncated to a multiple of the world size, in the order the gathered embeddings arrive."""
        if self.world == 1:
            return idx
        idx = idx[: len(idx) - len(idx) % self.world]
        return torch.cat([idx[r::self.world] for r in range(self.world)])

    def local(self, idx: torch.Tensor) -> torch.Tensor:
        """This rank's slice of `global_order(idx)`."""
        if self.world == 1:
            return idx
        idx = idx[: len(idx) - len(idx) % self.world]
        return idx[self.rank::self.world]

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """Concatenate every rank's `x` (equal shapes) along dim 0, keeping gradients to this rank's part."""
        if self.world == 1:
            return x
        import warnings

        from torch.distributed.nn.functional import all_gather
        with warnings.catch_warnings():  # deprecated in favour of a private API; this one is public and tested
            warnings.simplefilter("ignore", FutureWarning)
            return torch.cat(all_gather(x), dim=0)

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank when `flag` is true on any rank (used for a stop request)."""
        if self.world == 1:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return bool(t.item() > 0)

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()


def init_from_env(device: torch.device) -> Dist:
    """Join the process group described by torchrun's environment (WORLD_SIZE, RANK, MASTER_ADDR/PORT), if any.

    NCCL on CUDA, gloo on CPU. Without WORLD_SIZE > 1 this is a single-process run.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not torch.distributed.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend=backend)
    return Dist(rank=torch.distributed.get_rank(), world=torch.distributed.get_world_size())


def local_device(device: torch.device) -> torch.device:
    """On CUDA under torchrun, the GPU of this process's LOCAL_RANK."""
    if device.type == "cuda" and device.index is None and "LOCAL_RANK" in os.environ:
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return device
