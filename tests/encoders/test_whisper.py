"""The Whisper encoders: our CTranslate2 reader, the mapping into transformers' Whisper, the pooled embeddings.

Offline and fast: tiny random Whisper models are converted to CTranslate2's format by a writer in this file (an
independent re-implementation of CTranslate2's ``_serialize`` and of its transformers converter), read back with
emorank's reader and compared with the originals. The pip wheels that hold the real weights are exercised when
they are installed (and compared with CTranslate2 itself when ``ctranslate2`` is installed).
"""
import hashlib
import io
import json
import struct
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from emorank.encoders import ct2, whisper
from emorank.encoders.registry import AUDIO_ENCODERS, build_audio_encoder
from emorank.encoders.opensmile import EGeMAPSEncoder
from emorank.encoders.base import EncoderInputError
from emorank.encoders.ct2 import (CT2FormatError, encoder_hidden_states, load_whisper, load_whisper_encoder,
                                  parse_ct2, whisper_config, whisper_state_dict)
from emorank.encoders.whisper import (EncoderFallbackWarning, WheelPart, WhisperBaseEncoder, WhisperTinyEnEncoder,
                                      WhisperWeights, WhisperWeightsError, WhisperWheelMissingError,
                                      audio_encoder_or_egemaps)

SR = 16000


# ---------------------------------------------------------------- a CTranslate2 writer (test side)
TYPE_IDS = {"float32": 0, "int8": 1, "int16": 2, "int32": 3, "float16": 4, "bfloat16": 5}


def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<H", len(raw) + 1) + raw + b"\0"


def write_ct2(variables: dict, aliases: dict | None = None, spec: str = "WhisperSpec", revision: int = 3,
              version: int = 6) -> bytes:
    """Bytes of a model.bin as CTranslate2's ``ModelSpec._serialize`` writes them (variables in name order).

    A value is a numpy array, or ``("bfloat16", uint16 array)`` for bfloat16 bits."""
    out = [struct.pack("<I", version), _string(spec), struct.pack("<I", revision), struct.pack("<I", len(variables))]
    for name in sorted(variables):
        value = variables[name]
        dtype, value = value if isinstance(value, tuple) else (value.dtype.name, value)
        value = np.asarray(value)
        out += [_string(name), struct.pack("<B", value.ndim), *(struct.pack("<I", d) for d in value.shape),
                struct.pack("<B", TYPE_IDS[dtype]), struct.pack("<I", value.nbytes), value.tobytes()]
    aliases = aliases or {}
    out.append(struct.pack("<I", len(aliases)))
    for alias, target in aliases.items():
        out += [_string(alias), _string(target)]
    return b"".join(out)


