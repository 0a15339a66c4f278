"""Training of the projection heads on cached frozen features.

TrainConfig's defaults are the paper's (§4.1): Adam, lr 1e-4, batch 64, 15 epochs, learnable temperature initialised
at 1.0, checkpoint with the lowest validation loss. :meth:`TrainConfig.recipe` is our budget, the default of the
command line and the app: lr 1e-3 and at least 900 optimiser steps (15 epochs or more). The paper's 15 epochs over
~90k clips are ~21k steps; on a corpus of 1k clips they are ~250 steps at lr 1e-4, and the heads barely move from
their initialisation. The logit scale is clamped to at most 100 and kept out of weight decay.

    result = train(manifest, TrainConfig(system="emotionrankclap"), out_dir="runs/erc")
    result.checkpoint   # folder readable by EmotionRankCLAP.from_checkpoint

Progress is reported as plain dict events (`on_event`), so a CLI prints them and a UI streams them. A
`threading.Event` passed as `stop` ends training after the current step; the best checkpoint so far is then saved
(always a valid folder, written atomically). `resume=True` continues from `out_dir/train_state.safetensors`.

The resumable state is one safetensors file: the tensors (heads, Adam moments, best heads so far, the shuffling
generator's state as uint8) plus a JSON document in its metadata (configuration, history, epoch, optimiser
hyper-parameters). Nothing is unpickled (DESIGN.md §7.4), so a crafted state file cannot run code; a truncated or
foreign file raises :class:`ResumeStateError`, and a `train_state.pt` from older versions (a pickle) is refused.
"""
from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import random
import re
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from emorank.model import atomic
from emorank.data.manifest import Manifest
from emorank.training.distributed import Dist, init_from_env, local_device
from emorank.encoders.cache import FeatureCache
from emorank.losses import build_loss
from emorank.model.core import EmotionRankCLAP, FeatureNormaliser
from emorank.model.checkpoint import ModelConfig, recover_checkpoint
from emorank.training.systems import PreparedData, get_system, prepare_data

STATE_FILE = "train_state.safetensors"
LEGACY_STATE_FILE = "train_state.pt"  # pickled by emorank <= 0.x; refused, never loaded
STATE_FORMAT = "emorank-train-state"
STATE_VERSION = 1
HISTORY_FILE = "history.json"
MAX_EPOCHS = 10000
MAX_STEPS = 10_000_000
RECIPE_MIN_STEPS = 900
# One intra-op thread for the training loop by default. A step (batch 64, 88-d eGeMAPS, 512-d heads) is ~4 ms of
# small matrix products: on an idle 2-core machine a second thread saves ~15% (3.7 -> 3.1 ms), but whenever the
# other core is busy (another process, the app serving searches) the two threads wait on each other and a step
# takes 30-240 ms; 4 threads on 2 cores: 7 ms (medians of 40-step runs, torch 2.13 CPU). Set TrainConfig.threads
# to 2 or more on a machine of one's own.
TRAIN_THREADS = 1
MAX_BATCH_SIZE = 8192  # the losses build batch x batch matrices; 8192^2 floats is 256 MB per matrix

EventFn = Callable[[dict], None]


