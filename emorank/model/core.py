"""The EmotionRankCLAP model: frozen encoders (by name) + trainable projection heads + a learnable temperature.

Only the heads and the temperature are trainable (paper §3.1, eq. 2). The frozen encoders are built lazily from
their registry names the first time raw inputs (files, waveforms, strings) are encoded, so a checkpoint loads in
milliseconds and training, which reads cached features, never builds them.

    model = EmotionRankCLAP.from_checkpoint("checkpoints/demo-emotionrankclap")
    a = model.encode_audio(["a.wav", "b.wav"])      # [2, 512] L2-normalised numpy
    t = model.encode_text("The person is speaking in a calm, warm voice.")
    a @ t.T                                          # cosine similarities
"""

import json
import math
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from emorank.model import atomic
from emorank.model.checkpoint import (
    NORMALISER_MODES,
    ModelConfig,
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    CONFIG_FILE,
    HEADS_FILE,
    MAX_EMBED_DIM,
    MAX_FEATURE_DIM,
    CheckpointError,
    _as_list,
    _json_default,
    _short,
    fingerprint_identity,
    git_revision,
    read_checkpoint_config,
    recover_checkpoint,
)


class FeatureNormaliser:
    """Z-scores raw frozen-encoder features, per speaker when speakers are known (DESIGN.md §3.3).

    mode = "speaker": rows of a speaker with at least `min_speaker_rows` rows are z-scored with that speaker's own
    mean/std; other rows (unknown or rare speakers, single uploaded clips) use the global statistics fitted on the
    training split. mode = "global": global (corpus-level) statistics only. mode = "utterance": each clip on its
    own, so nothing about other clips or speakers is needed: the global z-score (which puts the dimensions on one
    scale), then the clip's vector z-scored over its own dimensions (minus its mean over the dimensions, divided by
    its standard deviation over them; our interpretation of per-utterance normalisation for pooled clip vectors,
    where a per-frame CMVN would leave nothing of a mean-pooled vector). It removes a per-clip offset and scale
    of the whole representation (e.g. what a channel or a gain adds to every dimension alike). mode = "none":
    identity. Our interpretation: min_speaker_rows = 5, std floor 1e-6.
    """

    MODES = NORMALISER_MODES

    def __init__(self, mode: str = "global", mean: np.ndarray | None = None, std: np.ndarray | None = None,
                 min_speaker_rows: int = 5) -> None:
        if mode not in self.MODES:
            raise ValueError(f"unknown normalisation mode {mode!r}; valid: {', '.join(self.MODES)}")
        self.mode = mode
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float32)
        self.std = None if std is None else np.asarray(std, dtype=np.float32)
        self.min_speaker_rows = min_speaker_rows

    def fit(self, x: np.ndarray) -> "FeatureNormaliser":
        x = _finite(x)
        self.mean = x.mean(axis=0).astype(np.float32)
        self.std = np.maximum(x.std(axis=0), 1e-6).astype(np.float32)
        return self

    def __call__(self, x: np.ndarray, speakers: Sequence[str] | None = None) -> np.ndarray:
        x = _finite(np.asarray(x, dtype=np.float32))  # [N, Da]
        if self.mode == "none":
            return x
        if self.mean is None:
            raise CheckpointError("feature normaliser used before it was fitted")
        out = (x - self.mean) / self.std
        if self.mode == "utterance" and out.shape[1] > 1:
            out = (out - out.mean(axis=1, keepdims=True)) / np.maximum(out.std(axis=1, keepdims=True), 1e-6)
        if self.mode == "speaker" and speakers is not None:
            self._speaker_zscore(x, np.asarray(list(speakers), dtype=object), out)
        return out.astype(np.float32)

    def _speaker_zscore(self, x: np.ndarray, speakers: np.ndarray, out: np.ndarray) -> None:
        """Overwrite the rows of ``out`` whose speaker has enough rows with that speaker's own z-scores.

        One stable sort groups the rows by speaker (each group keeps the original row order, so the statistics
        are the same bits as a boolean mask per speaker would give); O(N log N + N D) instead of O(N S).
        """
        names, group, counts = np.unique(speakers, return_inverse=True, return_counts=True)  # [S], [N], [S]
        order = np.argsort(group, kind="stable")  # [N]: rows grouped by speaker, original order within
        ends = np.cumsum(counts)
        for spk, start, stop in zip(names, ends - counts, ends):
            if spk and stop - start >= self.min_speaker_rows:
                rows = order[start:stop]
                sub = x[rows]  # [n_spk, Da]
                out[rows] = (sub - sub.mean(axis=0)) / np.maximum(sub.std(axis=0), 1e-6)

    def to_dict(self) -> dict:
        return {"mode": self.mode, "min_speaker_rows": self.min_speaker_rows,
                "mean": None if self.mean is None else self.mean.tolist(),
                "std": None if self.std is None else self.std.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> "FeatureNormaliser":
        return cls(data["mode"], data.get("mean"), data.get("std"), data.get("min_speaker_rows", 5))


def _finite(x: np.ndarray) -> np.ndarray:
    """Replace NaN/inf feature values by 0 (openSMILE can emit NaN on pathological frames)."""
    return np.nan_to_num(np.asarray(x, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)


class ProjectionHead(nn.Module):
    """Linear + ReLU, as in the paper (§3.1: "a linear transformation followed with ReLU activation")."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.linear(x))


class EmotionRankCLAP(nn.Module):
    """Projection heads for audio and text features, a learnable temperature, and encode helpers."""

    def __init__(self, config: ModelConfig | None = None, normaliser: FeatureNormaliser | None = None,
                 extra: dict | None = None) -> None:
        super().__init__()
        self.config = config or ModelConfig()
        self.normaliser = normaliser or FeatureNormaliser("none")
        self.extra = dict(extra or {})  # system, caption builder, training config, metrics (saved as is)
        c = self.config
        self.audio_proj = ProjectionHead(c.audio_dim, c.embed_dim)
        self.text_proj = ProjectionHead(c.text_dim, c.embed_dim)
        # Learn log(1/tau) so the scale stays positive; clamped after each optimiser step (see clamp_logit_scale).
        self.log_logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / c.temperature_init)))
        self._audio_encoder = None
        self._text_encoder = None
        self._verified: dict[str, str] = {}  # kind -> expected fingerprint already checked against the encoder

    # ------------------------------------------------------------------ maths
    @property
    def logit_scale(self) -> torch.Tensor:
        return self.log_logit_scale.exp()

    @torch.no_grad()
    def clamp_logit_scale(self) -> None:
        self.log_logit_scale.clamp_(max=math.log(self.config.max_logit_scale))

    def project_audio(self, feats: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.audio_proj(feats), dim=-1)  # [N, D]

    def project_text(self, feats: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_proj(feats), dim=-1)  # [N, D]

    def forward(self, audio_feats: torch.Tensor, text_feats: torch.Tensor) -> dict[str, torch.Tensor]:
        """Normalised features in, {"audio": [N, D], "text": [N, D], "logit_scale": scalar} out."""
        return {"audio": self.project_audio(audio_feats), "text": self.project_text(text_feats),
                "logit_scale": self.logit_scale}

    # --------------------------------------------------------------- encoders
    @property
    def audio_encoder(self):
        """The frozen audio encoder, checked to produce the features the heads were trained on."""
        if self._audio_encoder is None:
            from emorank.encoders.registry import build_audio_encoder
            self._audio_encoder = build_audio_encoder(self.config.audio_encoder, **self.config.audio_encoder_kwargs)
        return self._matching("audio", self._audio_encoder, self.config.audio_fingerprint)

    @property
    def audio_encoder_loaded(self) -> bool:
        """Whether audio can be encoded at once: the frozen audio encoder is built and holds its weights (a neural
        encoder reads them on first use, seconds; the app says so while it waits)."""
        return self._audio_encoder is not None and bool(getattr(self._audio_encoder, "loaded", True))

    @property
    def text_encoder(self):
        """The frozen text encoder, checked to produce the features the heads were trained on."""
        if self._text_encoder is None:
            from emorank.encoders.registry import build_text_encoder
            self._text_encoder = build_text_encoder(self.config.text_encoder, **self.config.text_encoder_kwargs)
        return self._matching("text", self._text_encoder, self.config.text_fingerprint)

    def _matching(self, kind: str, encoder, expected: str):
        """`encoder`, once its fingerprint matches the one saved at training (the one place this is checked).

        Entries that only record a package version (VERSION_ONLY_KEYS) may differ. An empty expected fingerprint
        (a model built in code, not trained on cached features) is not checked."""
        if expected and self._verified.get(kind) != expected:
            actual = encoder.fingerprint()
            if fingerprint_identity(actual) != fingerprint_identity(expected):
                raise CheckpointError(f"the checkpoint was trained on {kind} features {expected!r} but its encoder "
                                      f"now produces {actual!r}; retrain or use the matching encoder settings")
            self._verified[kind] = expected
        return encoder

    def _device(self) -> torch.device:
        return self.log_logit_scale.device

    @torch.inference_mode()
    def embed_audio_features(self, raw: np.ndarray, speakers: Sequence[str] | None = None,
                             batch_size: int = 4096) -> np.ndarray:
        """Raw frozen-encoder features [N, Da] -> normalised joint-space embeddings [N, D] (numpy)."""
        x = self.normaliser(raw, speakers)
        return self._project_batched(x, self.project_audio, batch_size)

    @torch.inference_mode()
    def embed_text_features(self, raw: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        return self._project_batched(_finite(raw), self.project_text, batch_size)

    def _project_batched(self, x: np.ndarray, project, batch_size: int) -> np.ndarray:
        was_training = self.training
        self.eval()
        out = [project(torch.from_numpy(x[i:i + batch_size]).to(self._device())).cpu().numpy()
               for i in range(0, len(x), batch_size)]
        self.train(was_training)
        return np.concatenate(out) if out else np.zeros((0, self.config.embed_dim), np.float32)

    def encode_audio(self, audio, speakers: Sequence[str] | None = None, numpy: bool = True, *,
                     sr: int = 16000, max_seconds: float | None = 60.0):
        """Files, a waveform or a list of either -> [N, D] L2-normalised embeddings.

        Waveforms are ``[T]`` or ``[T, C]`` arrays at ``sr`` Hz (default 16 kHz): float in [-1, 1], or integer PCM
        (int16/int32, uint8) rescaled to [-1, 1]. They pass the same checks as files
        (:func:`emorank.data.audio.prepare_waveform`: sample rate 4..192 kHz, at most ``max_seconds``, not silent, no
        NaN/inf; errors are :class:`emorank.data.audio.AudioError` naming "waveform i"), then are resampled to 16 kHz.
        Files go through :func:`emorank.data.audio.load_audio` with the same ``max_seconds``.
        Speaker normalisation uses each speaker's own statistics when `speakers` is given and a speaker has enough
        clips; otherwise the global training statistics stored in the checkpoint. Deterministic.
        """
        from emorank.data.audio import TARGET_SR, load_audio, prepare_waveform

        items = _audio_items(audio)
        waves = [a for a in items if not isinstance(a, (str, os.PathLike))]
        if waves and len(waves) != len(items):
            raise TypeError("encode_audio takes file paths or waveforms, not a mix of both")
        enc = self.audio_encoder
        if waves:
            raw = enc.encode([prepare_waveform(np.asarray(w), sr, target_sr=TARGET_SR, name=f"waveform {i}",
                                               max_seconds=max_seconds) for i, w in enumerate(items)])
        else:
            raw = enc.encode([load_audio(p, TARGET_SR, max_seconds=max_seconds) for p in items])
        emb = self.embed_audio_features(raw, speakers)
        return emb if numpy else torch.from_numpy(emb)

    def encode_text(self, texts: str | Sequence[str], numpy: bool = True):
        """A string or a list of strings -> [N, D] L2-normalised embeddings."""
        raw = self.text_encoder.encode(_as_list(texts))
        emb = self.embed_text_features(raw)
        return emb if numpy else torch.from_numpy(emb)

    # ------------------------------------------------------------ checkpoints
    def save(self, path: str | os.PathLike, **extra: Any) -> Path:
        """Write the checkpoint folder atomically; returns its path.

        The new folder is written beside ``path`` and flushed, then swapped with the old one in one atomic step
        (Linux ``renameat2``), so ``path`` holds the old or the new checkpoint at every instant, whenever the
        process is killed. Where no atomic swap exists, the old folder is renamed away first; a kill between
        the two renames is finished at the next :func:`read_checkpoint_config` of ``path`` (see
        :func:`recover_checkpoint`), and so are the leftovers of any killed save."""
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        recover_checkpoint(path)  # leftovers of an earlier save of this path that was killed
        self.extra.update(extra)
        config = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "model": asdict(self.config),
                  "normaliser": self.normaliser.to_dict(), "git_revision": git_revision(), **self.extra}
        tmp = atomic.temp_path(path, "tmp")
        old = atomic.temp_path(path, "old", atomic.tag_of(tmp))
        try:
            tmp.mkdir()
            tensors = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
            save_file(tensors, str(tmp / HEADS_FILE))
            (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2, default=_json_default))
            atomic.fsync_tree(tmp)
            if os.path.lexists(path) and atomic.exchange(tmp, path):
                atomic.remove(tmp)  # it holds the previous checkpoint now
            else:
                if os.path.lexists(path):
                    os.replace(path, old)  # from here until the next rename, recover_checkpoint can finish it
                os.replace(tmp, path)
                atomic.remove(old)
            atomic.fsync_path(path.parent)
        except BaseException:
            if os.path.lexists(old) and not os.path.lexists(path):
                os.replace(old, path)  # an error between the two renames: put the previous checkpoint back
            atomic.remove(tmp)
            raise
        finally:
            atomic.done(tmp, old)
        return path

    @classmethod
    def from_pretrained(cls, id_or_folder: str | os.PathLike, device: str | torch.device = "cpu",
                        revision: str | None = None) -> "EmotionRankCLAP":
        """A local checkpoint folder, or a Hugging Face Hub repo id (downloaded once into the Hub cache, which
        ``HF_HUB_OFFLINE=1`` reads without network); see :mod:`emorank.model.hub`."""
        from emorank.model.hub import resolve_checkpoint

        return cls.from_checkpoint(resolve_checkpoint(id_or_folder, revision), device)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> "EmotionRankCLAP":
        """Rebuild a model from its checkpoint folder alone; strict: any mismatch raises CheckpointError."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        config = read_checkpoint_config(path)
        try:
            model_config = ModelConfig.from_dict(config.pop("model"))
            _check_dimensions(path, model_config)
            _check_heads_header(path, model_config)  # before anything of the config's size is allocated
            normaliser = FeatureNormaliser.from_dict(config.pop("normaliser"))
            model = cls(model_config, normaliser,
                        extra={k: v for k, v in config.items() if k not in ("format", "version", "git_revision")})
        except CheckpointError:
            raise
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise CheckpointError(f"checkpoint {path} has an invalid config.json ({type(err).__name__}: "
                                  f"{str(err)[:200]})") from err
        try:
            state = load_file(str(Path(path) / HEADS_FILE))
        except (OSError, SafetensorError) as err:
            raise CheckpointError(f"cannot read {Path(path) / HEADS_FILE}: {err}") from err
        bad = sorted(k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all())
        if bad:
            raise CheckpointError(f"checkpoint {path} has NaN or infinite weights in {', '.join(bad)}; it is "
                                  "corrupt or came from a diverged training run, so retrain it")
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise CheckpointError(f"checkpoint {path} does not match its own config.json: {err}") from err
        _check_normaliser(path, normaliser, model_config.audio_dim)
        return model.to(device).eval()


def _check_dimensions(path, config: ModelConfig) -> None:
    """Every size and scale of a checkpoint's model config within sane bounds (a crafted config.json of a few bytes
    must not make the loader allocate gigabytes)."""
    for name, hi in (("audio_dim", MAX_FEATURE_DIM), ("text_dim", MAX_FEATURE_DIM), ("embed_dim", MAX_EMBED_DIM)):
        value = getattr(config, name)
        if not 1 <= value <= hi:
            raise CheckpointError(f"checkpoint {path}: model.{name} = {_short(value)} is outside 1..{hi}; the "
                                  "config.json is corrupt or crafted")
    for name in ("temperature_init", "max_logit_scale"):
        value = getattr(config, name)
        if not (math.isfinite(value) and 1e-6 <= value <= 1e6):
            raise CheckpointError(f"checkpoint {path}: model.{name} = {_short(value)} is outside 1e-6..1e6; the "
                                  "config.json is corrupt or crafted")


_SAFETENSORS_ITEMSIZE = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8}
MAX_HEADER_BYTES = 1 << 20  # the heads' header is a few hundred bytes


def _check_heads_header(path, config: ModelConfig) -> None:
    """heads.safetensors's header (read alone, a few hundred bytes) must list exactly the tensors the config's
    model has, with their shapes and a float dtype, and the file must be as long as the header says: checked
    before the model or the weights are allocated."""
    file = Path(path) / HEADS_FILE
    try:
        with open(file, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            n = int.from_bytes(f.read(8), "little") if size >= 8 else -1
            if not 2 <= n <= min(MAX_HEADER_BYTES, size - 8):
                raise CheckpointError(f"cannot read {file}: not a safetensors file (header length {n}, file size "
                                      f"{size} bytes)")
            header = json.loads(f.read(n).decode("utf-8"))
    except OSError as err:
        raise CheckpointError(f"cannot read {file}: {err.strerror or err}") from err
    except (ValueError, RecursionError) as err:
        raise CheckpointError(f"cannot read {file}: its header is not valid JSON") from err
    with torch.device("meta"):  # shapes only: nothing is allocated
        expected = {k: list(v.shape) for k, v in EmotionRankCLAP(config).state_dict().items()}
    tensors = {k: v for k, v in header.items() if k != "__metadata__"} if isinstance(header, dict) else {}
    if sorted(tensors) != sorted(expected):
        raise CheckpointError(f"checkpoint {path} does not match its own config.json: {HEADS_FILE} holds "
                              f"{_short(sorted(tensors))}, the model has {sorted(expected)}")
    end = 0
    for key, shape in expected.items():
        info = tensors[key]
        if not isinstance(info, dict) or info.get("shape") != shape:
            got = info.get("shape") if isinstance(info, dict) else info
            raise CheckpointError(f"checkpoint {path} does not match its own config.json: {HEADS_FILE} holds {key} "
                                  f"of shape {_short(got)}, the config asks for {shape}")
        offsets, itemsize = info.get("data_offsets"), _SAFETENSORS_ITEMSIZE.get(info.get("dtype"))
        if itemsize is None or not (isinstance(offsets, list) and len(offsets) == 2
                                    and all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
                                    and offsets[1] - offsets[0] == math.prod(shape) * itemsize and offsets[0] >= 0):
            raise CheckpointError(f"cannot read {file}: {key} has dtype {_short(info.get('dtype'))} and offsets "
                                  f"{_short(offsets)}, which do not describe a float tensor of shape {shape}")
        end = max(end, offsets[1])
    if 8 + n + end != size:
        raise CheckpointError(f"cannot read {file}: its header describes {8 + n + end} bytes but the file has {size}; "
                              "it is truncated or corrupt")


def _check_normaliser(path, normaliser: FeatureNormaliser, audio_dim: int) -> None:
    """The stored feature statistics must be finite, positive (std) and one per audio feature."""
    if normaliser.mode == "none":
        return
    for name, stats in (("mean", normaliser.mean), ("std", normaliser.std)):
        if stats is None:
            raise CheckpointError(f"checkpoint {path}: the {normaliser.mode} normaliser has no {name}; the "
                                  "config.json is incomplete")
        if stats.shape != (audio_dim,):
            raise CheckpointError(f"checkpoint {path}: the normaliser {name} has {stats.size} values but the audio "
                                  f"features have {audio_dim} dimensions; the config.json is inconsistent")
        if not np.isfinite(stats).all() or (name == "std" and not (stats > 0).all()):
            raise CheckpointError(f"checkpoint {path}: the normaliser {name} holds NaN, infinite or (std) "
                                  "non-positive values; the config.json is corrupt")


MAX_CHANNELS = 64  # a 2-D array with more columns than this is no [T, C] waveform (see _audio_items)


def _audio_items(audio) -> list:
    """The items of ``encode_audio``'s argument: a path, a [T] or [T, C] array, or a list of them.

    A 2-D array is ONE waveform, [T, C] (the documented form), never a batch of rows; one with more than
    MAX_CHANNELS columns is refused rather than guessed at ([N, T] batches and channels-first [C, T] arrays look
    like that)."""
    if isinstance(audio, (str, os.PathLike)):
        return [audio]
    ndim = getattr(audio, "ndim", None)
    if isinstance(ndim, int) and ndim in (1, 2) and hasattr(audio, "shape"):
        if ndim == 2 and audio.shape[1] > MAX_CHANNELS:
            raise ValueError(f"a 2-D array is one waveform of shape [T, C] with at most {MAX_CHANNELS} channels, "
                             f"got shape {tuple(audio.shape)}; to encode several waveforms pass a list of 1-D "
                             "arrays, and transpose a channels-first [C, T] array")
        return [audio]
    return list(audio)