def ct2_whisper(model, dtype=np.float32) -> tuple[dict, dict]:
    """Variables and aliases of a transformers WhisperForConditionalGeneration as CTranslate2's converter lays
    them out (``WhisperLoader``/``BartLoader``: fused [q; k; v] self-attention with a zero key bias, fused [k; v]
    cross-attention, GELU, pre-norm, the output projection an alias of the token embeddings)."""
    sd = {k: v.detach().numpy().astype(dtype) for k, v in model.state_dict().items()}
    cfg = model.config
    var: dict[str, np.ndarray] = {}

    def linear(dst, src, bias=True):
        var[dst + "/weight"] = sd[src + ".weight"]
        if bias:
            var[dst + "/bias"] = sd[src + ".bias"]

    def norm(dst, src):
        var[dst + "/gamma"], var[dst + "/beta"] = sd[src + ".weight"], sd[src + ".bias"]

    def fuse(dst, srcs):
        var[dst + "/weight"] = np.concatenate([sd[s + ".weight"] for s in srcs])
        var[dst + "/bias"] = np.concatenate([sd.get(s + ".bias", np.zeros(sd[s + ".weight"].shape[0], dtype))
                                             for s in srcs])

    def layer(dst, src, cross):
        norm(f"{dst}/self_attention/layer_norm", f"{src}.self_attn_layer_norm")
        fuse(f"{dst}/self_attention/linear_0", [f"{src}.self_attn.{p}_proj" for p in "qkv"])
        linear(f"{dst}/self_attention/linear_1", f"{src}.self_attn.out_proj")
        if cross:
            norm(f"{dst}/attention/layer_norm", f"{src}.encoder_attn_layer_norm")
            linear(f"{dst}/attention/linear_0", f"{src}.encoder_attn.q_proj")
            fuse(f"{dst}/attention/linear_1", [f"{src}.encoder_attn.{p}_proj" for p in "kv"])
            linear(f"{dst}/attention/linear_2", f"{src}.encoder_attn.out_proj")
        norm(f"{dst}/ffn/layer_norm", f"{src}.final_layer_norm")
        linear(f"{dst}/ffn/linear_0", f"{src}.fc1")
        linear(f"{dst}/ffn/linear_1", f"{src}.fc2")

    linear("encoder/conv1", "model.encoder.conv1")
    linear("encoder/conv2", "model.encoder.conv2")
    var["encoder/position_encodings/encodings"] = sd["model.encoder.embed_positions.weight"]
    for i in range(cfg.encoder_layers):
        layer(f"encoder/layer_{i}", f"model.encoder.layers.{i}", cross=False)
    norm("encoder/layer_norm", "model.encoder.layer_norm")
    var["decoder/embeddings/weight"] = sd["model.decoder.embed_tokens.weight"]
    var["decoder/position_encodings/encodings"] = sd["model.decoder.embed_positions.weight"]
    for i in range(cfg.decoder_layers):
        layer(f"decoder/layer_{i}", f"model.decoder.layers.{i}", cross=True)
    norm("decoder/layer_norm", "model.decoder.layer_norm")
    i8, i16 = np.int8, np.int16
    var.update({"encoder/num_heads": i16(cfg.encoder_attention_heads), "decoder/num_heads":
                i16(cfg.decoder_attention_heads), "decoder/activation": i8(3), "decoder/pre_norm": i8(1),
                "decoder/scale_embeddings": i8(0), "decoder/alibi": i8(0), "decoder/alibi_use_positive_positions":
                i8(0), "decoder/scale_alibi": i8(0), "decoder/start_from_zero_embedding": i8(0),
                "decoder/alignment_heads": i16(1), "decoder/alignment_layer": i16(-1)})
    var = {k: np.asarray(v) for k, v in var.items()}
    return var, {"decoder/projection/weight": "decoder/embeddings/weight"}


def random_whisper(seed=0, d_model=16, heads=2, layers=2, ffn=32, n_mels=8, positions=12, vocab=40):
    """A transformers Whisper with every parameter drawn at random (so swapped weights cannot go unnoticed)."""
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    config = WhisperConfig(vocab_size=vocab, num_mel_bins=n_mels, d_model=d_model, encoder_layers=layers,
                           decoder_layers=layers, encoder_attention_heads=heads, decoder_attention_heads=heads,
                           encoder_ffn_dim=ffn, decoder_ffn_dim=ffn, max_source_positions=positions,
                           max_target_positions=8, pad_token_id=None, bos_token_id=None, eos_token_id=None,
                           decoder_start_token_id=0, suppress_tokens=None, begin_suppress_tokens=None)
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    return model


@pytest.fixture(scope="module")
def small():
    """(model, model.bin bytes in float32) of a tiny random Whisper."""
    model = random_whisper()
    return model, write_ct2(*ct2_whisper(model))


def _variables(model, **change):
    var, aliases = ct2_whisper(model)
    for k, v in change.items():
        k = k.replace("__", "/")
        if v is None:
            var.pop(k)
        else:
            var[k] = v
    return var, aliases


# ---------------------------------------------------------------- reader
def test_reader_returns_names_shapes_dtypes_values_and_aliases():
    rng = np.random.default_rng(0)
    w16 = rng.normal(size=(3, 4)).astype(np.float16)
    bf = rng.normal(size=5).astype(np.float32)
    bf_bits = (bf.view(np.uint32) >> 16).astype(np.uint16)
    data = write_ct2({"a/w": w16, "a/n": np.int16(7), "b": np.arange(6, dtype=np.int32).reshape(2, 3),
                      "c/bf": ("bfloat16", bf_bits), "flag": np.int8(1)}, {"z/alias": "a/w"}, spec="S", revision=9)
    m = parse_ct2(data)
    assert (m.binary_version, m.spec, m.revision) == (6, "S", 9)
    assert set(m.variables) == {"a/w", "a/n", "b", "c/bf", "flag"} and m.aliases == {"z/alias": "a/w"}
    assert m["a/w"].dtype == np.float16 and np.array_equal(m["a/w"], w16) and m["z/alias"] is m["a/w"]
    assert m["a/n"].shape == () and int(m["a/n"]) == 7 and m["b"].tolist() == [[0, 1, 2], [3, 4, 5]]
    np.testing.assert_array_equal(m["c/bf"], (bf_bits.astype(np.uint32) << 16).view(np.float32))
    assert np.abs(m["c/bf"] - bf).max() < 0.01 * np.abs(bf).max()


