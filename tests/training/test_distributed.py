"""torchrun-style data parallelism: two gloo processes on CPU must train like one process on the global batch."""
import json
import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from emorank.training.distributed import Dist
from emorank.model.core import EmotionRankCLAP
from emorank.training.trainer import TrainConfig, train

from conftest import make_prepared

CONFIG = TrainConfig(epochs=3, batch_size=32, lr=1e-3, device="cpu", seed=5)


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    data = make_prepared()
    result = train(data.manifest, CONFIG, out_dir, data=data, progress=False)
    if rank == 0:
        with open(os.path.join(out_dir, "rank0.json"), "w") as f:
            json.dump(result.history, f)
    torch.distributed.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_match_one_process_on_the_global_batch(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path / "ddp")), nprocs=2, join=True)
    ddp_history = json.loads((tmp_path / "ddp" / "rank0.json").read_text())
    data = make_prepared()
    single = train(data.manifest, CONFIG, tmp_path / "single", data=data, progress=False)
    np.testing.assert_allclose([h["val_loss"] for h in ddp_history], [h["val_loss"] for h in single.history],
                               rtol=1e-4)
    a = EmotionRankCLAP.from_checkpoint(tmp_path / "ddp" / "checkpoint").state_dict()
    b = EmotionRankCLAP.from_checkpoint(single.checkpoint).state_dict()
    for k in a:
        np.testing.assert_allclose(a[k].numpy(), b[k].numpy(), atol=1e-4)


def test_slices_cover_the_truncated_batch_in_gather_order():
    idx = torch.arange(11)
    parts = [Dist(rank=r, world=3) for r in range(3)]
    gathered = torch.cat([d.local(idx) for d in parts])
    assert torch.equal(gathered, parts[0].global_order(idx))  # what all_gather returns, in that order
    assert sorted(gathered.tolist()) == list(range(9))  # 11 -> 9: a multiple of the world size
    single = Dist()
    assert torch.equal(single.local(idx), idx) and torch.equal(single.global_order(idx), idx)
    with pytest.raises(AttributeError):
        single.rank = 1  # frozen
