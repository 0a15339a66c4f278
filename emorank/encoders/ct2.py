"""Whisper weights in CTranslate2's ``model.bin``: a reader that executes nothing, and the strict mapping into
transformers' Whisper (encoder, and the full model for the transcription check).

CTranslate2 format (``python/ctranslate2/specs/model_spec.py::_serialize``, ``src/models/model.cc``), little
endian: ``u32 binary_version``, ``str spec_name``, ``u32 spec_revision``, ``u32 n_variables``, then per variable
``str name, u8 rank, u32 dims[rank], u8 dtype_id, u32 n_bytes, bytes``, then ``u32 n_aliases`` and per alias
``str alias, str target``. A ``str`` is ``u16 length`` (including the terminating NUL) + UTF-8 bytes + NUL.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from emorank.encoders.base import (
    EncoderInputError,
)

CT2_BINARY_VERSIONS = (4, 5, 6)  # one layout (model.cc reads them alike): dtype ids since v4, aliases since v3
CT2_DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")  # DataType enum order (types.h)
CT2_GELU = 3  # common_spec.Activation.GELU
MAX_RANK = 8

class CT2FormatError(ValueError):
    """A CTranslate2 model file that is truncated, corrupt, or not the expected model."""

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