def test_every_truncation_is_a_format_error(small):
    _, data = small
    m = parse_ct2(data)
    cuts = sorted(set(range(64)) | set(range(64, len(data), 97)) | {len(data) - 1})
    for n in cuts:
        with pytest.raises(CT2FormatError, match="truncated|corrupt"):
            parse_ct2(data[:n])
    assert len(m.variables) > 40


@pytest.mark.parametrize("mutate, message", [
    (lambda d: struct.pack("<I", 7) + d[4:], "binary version 7"),
    (lambda d: struct.pack("<I", 3) + d[4:], "binary version 3"),
    (lambda d: d + b"\0", "unexpected bytes"),
    (lambda d: d[:4] + struct.pack("<H", 0) + d[6:], "NUL-terminated|truncated|corrupt"),
])
def test_corrupt_headers_are_refused(mutate, message):
    data = write_ct2({"x": np.ones(3, np.float32)})
    with pytest.raises(CT2FormatError, match=message):
        parse_ct2(mutate(data))


def _record(name, rank_shape, type_id, n_bytes, payload):
    return (_string(name) + struct.pack("<B", len(rank_shape)) + b"".join(struct.pack("<I", d) for d in rank_shape)
            + struct.pack("<BI", type_id, n_bytes) + payload)


@pytest.mark.parametrize("record, message", [
    (_record("x", (2,), 9, 8, b"\0" * 8), "unknown dtype id 9"),
    (_record("x", (2,), 0, 4, b"\0" * 4), "declares 4 bytes"),
    (_record("x", (1,) * 9, 0, 4, b"\0" * 4), "rank 9"),
    (b"\x03\x00\xff\xfe\x00" + _record("", (), 0, 0, b"")[3:], "not UTF-8|corrupt"),
])
def test_corrupt_variables_are_refused(record, message):
    data = struct.pack("<I", 6) + _string("S") + struct.pack("<II", 1, 1) + record + struct.pack("<I", 0)
    with pytest.raises(CT2FormatError, match=message):
        parse_ct2(data)


def test_duplicate_variables_and_dangling_aliases_are_refused():
    one = _record("x", (1,), 0, 4, b"\0" * 4)
    head = struct.pack("<I", 6) + _string("S") + struct.pack("<I", 1)
    with pytest.raises(CT2FormatError, match="appears twice"):
        parse_ct2(head + struct.pack("<I", 2) + one + one + struct.pack("<I", 0))
    with pytest.raises(CT2FormatError, match="does not name one variable"):
        parse_ct2(write_ct2({"x": np.ones(1, np.float32)}, {"y": "nope"}))


# ---------------------------------------------------------------- mapping into transformers
def test_roundtrip_reproduces_the_whole_model_exactly(small):
    model, data = small
    mapped = load_whisper(parse_ct2(data))
    original = model.state_dict()
    assert set(mapped.state_dict()) == set(original)
    for k, v in mapped.state_dict().items():
        assert torch.equal(v, original[k]), k
    mel = torch.randn(2, 8, 24)
    tokens = torch.tensor([[0, 5, 7, 3], [1, 2, 3, 4]])
    with torch.no_grad():
        want = model(input_features=mel, decoder_input_ids=tokens).logits
        got = mapped(input_features=mel, decoder_input_ids=tokens).logits
    assert torch.equal(got, want)


def test_encoder_alone_reproduces_the_original_encoder_exactly(small):
    model, data = small
    enc = load_whisper_encoder(parse_ct2(data))
    mel = torch.randn(3, 8, 24)
    with torch.no_grad():
        want = model.model.encoder(mel, output_hidden_states=True).hidden_states
        got = enc(mel, output_hidden_states=True).hidden_states
    assert all(torch.equal(a, b) for a, b in zip(got, want)) and len(got) == 3