@dataclass
class TrainConfig:
    """All training choices; saved in the checkpoint. Defaults follow the paper where it speaks."""

    system: str = "emotionrankclap"
    loss: str | None = None  # None: the system's loss; a name from LOSSES overrides it
    loss_kwargs: dict = field(default_factory=dict)
    captions: str | None = None  # None: the system's caption builder; a CAPTION_BUILDERS name overrides it
    audio_encoder: str = "egemaps"
    text_encoder: str = "minilm"
    audio_encoder_kwargs: dict = field(default_factory=dict)
    text_encoder_kwargs: dict = field(default_factory=dict)
    audio_norm: str = "auto"  # "auto": per-speaker z-score for hand-crafted and Whisper encoders, else none
    epochs: int = 15  # at least this many epochs ...
    min_steps: int = 0  # ... and at least this many optimiser steps (0: epochs only, the paper's)
    batch_size: int = 64
    lr: float = 1e-4
    scale_lr: float | None = None  # learning rate of the logit scale; None: same as lr
    weight_decay: float = 0.0
    temperature_init: float | None = None  # None: the system's own (1.0, the paper's, unless the system sets one)
    max_logit_scale: float = 100.0
    embed_dim: int = 512
    seed: int = 0
    caption_seed: int = 0
    device: str = "auto"
    workers: int | None = None  # feature-extraction processes; None: up to 4
    threads: int | None = None  # torch CPU threads for the training loop; None: TRAIN_THREADS (see there)

    @classmethod
    def paper(cls, **overrides) -> "TrainConfig":
        """The paper's exact budget (§4.1), the dataclass defaults: 15 epochs, Adam lr 1e-4, batch 64."""
        return cls(**{"epochs": 15, "min_steps": 0, "lr": 1e-4, "batch_size": 64, **overrides})

    @classmethod
    def recipe(cls, **overrides) -> "TrainConfig":
        """Our budget (the command line's and the app's default): lr 1e-3 for at least 15 epochs and at least
        ``RECIPE_MIN_STEPS`` optimiser steps, so a corpus of 1k clips gets ~60 epochs and a 90k-clip corpus the
        paper's 15. Measured on RAVDESS and the demo corpus (README)."""
        return cls(**{"epochs": 15, "min_steps": RECIPE_MIN_STEPS, "lr": 1e-3, "batch_size": 64, **overrides})

    def epochs_for(self, steps_per_epoch: int) -> int:
        """Epochs to run: ``epochs``, raised until ``min_steps`` optimiser steps are reached."""
        return max(self.epochs, -(-self.min_steps // max(1, steps_per_epoch)))

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first field outside its allowed range; cheap, loads nothing."""
        from emorank.encoders.registry import AUDIO_ENCODERS, TEXT_ENCODERS
        from emorank.losses import LOSSES
        from emorank.training.systems import CAPTION_BUILDERS, SYSTEMS

        _check_name("system", self.system, SYSTEMS)
        if self.loss is not None:
            _check_name("loss", self.loss, LOSSES)
        if self.captions is not None:
            _check_name("captions", self.captions, CAPTION_BUILDERS)
        _check_name("audio_encoder", self.audio_encoder, AUDIO_ENCODERS)
        _check_name("text_encoder", self.text_encoder, TEXT_ENCODERS)
        _check_name("audio_norm", self.audio_norm, ("auto", *FeatureNormaliser.MODES))
        for name in ("loss_kwargs", "audio_encoder_kwargs", "text_encoder_kwargs"):
            if not isinstance(getattr(self, name), dict):
                raise ConfigError(f"{name} must be a dict of keyword arguments, got {getattr(self, name)!r}")
        _check_int("epochs", self.epochs, 1, MAX_EPOCHS)
        _check_int("min_steps", self.min_steps, 0, MAX_STEPS)
        _check_int("batch_size", self.batch_size, 2, MAX_BATCH_SIZE,
                   why=" (a contrastive batch needs two pairs; the losses build batch x batch matrices)")
        _check_int("embed_dim", self.embed_dim, 1, 8192)
        _check_int("seed", self.seed, 0, 2**32 - 1)
        _check_int("caption_seed", self.caption_seed, 0, 2**32 - 1)
        if self.workers is not None:
            _check_int("workers", self.workers, 1, 256)
        if self.threads is not None:
            _check_int("threads", self.threads, 1, 256)
        _check_float("lr", self.lr, 0.0, 1.0, "greater than 0 and less than 1")
        if self.scale_lr is not None:
            _check_float("scale_lr", self.scale_lr, 0.0, 1.0, "greater than 0 and less than 1")
        _check_float("weight_decay", self.weight_decay, None, None, "0 or more", min_inclusive=0.0)
        if self.temperature_init is not None:
            _check_float("temperature_init", self.temperature_init, 0.0, None, "greater than 0")
        _check_float("max_logit_scale", self.max_logit_scale, None, None, "1 or more", min_inclusive=1.0)
        if not isinstance(self.device, str) or not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", self.device):
            raise ConfigError(f"device must be auto, cpu, mps, cuda or cuda:N, got {self.device!r}")


class ConfigError(ValueError):
    """A :class:`TrainConfig` field is outside its allowed range; the message names the field and the range."""


def _check_name(field_name: str, value, valid) -> None:
    if not isinstance(value, str) or value not in valid:
        raise ConfigError(f"unknown {field_name} {value!r}; valid {field_name} names: {', '.join(valid)}")


def _check_int(field_name: str, value, low: int, high: int, why: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise ConfigError(f"{field_name} must be a whole number from {low} to {high}{why}, got {value!r}")


def _check_float(field_name: str, value, above: float | None, below: float | None, allowed: str,
                 min_inclusive: float | None = None) -> None:
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.number)) and math.isfinite(value)
    ok = ok and (above is None or value > above) and (below is None or value < below)
    ok = ok and (min_inclusive is None or value >= min_inclusive)
    if not ok:
        raise ConfigError(f"{field_name} must be a finite number {allowed}, got {value!r}")


class ResumeMismatchError(ValueError):
    """`resume=True` found a training state it cannot continue from; ``path`` is that file.

    This class: the state was written with another configuration. :class:`ResumeStateError`: the file itself is
    unusable (truncated, foreign, or a pickled state from an older version)."""

    def __init__(self, path: str | os.PathLike, message: str) -> None:
        self.path = Path(path)
        super().__init__(message)


class ResumeStateError(ResumeMismatchError):
    """The resumable training state is truncated, corrupt, not an emorank state, or an old pickled one."""


@dataclass
class TrainResult:
    checkpoint: Path
    best_epoch: int
    best_val_loss: float
    history: list[dict]
    stopped: bool


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available; use --device cpu")
    return torch.device(device)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextlib.contextmanager
def torch_threads(n: int):
    """Run the block with ``n`` torch intra-op threads, then restore the former count (the setting is
    process-wide, so other work in the process, e.g. an app's searches, gets its threads back)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# audio_norm="auto": per-speaker z-score for the hand-crafted encoders and the Whisper blocks; none for the other
# neural encoders (the paper's online encoders, as they were). Whisper: chosen on RAVDESS dev actors 17-19 and the
# shift suite rendered from them (bench/select_frontend.py, bench/shift_dev.py, docs/results-whisper.md): speaker
# had the best clean dev scores (mean of AOC, VOC, label R@1 0.671 vs global 0.628, utterance 0.616, none 0.300)
# and the smallest worst-case drop under shift (-0.20 vs -0.36 for global); with speakers withheld (one clip
# alone: the global statistics) its heads were about as good as the global heads.
AUTO_SPEAKER_NORM = ("egemaps", "compare", "paralinguistic", "whisper-base", "whisper-tiny-en")


def _auto_norm(config: TrainConfig) -> str:
    if config.audio_norm != "auto":
        return config.audio_norm
    return "speaker" if config.audio_encoder in AUTO_SPEAKER_NORM else "none"


def temperature_init(config: TrainConfig) -> float:
    """The initial temperature: the configuration's, else the system's own, else 1.0 (the paper's)."""
    if config.temperature_init is not None:
        return float(config.temperature_init)
    return float(get_system(config.system).temperature_init or 1.0)


def build_model(config: TrainConfig, data: PreparedData) -> EmotionRankCLAP:
    normaliser = FeatureNormaliser(_auto_norm(config))
    if normaliser.mode != "none":
        normaliser.fit(data.audio[data.split == "train"])
    mc = ModelConfig(audio_encoder=config.audio_encoder, text_encoder=config.text_encoder,
                     audio_encoder_kwargs=dict(config.audio_encoder_kwargs),
                     text_encoder_kwargs=dict(config.text_encoder_kwargs),
                     audio_dim=data.audio.shape[1], text_dim=data.text.shape[1], embed_dim=config.embed_dim,
                     temperature_init=temperature_init(config), max_logit_scale=config.max_logit_scale,
                     audio_fingerprint=data.audio_fingerprint, text_fingerprint=data.text_fingerprint)
    return EmotionRankCLAP(mc, normaliser)


def make_optimizer(model: EmotionRankCLAP, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam; the logit scale has its own group without weight decay (CLIP practice)."""
    heads = [p for n, p in model.named_parameters() if n != "log_logit_scale"]
    return torch.optim.Adam([
        {"params": heads, "weight_decay": config.weight_decay},
        {"params": [model.log_logit_scale], "weight_decay": 0.0, "lr": config.scale_lr or config.lr},
    ], lr=config.lr)


class _Tensors:
    """The normalised features of one split on the training device."""

    def __init__(self, model: EmotionRankCLAP, data: PreparedData, split: str, device: torch.device) -> None:
        rows = np.flatnonzero(data.split == split)
        speakers = [data.manifest.speaker[i] for i in rows]
        to = lambda x, dtype=torch.float32: torch.as_tensor(x, dtype=dtype, device=device)  # noqa: E731
        self.audio = to(model.normaliser(data.audio[rows], speakers))  # [N, Da]
        self.text = to(data.text[rows])  # [N, Dt]
        # [N, 2] (valence, arousal) in float64, so that means of ratings tie as exactly in the loss as they do in the
        # manifest (DESIGN.md 8.5); MPS has no float64, there they stay on the CPU (the losses move what they use)
        self.labels = torch.as_tensor(data.labels[rows], dtype=torch.float64,
                                      device=device if device.type != "mps" else "cpu")
        self.classes = to(data.classes[rows], torch.int64)  # [N]
        self.para = None if data.para is None else to(data.para[rows])  # [N, P]
        self.teacher_audio = None if data.teacher_audio is None else to(data.teacher_audio[rows])
        self.teacher_text = None if data.teacher_text is None else to(data.teacher_text[rows])
        self.teacher_scale = data.teacher_scale
        self.n = len(rows)

    def batch_loss(self, model, loss_fn, idx: torch.Tensor, dist: Dist = Dist()) -> torch.Tensor:
        """Loss of one global batch; under torchrun each rank embeds its slice and the loss sees all of them."""
        local, idx = dist.local(idx), dist.global_order(idx)
        out = model(self.audio[local], self.text[local])
        out = {"audio": dist.gather(out["audio"]), "text": dist.gather(out["text"]),
               "logit_scale": out["logit_scale"]}
        teacher = None
        if self.teacher_audio is not None:
            teacher = self.teacher_audio[idx] @ self.teacher_text[idx].T * self.teacher_scale  # [B, B]
        return loss_fn(out["audio"], out["text"], labels=self.labels[idx.to(self.labels.device)],
                       logit_scale=out["logit_scale"],
                       classes=self.classes[idx], para=None if self.para is None else self.para[idx],
                       teacher_logits=teacher)


def batches(n: int, batch_size: int, generator: torch.Generator | None, device: torch.device) -> list[torch.Tensor]:
    """Index batches; shuffled with `generator` (None: in order). A trailing batch of one is dropped (a one-pair
    contrastive batch carries no signal)."""
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    out = [order[i:i + batch_size].to(device) for i in range(0, n, batch_size)]
    return [b for b in out if len(b) > 1]


@torch.no_grad()
def validation_loss(model: EmotionRankCLAP, loss_fn, tensors: _Tensors, batch_size: int) -> float:
    """Mean loss over fixed, unshuffled batches of the dev split (so it is comparable across epochs)."""
    model.eval()
    values, weights = [], []
    for idx in batches(tensors.n, batch_size, None, tensors.audio.device):
        values.append(tensors.batch_loss(model, loss_fn, idx).item())
        weights.append(len(idx))
    model.train()
    return float(np.average(values, weights=weights)) if values else float("nan")


@torch.no_grad()
def validation_metrics(model: EmotionRankCLAP, tensors: _Tensors, max_rows: int = 512) -> dict[str, float]:
    """Cheap per-epoch retrieval and ordering metrics on (the first `max_rows` rows of) the dev split:

    val_recall@10 -- audio-to-caption recall@10 of the dev pairs;
    val_rank_tau  -- Kendall tau between cross-modal cosine similarity and minus the valence-arousal distance
                     over all audio x caption pairs: 1 when similarity falls exactly as labels move apart."""
    from scipy.stats import kendalltau

    from emorank.metrics.recall import recall_at_k

    model.eval()
    rows = slice(0, min(tensors.n, max_rows))
    out = model(tensors.audio[rows], tensors.text[rows])
    sim = (out["audio"] @ out["text"].T).cpu().numpy()  # [M, M]
    labels = tensors.labels[rows].cpu().numpy()
    dist = np.linalg.norm(labels[:, None, :] - labels[None, :, :], axis=-1)  # [M, M]
    model.train()
    tau = kendalltau(sim.ravel(), -dist.ravel())[0]
    return {"val_recall@10": recall_at_k(sim, ks=(10,))["a2t_r@10"],
            "val_rank_tau": float(0.0 if np.isnan(tau) else tau)}


def train(manifest: Manifest, config: TrainConfig | None = None, out_dir: str | os.PathLike = "runs/model",
          cache: FeatureCache | None = None, on_event: EventFn | None = None, stop: threading.Event | None = None,
          resume: bool = False, progress: bool = True, data: PreparedData | None = None) -> TrainResult:
    """Train one system on a manifest with train and dev splits; returns where the best checkpoint is.

    Raises :class:`ConfigError` for an invalid configuration before anything is loaded."""
    config = config or TrainConfig()
    config.validate()
    out_dir = Path(out_dir)
    device = local_device(resolve_device(config.device))
    dist = init_from_env(device)
    emit = on_event if on_event is not None and dist.is_main else (lambda event: None)
    system = get_system(config.system)
    loss_name = config.loss or system.loss
    loss_kwargs = {**system.loss_kwargs, **config.loss_kwargs} if config.loss is None else dict(config.loss_kwargs)
    loss_fn = build_loss(loss_name, **loss_kwargs)

    if data is None:
        emit({"event": "features", "message": "preparing cached features"})
        data = _prepare_distributed(manifest, system, config, cache, progress and dist.is_main, emit, dist)
    if system.teacher:
        stopped_teacher = attach_teacher(data, system, config, manifest, out_dir / "teacher", cache, emit, stop,
                                         progress)
        if stopped_teacher is not None:
            return stopped_teacher
    _check_splits(manifest, data)

    seed_everything(config.seed)  # here, after data preparation, whose model loading may draw random numbers
    model = build_model(config, data).to(device)
    net = model
    if dist.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = make_optimizer(model, config)
    train_t = _Tensors(model, data, "train", device)
    dev_t = _Tensors(model, data, "dev", device)
    generator = torch.Generator().manual_seed(config.seed)

    history: list[dict] = []
    best = {"epoch": -1, "val_loss": math.inf, "state": None}
    start_epoch = 0
    state_file = out_dir / STATE_FILE
    if dist.is_main:
        clean_state_leftovers(out_dir)
    if resume and (out_dir / LEGACY_STATE_FILE).exists() and not state_file.exists():
        raise ResumeStateError(out_dir / LEGACY_STATE_FILE,
                               f"cannot resume from {out_dir / LEGACY_STATE_FILE}: it is a pickled state from an "
                               "older emorank, which is never loaded because unpickling can run code; start "
                               "without --resume (resume=False) to retrain, or delete that file")
    if resume and state_file.is_file():
        history, best, start_epoch = _load_state(state_file, model, optimizer, generator, config)
        emit({"event": "resumed", "epoch": start_epoch})

    stopped = False
    steps_per_epoch = len(batches(train_t.n, config.batch_size, None, device))
    n_epochs = config.epochs_for(steps_per_epoch)
    emit({"event": "budget", "epochs": n_epochs, "steps_per_epoch": steps_per_epoch})
    t0 = time.perf_counter()
    with torch_threads(config.threads or TRAIN_THREADS):  # data preparation above keeps its own
        for epoch in range(start_epoch, n_epochs):
            model.train()
            losses = []
            stop_after_epoch = False
            for step, idx in enumerate(batches(train_t.n, config.batch_size, generator, device)):
                loss = train_t.batch_loss(net, loss_fn, idx, dist)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                model.clamp_logit_scale()
                losses.append(loss.item())
                emit({"event": "step", "epoch": epoch, "epochs": n_epochs, "step": step, "steps": steps_per_epoch,
                      "loss": losses[-1], "logit_scale": model.logit_scale.item()})
                if dist.any(stop is not None and stop.is_set(), device):
                    # A stop on the epoch's last step lets the epoch finish (validation, state); it only counts
                    # as "stopped" when epochs remain, so a stop that lands after the last step is a normal end.
                    if step + 1 < steps_per_epoch:
                        stopped = True
                        break
                    stop_after_epoch = True
            if stopped and not losses:
                break
            val = validation_loss(model, loss_fn, dev_t, config.batch_size)
            record = {"epoch": epoch, "train_loss": float(np.mean(losses)), "val_loss": val,
                      **validation_metrics(model, dev_t), "logit_scale": model.logit_scale.item(),
                      "seconds": time.perf_counter() - t0, "complete": not stopped}
            history.append(record)
            if val < best["val_loss"] or best["state"] is None:
                best = {"epoch": epoch, "val_loss": val, "state": copy.deepcopy(model.state_dict())}
            emit({"event": "epoch", "epochs": n_epochs, **record, "best_epoch": best["epoch"],
                  "best_val_loss": best["val_loss"]})
            if stopped:
                break
            if dist.is_main:
                _save_state(state_file, model, optimizer, generator, config, history, best, epoch)
            if stop_after_epoch and epoch + 1 < n_epochs:
                stopped = True
                break

    if best["state"] is None:  # stopped before the first step finished: keep the initial heads
        best = {"epoch": -1, "val_loss": math.nan, "state": copy.deepcopy(model.state_dict())}
    model.load_state_dict(best["state"])
    ckpt = out_dir / "checkpoint"
    if dist.is_main:
        model.save(ckpt, system=system.to_dict(loss_name, loss_kwargs), captions=data.caption_spec,
                   train=asdict(config), metrics={"best_epoch": best["epoch"], "best_val_loss": best["val_loss"],
                                                  "final_logit_scale": model.logit_scale.item()},
                   history=history, stopped=stopped)
        (out_dir / HISTORY_FILE).write_text(json.dumps(history, indent=2))
    dist.barrier()  # every rank returns only once the checkpoint is on disk
    emit({"event": "done", "checkpoint": str(ckpt), "best_epoch": best["epoch"], "best_val_loss": best["val_loss"],
          "stopped": stopped})
    return TrainResult(ckpt, best["epoch"], best["val_loss"], history, stopped)


def _prepare_distributed(manifest: Manifest, system, config: TrainConfig, cache: FeatureCache | None,
                         progress: bool, emit: EventFn, dist: Dist) -> PreparedData:
    """prepare_data; under torchrun each rank first extracts the audio features of its shard of the files into the
    shared cache, then rank 0 fills the rest (captions, text features) before the others read everything back."""
    if dist.world == 1:
        return prepare_data(manifest, system, config, cache=cache, progress=progress, on_event=emit)
    from emorank.encoders.registry import build_audio_encoder

    cache = cache or FeatureCache()
    shard = manifest.path[dist.rank::dist.world]
    cache.audio_features(shard, build_audio_encoder(config.audio_encoder, **config.audio_encoder_kwargs),
                         workers=config.workers, progress=progress)
    dist.barrier()
    data = prepare_data(manifest, system, config, cache=cache, progress=progress, on_event=emit) if dist.is_main \
        else None
    dist.barrier()
    return data or prepare_data(manifest, system, config, cache=cache, progress=False)


def attach_teacher(data: PreparedData, system, config: TrainConfig, manifest: Manifest, teacher_dir: Path,
                   cache: FeatureCache | None, emit: EventFn, stop: threading.Event | None,
                   progress: bool) -> TrainResult | None:
    """RA-CLAP stage 1: train (or reuse) the teacher system with the same budget, then store its embeddings of
    every row in `data` so each batch can read the teacher's audio x text logits. Returns the teacher's result
    when it was stopped (its checkpoint is then the only valid one), else None."""
    teacher_config = TrainConfig(**{**asdict(config), "system": system.teacher, "loss": None, "loss_kwargs": {},
                                    "captions": None})
    ckpt = teacher_dir / "checkpoint"
    reuse = False
    recover_checkpoint(ckpt)  # a save of the teacher killed between its renames
    if ckpt.is_dir():
        saved = EmotionRankCLAP.from_checkpoint(ckpt)
        reuse = saved.extra.get("train") == asdict(teacher_config) and not saved.extra.get("stopped")
    if not reuse:
        emit({"event": "stage", "message": f"stage 1: training the {system.teacher} teacher"})
        result = train(manifest, teacher_config, teacher_dir, cache=cache, on_event=emit, stop=stop,
                       progress=progress)
        if result.stopped:
            return result
    teacher = EmotionRankCLAP.from_checkpoint(ckpt)
    teacher_data = prepare_data(data.manifest, get_system(system.teacher), teacher_config, cache=cache,
                                progress=False, splits=sorted(set(data.manifest.split)))
    if teacher_data.manifest.path != data.manifest.path:
        raise RuntimeError("teacher and student rows differ; the feature cache changed during training")
    data.teacher_audio = teacher.embed_audio_features(teacher_data.audio, teacher_data.manifest.speaker)
    data.teacher_text = teacher.embed_text_features(teacher_data.text)
    data.teacher_scale = teacher.logit_scale.item()
    emit({"event": "stage", "message": "stage 2: self-distillation from the teacher"})
    return None


def _check_splits(manifest: Manifest, data: PreparedData) -> None:
    """Both training splits need two usable rows; the message counts the splits of the manifest as given (the
    prepared data holds only train/dev rows that could be read) and says how to add the missing ones."""
    from collections import Counter

    for split in ("train", "dev"):
        usable = int((data.split == split).sum())
        if usable >= 2:
            continue
        given = Counter(manifest.split)
        listed = ", ".join(f"{k or '(none)'}: {n}" for k, n in sorted(given.items())) or "no rows"
        unreadable = f", {given[split] - usable} of them unreadable" if given[split] > usable else ""
        raise ValueError(f"training needs at least two usable '{split}' rows but has {usable}{unreadable} "
                         f"(the manifest's splits are {listed}); add 'train' and 'dev' rows, e.g. with "
                         "emorank.data.splits.speaker_disjoint_split, which keeps each speaker in one split")


def _save_state(path: Path, model, optimizer, generator, config, history, best, epoch) -> None:
    """Resumable state after each full epoch: tensors + JSON metadata in one safetensors file, written atomically."""
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update({f"best.{k}": v for k, v in best["state"].items()})
    tensors["generator"] = generator.get_state()  # uint8
    opt = optimizer.state_dict()
    scalars: dict[str, dict] = {}
    for idx, slots in opt["state"].items():
        for name, value in slots.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{idx}.{name}"] = value
            else:
                scalars.setdefault(str(idx), {})[name] = value
    meta = {"format": STATE_FORMAT, "version": STATE_VERSION, "config": asdict(config), "history": history,
            "epoch": epoch, "best_epoch": best["epoch"], "best_val_loss": best["val_loss"],
            "param_groups": opt["param_groups"], "optimizer_scalars": scalars}
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = atomic.temp_path(path)  # named with this process's id: see clean_state_leftovers
    try:
        save_file(tensors, str(tmp), metadata={"emorank": json.dumps(meta)})
        os.replace(tmp, path)
    except BaseException:
        atomic.remove(tmp)
        raise
    finally:
        atomic.done(tmp)


def clean_state_leftovers(out_dir: Path) -> None:
    """Remove the temporary state files that runs killed while writing their state left in ``out_dir``: those of
    processes that are gone, and emorank 0.x's ``.train_state.safetensors.*.tmp`` (whose writer is unknown; two
    runs never share an output folder)."""
    for leftover in atomic.leftovers(out_dir / STATE_FILE):
        atomic.remove(leftover.path)
    for legacy in out_dir.glob(f".{STATE_FILE}.*.tmp"):
        atomic.remove(legacy)


def _load_state(path: Path, model, optimizer, generator, config: TrainConfig) -> tuple[list[dict], dict, int]:
    """Restore model, optimiser and generator from `_save_state`'s file; returns (history, best, next epoch).

    Reads safetensors only (no pickle). Any problem with the file is a ResumeStateError naming it."""
    from safetensors import SafetensorError, safe_open

    def unusable(why: str) -> ResumeStateError:
        return ResumeStateError(path, f"cannot resume from {path}: {why}; start without --resume (resume=False) "
                                      "to retrain, or delete that file")

    try:
        with safe_open(str(path), framework="pt") as f:
            meta_text = (f.metadata() or {}).get("emorank")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, RuntimeError, ValueError) as err:
        raise unusable("the file is truncated or not a safetensors training state") from err
    try:
        meta = json.loads(meta_text) if meta_text else {}
    except json.JSONDecodeError as err:
        raise unusable("its metadata is not valid JSON") from err
    if not isinstance(meta, dict) or meta.get("format") != STATE_FORMAT:
        raise unusable("it is not an emorank training state")
    if meta.get("version") != STATE_VERSION:
        raise unusable(f"it has state version {meta.get('version')!r}, this emorank reads {STATE_VERSION}")
    if meta.get("config") != asdict(config):
        raise ResumeMismatchError(path, f"cannot resume from {path}: it was written with another configuration")
    try:
        model.load_state_dict(_prefixed(tensors, "model."), strict=True)
        best_state, live = _prefixed(tensors, "best."), model.state_dict()
        if set(best_state) != set(live) or any(best_state[k].shape != live[k].shape for k in live):
            raise ValueError("best heads differ from the model")
        opt_state: dict[int, dict] = {}
        for key, value in tensors.items():
            if key.startswith("optimizer."):
                idx, name = key[len("optimizer."):].split(".", 1)
                opt_state.setdefault(int(idx), {})[name] = value
        for idx, slots in meta["optimizer_scalars"].items():
            opt_state.setdefault(int(idx), {}).update(slots)
        groups = [{k: tuple(v) if isinstance(live.get(k), tuple) else v for k, v in saved.items()}
                  for saved, live in zip(meta["param_groups"], optimizer.param_groups)]
        if len(groups) != len(optimizer.param_groups):
            raise ValueError("optimiser parameter groups differ")
        optimizer.load_state_dict({"state": opt_state, "param_groups": groups})
        generator.set_state(tensors["generator"])
        history, epoch = list(meta["history"]), int(meta["epoch"])
        best = {"epoch": int(meta["best_epoch"]), "val_loss": float(meta["best_val_loss"]), "state": best_state}
    except (KeyError, ValueError, TypeError, RuntimeError) as err:
        raise unusable(f"its contents do not fit this model ({type(err).__name__})") from err
    return history, best, epoch + 1


def _prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}