def test_float16_file_gives_the_original_weights_rounded_to_float16():
    model = random_whisper(seed=1)
    mapped = load_whisper(parse_ct2(write_ct2(*ct2_whisper(model, np.float16))))
    for k, v in model.state_dict().items():
        assert torch.equal(mapped.state_dict()[k], v.half().float()), k


def test_config_is_read_from_the_shapes_and_scalars(small):
    cfg = whisper_config(parse_ct2(small[1]))
    assert (cfg.d_model, cfg.encoder_layers, cfg.decoder_layers, cfg.encoder_attention_heads, cfg.num_mel_bins,
            cfg.encoder_ffn_dim, cfg.vocab_size, cfg.max_source_positions, cfg.max_target_positions) == \
        (16, 2, 2, 2, 8, 32, 40, 12, 8)


@pytest.mark.parametrize("change, message", [
    ({"encoder__layer_1__ffn__linear_1__bias": None}, "'encoder/layer_1/ffn/linear_1/bias' is missing"),
    ({"encoder__extra": np.ones(2, np.float32)}, "unexpected variables.*encoder/extra"),
    ({"decoder__activation": np.int8(1)}, "decoder/activation = 1, expected 3"),
    ({"decoder__pre_norm": np.int8(0)}, "decoder/pre_norm"),
    ({"encoder__num_heads": np.int16(3)}, "do not divide"),
    ({"encoder__layer_0__ffn__linear_0__weight": np.ones((16, 32), np.float32)}, "do not fit"),
    ({"encoder__layer_0__ffn__linear_0__weight": np.ones((32, 16), np.int8)}, "quantized"),
])
def test_mapping_refuses_models_it_cannot_reproduce(small, change, message):
    var, aliases = _variables(small[0], **change)
    with pytest.raises(CT2FormatError, match=message):
        load_whisper(parse_ct2(write_ct2(var, aliases)))


def test_a_key_bias_is_refused_since_whisper_has_none(small):
    var, aliases = ct2_whisper(small[0])
    bias = var["encoder/layer_0/self_attention/linear_0/bias"].copy()
    bias[16 + 3] = 0.5  # inside the key block of [q; k; v]
    var["encoder/layer_0/self_attention/linear_0/bias"] = bias
    with pytest.raises(CT2FormatError, match="key projection has a bias"):
        whisper_state_dict(parse_ct2(write_ct2(var, aliases)))


def test_other_specs_are_refused(small):
    var, aliases = ct2_whisper(small[0])
    with pytest.raises(CT2FormatError, match="TransformerSpec"):
        whisper_config(parse_ct2(write_ct2(var, aliases, spec="TransformerSpec")))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_weights_are_refused(small, bad):
    var, aliases = ct2_whisper(small[0])
    w = var["encoder/layer_1/self_attention/linear_1/weight"].copy()
    w[2, 3] = bad
    var["encoder/layer_1/self_attention/linear_1/weight"] = w
    with pytest.raises(CT2FormatError, match="layers.1.self_attn.out_proj.weight contain NaN or infinite"):
        load_whisper_encoder(parse_ct2(write_ct2(var, aliases)))


# ---------------------------------------------------------------- any-length forward
def _sliced_encoder(encoder, frames):
    """transformers' own WhisperEncoder for exactly ``2 * frames`` mel frames, with the table's first rows."""
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    config = encoder.config.__class__(**{**encoder.config.to_dict(), "max_source_positions": frames})
    short = WhisperEncoder(config).eval()
    state = encoder.state_dict()
    state["embed_positions.weight"] = state["embed_positions.weight"][:frames]
    short.load_state_dict(state, strict=True)
    return short


def test_hidden_states_equal_transformers_at_full_length_and_at_any_even_length(small):
    enc = load_whisper_encoder(parse_ct2(small[1]))
    for frames in (12, 5, 1):
        mel = torch.randn(2, 8, 2 * frames)
        ref = enc if frames == 12 else _sliced_encoder(enc, frames)
        with torch.no_grad():
            want = ref(mel, output_hidden_states=True).hidden_states
            got = encoder_hidden_states(enc, mel, [0, 1, 2])
        assert [torch.equal(got[k], want[k]) for k in range(3)] == [True] * 3
        assert not torch.equal(got[2], encoder_hidden_states(enc, mel, [1])[1])  # the last one is normalised


def test_odd_lengths_give_ceil_half_frames_and_too_long_is_refused(small):
    enc = load_whisper_encoder(parse_ct2(small[1]))
    with torch.no_grad():
        assert encoder_hidden_states(enc, torch.randn(1, 8, 7), [1])[1].shape == (1, 4, 16)
        with pytest.raises(EncoderInputError, match="30 s"):
            encoder_hidden_states(enc, torch.randn(1, 8, 26), [1])


# ---------------------------------------------------------------- the encoders, on fake wheels
def _fake_wheel(root: Path, module: str, files: dict[str, bytes]) -> None:
    pkg = root / module
    for rel, data in files.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_bytes(data)
    (pkg / "__init__.py").write_text("raise RuntimeError('the wheel code must not run')\n")


@pytest.fixture(scope="module")
def tiny_en_shaped():
    """A random Whisper with tiny.en's encoder shape (width 384, 4 blocks, 80 mels, 1500 positions)."""
    model = random_whisper(seed=2, d_model=384, heads=6, layers=4, ffn=96, n_mels=80, positions=1500, vocab=16)
    return model, write_ct2(*ct2_whisper(model, np.float16))


@pytest.fixture
def fake_weights(tmp_path, monkeypatch, tiny_en_shaped):
    """WHISPER_WEIGHTS['whisper-tiny-en'] pointed at two fake wheels holding a random model in two parts."""
    model, data = tiny_en_shaped
    half = len(data) // 2
    _fake_wheel(tmp_path, "fake_whisper_a", {"w/model.bin.part1": data[:half]})
    _fake_wheel(tmp_path, "fake_whisper_b", {"w/model.bin.part2": data[half:], "w/tokenizer.json": b"{}"})
    monkeypatch.syspath_prepend(str(tmp_path))
    parts = (WheelPart("fake-whisper-a", "1.0", "fake_whisper_a", "w/model.bin.part1",
                       hashlib.sha256(data[:half]).hexdigest()),
             WheelPart("fake-whisper-b", "1.0", "fake_whisper_b", "w/model.bin.part2",
                       hashlib.sha256(data[half:]).hexdigest()))
    tok = WheelPart("fake-whisper-b", "1.0", "fake_whisper_b", "w/tokenizer.json", hashlib.sha256(b"{}").hexdigest())
    monkeypatch.setitem(whisper.WHISPER_WEIGHTS, "whisper-tiny-en", WhisperWeights("tiny.en", parts, tok))
    whisper._loaded_encoder.cache_clear()
    yield model, tmp_path
    whisper._loaded_encoder.cache_clear()


def _clip(seconds, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * (140 + 40 * t) * t) * (1 + 0.5 * np.sin(7 * t))
            + 0.05 * rng.normal(size=t.size)).astype(np.float32)


def _reference(model, wave, layer, pad=False):
    """Mean over the clip's frames of transformers' hidden_states[layer], from transformers' own encoder."""
    from transformers import WhisperFeatureExtractor

    fe = WhisperFeatureExtractor(feature_size=80, sampling_rate=SR, hop_length=160, chunk_length=30, n_fft=400)
    mel = fe([wave], sampling_rate=SR, padding="max_length" if pad else "longest", return_tensors="pt").input_features
    frames = -(-(len(wave) // 160) // 2)
    enc = model.model.encoder if pad else _sliced_encoder(model.model.encoder, mel.shape[-1] // 2)
    with torch.no_grad():
        hidden = enc(mel, output_hidden_states=True).hidden_states[layer]  # [1, T', D]
    return hidden[0, :frames].mean(0).numpy()


def test_encoder_output_is_transformers_hidden_state_mean_over_the_clip(fake_weights):
    model = fake_weights[0]
    half = model.half().float()  # the fake wheel stores float16, as the real ones do
    wave = _clip(0.64)  # 64 mel frames: an even count, so transformers' own encoder can take it unpadded
    for layer in (2, 4):
        got = WhisperTinyEnEncoder(layer=layer, device="cpu").encode(wave)
        np.testing.assert_allclose(got[0], _reference(half, wave, layer), rtol=0, atol=1e-5)
    padded = WhisperTinyEnEncoder(layer=1, pad=True, device="cpu").encode(wave)
    np.testing.assert_allclose(padded[0], _reference(half, wave, 1, pad=True), rtol=0, atol=1e-5)
    assert np.abs(padded - WhisperTinyEnEncoder(layer=1, device="cpu").encode(wave)).max() > 1e-3


def test_encoder_shapes_layers_pooling_and_batches(fake_weights):
    waves = [_clip(0.5, 0), _clip(0.5, 1), _clip(0.23, 2), _clip(0.01, 3)]
    base = WhisperTinyEnEncoder(device="cpu")
    out = base.encode(waves)
    assert out.shape == (4, 384) and out.dtype == np.float32 and np.isfinite(out).all()
    alone = np.concatenate([base.encode(w) for w in waves])
    np.testing.assert_allclose(out, alone, rtol=1e-5, atol=1e-5)  # batching does not change a clip's embedding
    both = WhisperTinyEnEncoder(layer=[2, 4], pooling="mean_std", device="cpu")
    got = both.encode(waves[:2])
    assert both.dim == 4 * 384 == got.shape[1]
    np.testing.assert_allclose(got[:, :384], out[:2], rtol=0, atol=1e-6)
    assert (got[:, 384:768] > 0).all()  # standard deviations
    np.testing.assert_allclose(got[:, 768:1152], WhisperTinyEnEncoder(layer=-1, device="cpu").encode(waves[:2]),
                               rtol=0, atol=1e-6)
    assert base.encode([]).shape == (0, 384)


def test_encode_uses_one_thread_and_restores_the_former_count(fake_weights, monkeypatch):
    seen = []
    real = whisper.encoder_hidden_states
    monkeypatch.setattr(whisper, "encoder_hidden_states",
                        lambda *a, **k: (seen.append(torch.get_num_threads()), real(*a, **k))[1])
    before = torch.get_num_threads()
    one = WhisperTinyEnEncoder(device="cpu").encode(_clip(0.3))
    assert seen == [1] and torch.get_num_threads() == before
    torch.set_num_threads(2)
    try:
        untouched = WhisperTinyEnEncoder(device="cpu", threads=None).encode(_clip(0.3))
        assert seen[-1] == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    np.testing.assert_allclose(one, untouched, rtol=1e-5, atol=1e-5)
    assert WhisperTinyEnEncoder(threads=2).fingerprint() == WhisperTinyEnEncoder().fingerprint()


def test_the_wheel_code_is_never_imported(fake_weights):
    WhisperTinyEnEncoder(device="cpu").encode(_clip(0.2))
    assert "fake_whisper_a" not in sys.modules and "fake_whisper_b" not in sys.modules


def test_a_changed_byte_is_an_error_naming_the_package(fake_weights):
    path = fake_weights[1] / "fake_whisper_b" / "w" / "model.bin.part2"
    data = bytearray(path.read_bytes())
    data[100] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(WhisperWeightsError, match=r"fake-whisper-b .*not the pinned one.*--force-reinstall "
                                                  r"--no-cache-dir fake-whisper-b==1.0"):
        WhisperTinyEnEncoder(device="cpu").encode(_clip(0.2))


def test_a_missing_wheel_says_so_and_the_fallback_is_egemaps(fake_weights, monkeypatch):
    parts = whisper.WHISPER_WEIGHTS["whisper-tiny-en"].parts
    gone = WheelPart("fake-whisper-c", "2.0", "fake_whisper_not_installed", "x.bin", "0" * 64)
    monkeypatch.setitem(whisper.WHISPER_WEIGHTS, "whisper-tiny-en",
                        WhisperWeights("tiny.en", (parts[0], gone), parts[0]))
    enc = build_audio_encoder("whisper-tiny-en", device="cpu")  # constructing loads nothing
    assert enc.dim == 384
    with pytest.raises(WhisperWheelMissingError, match=r"fake-whisper-c==2.0, which is not installed.*'egemaps'"):
        enc.encode(_clip(0.2))
    with pytest.warns(EncoderFallbackWarning, match=r"needs the pip package fake-whisper-c==2.0.*'egemaps' is used"):
        fallback = audio_encoder_or_egemaps("whisper-tiny-en", layer=3)
    assert isinstance(fallback, EGeMAPSEncoder)


def test_no_fallback_warning_when_the_wheels_are_there(fake_weights):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        enc = audio_encoder_or_egemaps("whisper-tiny-en", layer=3)
    assert isinstance(enc, WhisperTinyEnEncoder) and enc.layers == (3,)
    with pytest.raises(EncoderInputError, match="valid: whisper-base, whisper-tiny-en"):
        audio_encoder_or_egemaps("whisper-large")


def test_weights_of_another_shape_are_refused(tmp_path, monkeypatch, small):
    data = small[1]
    _fake_wheel(tmp_path, "fake_whisper_small", {"model.bin": data})
    monkeypatch.syspath_prepend(str(tmp_path))
    part = WheelPart("fake-small", "1", "fake_whisper_small", "model.bin", hashlib.sha256(data).hexdigest())
    monkeypatch.setitem(whisper.WHISPER_WEIGHTS, "whisper-tiny-en", WhisperWeights("tiny.en", (part,), part))
    whisper._loaded_encoder.cache_clear()
    try:
        with pytest.raises(WhisperWeightsError, match=r"\(16, 2, 8\), expected \(384, 4, 80\)"):
            WhisperTinyEnEncoder(device="cpu").load()
    finally:
        whisper._loaded_encoder.cache_clear()


# ---------------------------------------------------------------- settings, registry, fingerprint
def test_registry_and_defaults():
    assert AUDIO_ENCODERS["whisper-base"] is WhisperBaseEncoder
    assert AUDIO_ENCODERS["whisper-tiny-en"] is WhisperTinyEnEncoder
    base, tiny = build_audio_encoder("whisper-base"), build_audio_encoder("whisper-tiny-en")
    assert (base.layers, base.pooling, base.pad, base.dim) == ((3,), "mean_std", False, 1024)  # chosen on dev
    assert (tiny.layers, tiny.pooling, tiny.pad, tiny.dim) == ((2,), "mean", False, 384)
    assert WhisperBaseEncoder(layer=-1).layers == (6,) and WhisperBaseEncoder(layer=[1, 6], pooling="mean").dim == 1024
    with pytest.raises(EncoderInputError, match="does not take 'model'"):
        build_audio_encoder("whisper-base", model="x")


@pytest.mark.parametrize("kwargs, message", [
    ({"layer": 7}, "blocks 1..6"), ({"layer": -2}, "blocks 1..6"), ({"layer": []}, "block index"),
    ({"layer": True}, "block index"), ({"layer": [2, 2]}, "twice"), ({"layer": "3"}, "block index"),
    ({"pooling": "max"}, "pooling must be one of mean, mean_std"), ({"crop_seconds": 31}, r"\(0, 30\]"),
    ({"batch_size": 0}, "batch_size"), ({"threads": 0}, "threads"), ({"threads": True}, "threads"),
])
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(EncoderInputError, match=message):
        WhisperBaseEncoder(**kwargs)


def test_fingerprint_changes_with_everything_that_changes_the_output(monkeypatch):
    fp = WhisperBaseEncoder().fingerprint()
    assert fp == WhisperBaseEncoder(layer=[3], batch_size=2, device="cpu", threads=2).fingerprint()
    others = [WhisperBaseEncoder(layer=4), WhisperBaseEncoder(layer=[3, 4]), WhisperBaseEncoder(pooling="mean"),
              WhisperBaseEncoder(pad=True), WhisperBaseEncoder(crop_seconds=10), WhisperTinyEnEncoder(layer=3)]
    prints = {fp, *(e.fingerprint() for e in others)}
    assert len(prints) == 1 + len(others)
    w = whisper.WHISPER_WEIGHTS["whisper-base"]
    changed = WheelPart(*[getattr(w.parts[1], f) for f in ("package", "version", "module", "path")], "1" * 64)
    monkeypatch.setitem(whisper.WHISPER_WEIGHTS, "whisper-base",
                        WhisperWeights(w.model, (w.parts[0], changed), w.tokenizer))
    assert WhisperBaseEncoder().fingerprint() != fp
    assert "weights=" in fp and "layer=3" in fp and "pool=mean" in fp


def test_registration_does_not_depend_on_import_order():
    for first in ("emorank.encoders.whisper", "emorank.encoders"):
        code = (f"import {first}; from emorank.encoders import AUDIO_ENCODERS; "
                "print(sorted(k for k in AUDIO_ENCODERS if k.startswith('whisper')))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert out.stdout.strip() == "['whisper-base', 'whisper-tiny-en']", out.stderr


# ---------------------------------------------------------------- the real wheels (when installed)
REAL = [name for name in ("whisper-base", "whisper-tiny-en") if whisper.whisper_available(name) is None]
needs_wheels = pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.skipif(n not in REAL, reason=f"the wheels of {n} are not installed"))
    for n in ("whisper-base", "whisper-tiny-en")])


@pytest.fixture(scope="module")
def speech():
    """Four seconds of eSpeak NG speech at 16 kHz (the project's offline synthesiser)."""
    from scipy.signal import resample_poly

    from emorank.data.espeak import Espeak, SpeechParams

    samples = Espeak().synthesize("Kids are talking by the door.", SpeechParams(rate=150))
    return resample_poly(samples.astype(np.float32) / 32768, 320, 441).astype(np.float32)


@needs_wheels
def test_real_wheels_verify_map_and_encode(name, speech):
    weights = whisper.WHISPER_WEIGHTS[name]
    model = parse_ct2(weights.read())
    cfg = whisper_config(model)
    want = {"whisper-base": (512, 6, 6, 8, 51865), "whisper-tiny-en": (384, 4, 4, 6, 51864)}[name]
    assert (cfg.d_model, cfg.encoder_layers, cfg.decoder_layers, cfg.encoder_attention_heads, cfg.vocab_size) == want
    enc = build_audio_encoder(name, device="cpu")
    out = enc.encode([speech, speech[:8000]])
    assert out.shape == (2, enc.dim) and np.isfinite(out).all()
    np.testing.assert_array_equal(out[:1], enc.encode(speech))  # deterministic


def _ctranslate2_model(name, data):
    ctranslate2 = pytest.importorskip("ctranslate2", reason="ctranslate2 is not installed (pip install ctranslate2)")
    folder = whisper.WHISPER_WEIGHTS[name].tokenizer.locate().parent  # config.json and the vocabulary sit there
    files = {"model.bin": io.BytesIO(bytes(data))}
    files.update({p.name: io.BytesIO(p.read_bytes()) for p in folder.iterdir()
                  if p.name == "config.json" or p.name.startswith("vocabulary.")})
    return ctranslate2, ctranslate2.models.Whisper(name, device="cpu", compute_type="float32", files=files)


def _padded_mel(wave):
    return whisper._feature_extractor(80)([wave], sampling_rate=SR, padding="max_length",
                                          return_tensors="np").input_features.astype(np.float32)  # [1, 80, 3000]


@needs_wheels
def test_encoder_output_equals_ctranslate2(name, speech):
    data = whisper.WHISPER_WEIGHTS[name].read()
    ctranslate2, ct = _ctranslate2_model(name, data)
    mel = _padded_mel(speech)
    ref = np.array(ct.encode(ctranslate2.StorageView.from_array(mel), to_cpu=True))  # [1, 1500, D]
    enc = WhisperBaseEncoder if name == "whisper-base" else WhisperTinyEnEncoder
    net = whisper._loaded_encoder(name, "cpu")
    with torch.no_grad():
        ours = encoder_hidden_states(net, torch.from_numpy(mel), [enc.n_layers])[enc.n_layers].numpy()
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).max() <= 1e-3 * np.abs(ref).max()  # float16 weights: well inside its precision


@needs_wheels
def test_decoder_gives_ctranslate2s_tokens(name, speech):
    """The whole mapped model (decoder too) decodes greedily to CTranslate2's own tokens."""
    weights = whisper.WHISPER_WEIGHTS[name]
    data = weights.read()
    ctranslate2, ct = _ctranslate2_model(name, data)
    tok = weights.read_tokenizer()
    specials = ["<|startoftranscript|>", *(["<|en|>", "<|transcribe|>"] if name == "whisper-base" else []),
                "<|notimestamps|>"]
    prompt = [tok.token_to_id(t) for t in specials]
    cfg = json.loads((weights.tokenizer.locate().parent / "config.json").read_text())
    mel = _padded_mel(speech)
    ours = ct2.greedy_tokens(load_whisper(parse_ct2(data)), torch.from_numpy(mel), prompt,
                                 tok.token_to_id("<|endoftext|>"), max_tokens=20, suppress=cfg["suppress_ids"],
                                 suppress_first=cfg["suppress_ids_begin"])
    ref = ct.generate(ctranslate2.StorageView.from_array(mel), [prompt], beam_size=1, max_length=len(prompt) + 20)
    assert ours == ref[0].sequences_ids[0] and len(ours) >= 3
