"""Tests of emorank.encoders on the offline defaults and on tiny random models written to temporary folders.

The tiny models go through the real ``from_pretrained`` code (including ``trust_remote_code`` for the Odyssey
baseline's structure); nothing is mocked and nothing is downloaded.
"""
from __future__ import annotations

import json
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from emorank.encoders.registry import AUDIO_ENCODERS, TEXT_ENCODERS, build_audio_encoder, build_text_encoder
from emorank.encoders.base import (DISTILROBERTA_EMOTION_MODEL, ODYSSEY_MODEL, EncoderInputError,
                                   EncoderUnavailableError, RemoteCodeNotTrustedError, equal_length_batches,
                                   resolve_device)
from emorank.encoders.text import DistilRobertaEmotionEncoder, HFTextEncoder, MiniLMEncoder, minilm_folder
from emorank.encoders.opensmile import EGeMAPSEncoder
from emorank.encoders.hf_audio import HFAudioEncoder
from emorank.encoders.odyssey import OdysseyWavLMEncoder

SR = 16000
TEXTS = ["The person is speaking in a very calm manner, sounding slightly negative.",
         "The person is speaking, sounding extremely positive and very energetic.",
         "hi",
         "The person is speaking with a neutral tone and a steady delivery, " * 6]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def waves(seed: int, seconds=(0.7, 1.3, 0.7)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    t = [np.arange(int(s * SR)) / SR for s in seconds]
    return [(0.3 * np.sin(2 * np.pi * (120 + 40 * i) * x) + 0.05 * rng.standard_normal(x.size)).astype(np.float32)
            for i, x in enumerate(t)]


# ---------------------------------------------------------------- registries and errors
def test_registries_and_builder_errors():
    assert set(AUDIO_ENCODERS) == {"egemaps", "compare", "odyssey-wavlm", "hf", "whisper-base", "whisper-tiny-en"}
    assert set(TEXT_ENCODERS) == {"minilm", "distilroberta-emotion", "hf"}
    with pytest.raises(ValueError, match="egemaps, compare, odyssey-wavlm, hf, whisper-base, whisper-tiny-en"):
        build_audio_encoder("wav2clip")
    with pytest.raises(ValueError, match="minilm, distilroberta-emotion, hf"):
        build_text_encoder("bert")
    with pytest.raises(ValueError, match="does not take 'trust_remote_code'.*min_seconds"):
        build_audio_encoder("egemaps", trust_remote_code=True)
    with pytest.raises(ValueError, match="needs 'model'"):
        build_text_encoder("hf")
    assert DistilRobertaEmotionEncoder.model == DISTILROBERTA_EMOTION_MODEL
    assert OdysseyWavLMEncoder.model == ODYSSEY_MODEL


def test_bad_settings_and_inputs_raise_clear_errors():
    with pytest.raises(EncoderInputError, match="pooling"):
        HFTextEncoder(model=minilm_folder(), pooling="max")
    with pytest.raises(EncoderInputError, match="device"):
        EGeMAPSEncoder(device="gpu")
    enc = EGeMAPSEncoder()
    with pytest.raises(EncoderInputError, match="waveform 1 must be mono"):
        enc.encode([np.zeros(SR, np.float32), np.zeros((2, SR), np.float32)])
    with pytest.raises(EncoderInputError, match="waveform 0 contains NaN"):
        enc.encode([np.full(SR, np.nan, np.float32)])
    with pytest.raises(EncoderInputError, match="text 1 must be a string"):
        MiniLMEncoder().encode(["ok", 3])


def test_device_auto_follows_cuda_availability():
    import torch

    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"


@pytest.mark.parametrize("kind,name,alt", [("text", "hf", "minilm"), ("text", "distilroberta-emotion", "minilm"),
                                           ("audio", "hf", "egemaps")])
def test_missing_model_offline_is_one_clear_sentence(kind, name, alt):
    build = build_text_encoder if kind == "text" else build_audio_encoder
    enc = build(name, model="nobody-xyz/does-not-exist-model")
    with pytest.raises(EncoderUnavailableError) as info:
        enc.encode(TEXTS[:1] if kind == "text" else waves(0)[:1])
    msg = str(info.value)
    assert "nobody-xyz/does-not-exist-model" in msg and f"'{alt}'" in msg
    assert msg.count(". ") == 0 and msg.endswith(".") and "\n" not in msg


def test_missing_local_folder_is_reported(tmp_path):
    with pytest.raises(EncoderUnavailableError, match="no such folder"):
        HFAudioEncoder(model=str(tmp_path / "absent" / "model"))


def test_equal_length_batches_group_and_split():
    batches = equal_length_batches([5, 3, 5, 5, 3], batch_size=2)
    assert sorted(sorted(b) for b in batches) == [[0, 2], [1, 4], [3]]


def test_import_is_light():
    code = "import sys, emorank.encoders; print(sorted(m for m in ('torch', 'transformers', 'opensmile') " \
           "if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ---------------------------------------------------------------- eGeMAPS
def test_egemaps_equals_raw_opensmile_functionals():
    import opensmile

    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                            feature_level=opensmile.FeatureLevel.Functionals)
    ws = waves(1)
    enc = build_audio_encoder("egemaps")
    out = enc.encode(ws)
    assert out.shape == (3, 88) and out.dtype == np.float32 and enc.dim == 88
    expected = np.stack([smile.process_signal(w, SR).to_numpy(np.float32)[0] for w in ws])
    np.testing.assert_array_equal(out, expected)  # no normalisation inside
    np.testing.assert_array_equal(enc.encode(ws[::-1]), out[::-1])


def test_egemaps_pads_very_short_clips_and_survives_pickling():
    enc = EGeMAPSEncoder()
    short = waves(2, seconds=(0.03,))[0]
    out = enc.encode(short)
    assert out.shape == (1, 88) and np.all(np.isfinite(out))
    np.testing.assert_array_equal(out, enc.encode(np.pad(short, (0, int(0.1 * SR) - short.size))))
    clone = pickle.loads(pickle.dumps(enc))
    np.testing.assert_array_equal(clone.encode(short), out)
    assert EGeMAPSEncoder.parallel_safe


def test_egemaps_fingerprint_and_files(tmp_path):
    import soundfile as sf

    enc = EGeMAPSEncoder()
    assert enc.fingerprint() == EGeMAPSEncoder().fingerprint() != EGeMAPSEncoder(min_seconds=0.2).fingerprint()
    ws = waves(3)
    paths = []
    for i, w in enumerate(ws):
        paths.append(tmp_path / f"{i}.wav")
        sf.write(paths[-1], w, SR, subtype="FLOAT")
    np.testing.assert_allclose(enc.encode_files(paths), enc.encode(ws), rtol=1e-5, atol=1e-5)
    assert enc.encode([]).shape == (0, 88)


def test_compare_equals_raw_opensmile_compare_functionals():
    import opensmile

    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.ComParE_2016,
                            feature_level=opensmile.FeatureLevel.Functionals)
    ws = waves(1)[:2]
    enc = build_audio_encoder("compare")
    out = enc.encode(ws)
    assert out.shape == (2, 6373) and enc.dim == 6373 and np.all(np.isfinite(out))
    expected = np.nan_to_num(np.stack([smile.process_signal(w, SR).to_numpy(np.float32)[0] for w in ws]))
    np.testing.assert_array_equal(out, expected)
    assert enc.fingerprint() != build_audio_encoder("egemaps").fingerprint()
    assert enc.encode([]).shape == (0, 6373)


# ---------------------------------------------------------------- MiniLM
@pytest.fixture(scope="module")
def minilm():
    return MiniLMEncoder(device="cpu")


def test_minilm_mean_pools_and_normalises_like_sentence_transformers(minilm):
    """Oracle: each text alone (no padding), mean of the token states, L2-normalised -- the sentence-transformers
    pipeline of all-MiniLM-L6-v2 (Transformer max 256 tokens -> mean Pooling -> Normalize)."""
    import torch

    out = minilm.encode(TEXTS)
    assert out.shape == (4, 384) and out.dtype == np.float32 and minilm.dim == 384
    pipeline = json.loads((Path(minilm_folder()) / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[1] for m in pipeline] == ["Transformer", "Pooling", "Normalize"]
    with torch.no_grad():
        for i, text in enumerate(TEXTS):
            ids = minilm._tok([text], truncation=True, max_length=256, return_tensors="pt")
            vec = minilm._net(**ids).last_hidden_state[0].mean(0).numpy()
            np.testing.assert_allclose(out[i], vec / np.linalg.norm(vec), atol=1e-5)


def test_minilm_weights_are_the_pretrained_ones(minilm):
    a, b, c = minilm.encode(["The person is speaking happily and with excitement.",
                             "The speaker sounds joyful and thrilled.",
                             "Tomorrow the trains to the airport leave from platform two."])
    assert a @ b > 0.5 > a @ c  # paraphrases close, unrelated text far: not random weights


def test_minilm_is_deterministic_and_batch_independent(minilm):
    out = minilm.encode(TEXTS)
    np.testing.assert_array_equal(minilm.encode(TEXTS), out)
    # bit-identical whatever else is in the call: texts are batched by token count, never padded
    np.testing.assert_array_equal(minilm.encode(TEXTS[0]), out[:1])
    np.testing.assert_array_equal(minilm.encode(TEXTS[::-1])[::-1], out)
    fp = minilm.fingerprint()
    assert fp == MiniLMEncoder().fingerprint() and fp.startswith("minilm|")
    assert fp != MiniLMEncoder(max_length=128).fingerprint() != MiniLMEncoder(normalize=False).fingerprint()


# ---------------------------------------------------------------- tiny text models
@pytest.fixture(scope="module")
def tiny_roberta(tmp_path_factory):
    """A tiny random RobertaModel + a byte-level BPE tokenizer trained on a few sentences, saved to a folder."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast, RobertaConfig, RobertaModel

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(TEXTS * 5, trainer)
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    folder = tmp_path_factory.mktemp("tiny_roberta")
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                            unk_token="<unk>", mask_token="<mask>", model_max_length=62).save_pretrained(folder)
    torch.manual_seed(0)
    config = RobertaConfig(vocab_size=tok.get_vocab_size(), hidden_size=24, num_hidden_layers=2,
                           num_attention_heads=2, intermediate_size=48, max_position_embeddings=64, pad_token_id=1)
    RobertaModel(config).save_pretrained(folder)
    return str(folder)


def test_distilroberta_style_cls_embedding_matches_manual_forward(tiny_roberta):
    import torch
    from transformers import AutoModel, AutoTokenizer

    enc = build_text_encoder("distilroberta-emotion", model=tiny_roberta, device="cpu")
    out = enc.encode(TEXTS)  # the last text is longer than the tiny model's 62 tokens: truncated, no crash
    assert out.shape == (4, 24) and enc.dim == 24 and enc.token_limit == 62
    tok, net = AutoTokenizer.from_pretrained(tiny_roberta), AutoModel.from_pretrained(tiny_roberta).eval()
    with torch.no_grad():
        for i, text in enumerate(TEXTS):
            ids = tok([text], truncation=True, max_length=62, return_tensors="pt")
            assert ids["input_ids"][0, 0].item() == tok.bos_token_id  # token 0 is <s> ([CLS])
            np.testing.assert_allclose(out[i], net(**ids).last_hidden_state[0, 0].numpy(), atol=1e-5)
    np.testing.assert_array_equal(enc.encode(TEXTS), out)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """A tiny random BertModel sharing the MiniLM package's tokenizer (real WordPiece vocabulary)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny_bert")
    AutoTokenizer.from_pretrained(minilm_folder()).save_pretrained(folder)
    torch.manual_seed(1)
    BertModel(BertConfig(vocab_size=30522, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=512)).save_pretrained(folder)
    return str(folder)


def test_hf_text_mean_and_cls_pooling_match_manual_forward(tiny_bert):
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok, net = AutoTokenizer.from_pretrained(tiny_bert), AutoModel.from_pretrained(tiny_bert).eval()
    mean = build_text_encoder("hf", model=tiny_bert, pooling="mean", batch_size=3).encode(TEXTS)
    cls = build_text_encoder("hf", model=tiny_bert, pooling="cls", normalize=True).encode(TEXTS)
    with torch.no_grad():
        for i, text in enumerate(TEXTS):  # one text at a time: no padding at all
            hidden = net(**tok([text], return_tensors="pt")).last_hidden_state[0].numpy()
            np.testing.assert_allclose(mean[i], hidden.mean(axis=0), atol=1e-5)
            np.testing.assert_allclose(cls[i], hidden[0] / np.linalg.norm(hidden[0]), atol=1e-5)


def test_hf_text_fingerprint_tracks_weights(tiny_bert, tmp_path):
    import shutil

    import torch
    from transformers import BertConfig, BertModel

    enc = HFTextEncoder(model=tiny_bert)
    assert enc.fingerprint() == HFTextEncoder(model=tiny_bert).fingerprint()
    assert enc.fingerprint() != HFTextEncoder(model=tiny_bert, pooling="mean").fingerprint()
    copy = tmp_path / "copy"
    shutil.copytree(tiny_bert, copy)
    assert HFTextEncoder(model=str(copy)).fingerprint() == enc.fingerprint()  # same files, same identity
    torch.manual_seed(99)  # new random weights, same config and tokenizer
    BertModel(BertConfig.from_pretrained(copy)).save_pretrained(copy)
    assert HFTextEncoder(model=str(copy)).fingerprint() != enc.fingerprint()


# ---------------------------------------------------------------- tiny audio models
@pytest.fixture(scope="module")
def tiny_wavlm(tmp_path_factory):
    """Tiny random WavLM (WavLM-large layout: layer-norm conv features, stable layer norm), two folders:
    with a feature extractor (per-utterance normalisation) and without one (raw waveform)."""
    import torch
    from transformers import Wav2Vec2FeatureExtractor, WavLMConfig, WavLMModel

    config = WavLMConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                         conv_dim=(8,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
                         feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=False, num_buckets=32,
                         max_bucket_distance=100)
    torch.manual_seed(2)
    net = WavLMModel(config)
    with_fe, raw = tmp_path_factory.mktemp("wavlm_fe"), tmp_path_factory.mktemp("wavlm_raw")
    net.save_pretrained(with_fe)
    net.save_pretrained(raw)
    Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True).save_pretrained(with_fe)
    config.save_pretrained(tmp_path_factory.mktemp("wavlm_config"))
    return {"fe": str(with_fe), "raw": str(raw), "config": config}


def test_hf_audio_mean_pools_frames_like_a_manual_forward(tiny_wavlm):
    import torch
    from transformers import AutoModel

    ws = waves(4, seconds=(0.6, 1.1, 0.6, 0.9))
    net = AutoModel.from_pretrained(tiny_wavlm["fe"]).eval()
    enc = build_audio_encoder("hf", model=tiny_wavlm["fe"], batch_size=2)
    raw = build_audio_encoder("hf", model=tiny_wavlm["raw"], layer=1)
    out, out_raw = enc.encode(ws), raw.encode(ws)
    assert out.shape == (4, 16) and enc.dim == 16
    with torch.no_grad():
        for i, w in enumerate(ws):
            z = (w - w.mean()) / np.sqrt(w.var() + 1e-7)  # Wav2Vec2FeatureExtractor's normalisation
            x = torch.from_numpy(z.astype(np.float32))[None]
            hidden = net(x, attention_mask=torch.ones_like(x, dtype=torch.long)).last_hidden_state
            np.testing.assert_allclose(out[i], hidden[0].mean(0).numpy(), atol=1e-4)
            states = net(torch.from_numpy(w)[None], output_hidden_states=True).hidden_states
            np.testing.assert_allclose(out_raw[i], states[1][0].mean(0).numpy(), atol=1e-5)
    # same-length batches only: order-free up to float rounding (a clip's place in its batch may change kernels)
    np.testing.assert_allclose(enc.encode(ws[::-1])[::-1], out, rtol=0, atol=1e-6)
    # alone vs in a batch of two: the same clip, up to float rounding (kernels may differ with the batch size)
    np.testing.assert_allclose(enc.encode(ws[1]), out[1:2], rtol=0, atol=1e-6)
    assert enc.fingerprint() != build_audio_encoder("hf", model=tiny_wavlm["fe"], layer=1).fingerprint()


ODYSSEY_CODE = '''
"""Tiny stand-in with the module layout of the Odyssey baseline's pipeline_utils.py (transformers-5 style)."""
import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel


class AttentiveStatisticsPooling(nn.Module):
    def __init__(self, input_size):
        super().__init__()
        self.sap_linear = nn.Linear(input_size, input_size)
        self.attention = nn.Parameter(torch.randn(input_size, 1))

    def forward(self, xs, mask):
        lens = (torch.div(mask.sum(dim=1) - 1, 16000 * 0.02, rounding_mode="floor") + 1).int().tolist()
        out = []
        for x, n in zip(xs, lens):
            x = x[:n].unsqueeze(0)
            w = torch.softmax(torch.matmul(torch.tanh(self.sap_linear(x)), self.attention).squeeze(2), dim=1)
            w = w.view(x.size(0), x.size(1), 1)
            mu = torch.sum(x * w, dim=1)
            sd = torch.sqrt((torch.sum(x ** 2 * w, dim=1) - mu ** 2).clamp(min=1e-5))
            out.append(torch.cat((mu, sd), 1).squeeze(0))
        return torch.stack(out)


class EmotionRegression(nn.Module):
    def __init__(self, input_dim, hidden_dim, num_layers, output_dim, dropout=0.5):
        super().__init__()
        self.fc = nn.ModuleList([nn.Sequential(nn.Linear(input_dim, hidden_dim), nn.LayerNorm(hidden_dim),
                                               nn.ReLU(), nn.Dropout(dropout))])
        for _ in range(num_layers - 1):
            self.fc.append(nn.Sequential(nn.Linear(hidden_dim, hidden_dim), nn.LayerNorm(hidden_dim), nn.ReLU(),
                                         nn.Dropout(dropout)))
        self.out = nn.Sequential(nn.Linear(hidden_dim, output_dim))
        self.inp_drop = nn.Dropout(dropout)

    def forward(self, x):
        h = self.inp_drop(x)
        for fc in self.fc:
            h = fc(h)
        return self.out(h)


class SERConfig(PretrainedConfig):
    model_type = "ser"

    def __init__(self, num_classes=3, hidden_size=16, classifier_hidden_layers=1, classifier_dropout_prob=0.5,
                 ssl_type="", mean=0.0, std=1.0, **kwargs):
        self.num_classes = num_classes
        self.hidden_size = hidden_size
        self.classifier_hidden_layers = classifier_hidden_layers
        self.classifier_dropout_prob = classifier_dropout_prob
        self.ssl_type = ssl_type
        self.mean = mean
        self.std = std
        super().__init__(**kwargs)


class SERModel(PreTrainedModel):
    config_class = SERConfig

    def __init__(self, config):
        super().__init__(config)
        self.ssl_model = AutoModel.from_config(AutoConfig.from_pretrained(config.ssl_type))
        self.pool_model = AttentiveStatisticsPooling(config.hidden_size)
        self.ser_model = EmotionRegression(config.hidden_size * 2, config.hidden_size,
                                           config.classifier_hidden_layers, config.num_classes,
                                           dropout=config.classifier_dropout_prob)
        self.post_init()

    def forward(self, x, mask):
        ssl = self.ssl_model(x, attention_mask=mask).last_hidden_state
        return self.ser_model(self.pool_model(ssl, mask))
'''


@pytest.fixture(scope="module")
def tiny_odyssey(tmp_path_factory, tiny_wavlm):
    """A tiny SER model folder (custom code + auto_map) saved through the real trust_remote_code path."""
    import torch
    from transformers import AutoConfig, AutoModelForAudioClassification

    ssl_dir = tmp_path_factory.mktemp("ody_ssl")
    tiny_wavlm["config"].save_pretrained(ssl_dir)
    folder = tmp_path_factory.mktemp("tiny_odyssey")
    (folder / "pipeline_utils.py").write_text(textwrap.dedent(ODYSSEY_CODE))
    (folder / "config.json").write_text(json.dumps({
        "model_type": "ser", "architectures": ["SERModel"],
        "auto_map": {"AutoConfig": "pipeline_utils.SERConfig",
                     "AutoModelForAudioClassification": "pipeline_utils.SERModel"},
        "num_classes": 3, "hidden_size": 16, "classifier_hidden_layers": 1, "classifier_dropout_prob": 0.5,
        "ssl_type": str(ssl_dir), "mean": 0.01, "std": 0.2}))
    torch.manual_seed(3)
    config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
    AutoModelForAudioClassification.from_config(config, trust_remote_code=True).save_pretrained(folder)
    return str(folder)


def odyssey_oracle(folder: str, ws: list[np.ndarray], crop: int) -> tuple[np.ndarray, np.ndarray]:
    """(head hidden [N, H], pooled [N, 2H]) computed by hand on the remote-code model, one clip at a time."""
    import torch
    from transformers import AutoModelForAudioClassification

    from emorank.data.audio import crop_or_pad

    net = AutoModelForAudioClassification.from_pretrained(folder, trust_remote_code=True).eval()
    mean, std = net.config.mean, net.config.std
    hidden, pooled = [], []
    with torch.no_grad():
        for w in ws:
            x = torch.from_numpy(((crop_or_pad(w, crop) - mean) / (std + 1e-6)).astype(np.float32))[None]
            mask = torch.ones_like(x)
            p = net.pool_model(net.ssl_model(x, attention_mask=mask).last_hidden_state, mask)  # [1, 2H]
            h = net.ser_model.fc[0][2](net.ser_model.fc[0][1](net.ser_model.fc[0][0](p)))  # Linear, LayerNorm, ReLU
            pooled.append(p[0].numpy())
            hidden.append(h[0].numpy())
    return np.stack(hidden), np.stack(pooled)


def test_odyssey_requires_explicit_trust(tiny_odyssey):
    with pytest.raises(RemoteCodeNotTrustedError, match="--trust-remote-code") as info:
        build_audio_encoder("odyssey-wavlm", model=tiny_odyssey)
    assert isinstance(info.value, ValueError) and "'egemaps'" in str(info.value)


def test_odyssey_hidden_and_pooled_embeddings_match_the_model(tiny_odyssey):
    assert OdysseyWavLMEncoder(trust_remote_code=True).crop_seconds == 10.0  # the paper's 10 s; 2 s here for speed
    ws = waves(5, seconds=(0.8, 3.0, 1.5))  # one clip longer than the crop, two padded
    hidden, pooled = odyssey_oracle(tiny_odyssey, ws, crop=2 * SR)
    enc = build_audio_encoder("odyssey-wavlm", model=tiny_odyssey, trust_remote_code=True, batch_size=2,
                              crop_seconds=2.0)
    out = enc.encode(ws)
    assert out.shape == (3, 16) and enc.dim == 16 and np.all(out >= 0)  # after the ReLU
    np.testing.assert_allclose(out, hidden, atol=1e-5)
    pooled_enc = OdysseyWavLMEncoder(model=tiny_odyssey, trust_remote_code=True, layer="pooled", crop_seconds=2.0)
    assert pooled_enc.dim == 32
    np.testing.assert_allclose(pooled_enc.encode(ws), pooled, atol=1e-5)
    target = enc._hook_target()
    assert not target._forward_hooks and not target._forward_pre_hooks  # hooks removed after use
    np.testing.assert_array_equal(enc.encode(ws), out)  # deterministic
    np.testing.assert_allclose(enc.encode(ws[::-1])[::-1], out, atol=1e-5)  # batch composition: rounding only
    np.testing.assert_allclose(enc.encode(ws[1][: 2 * SR]), out[1:2], atol=1e-5)  # the crop keeps the start


def test_odyssey_native_loader_reproduces_remote_code(tiny_odyssey):
    ws = waves(6, seconds=(1.0, 3.0))
    remote = OdysseyWavLMEncoder(model=tiny_odyssey, trust_remote_code=True, crop_seconds=2.0)
    native = OdysseyWavLMEncoder(model=tiny_odyssey, loader="native", crop_seconds=2.0)
    np.testing.assert_allclose(native.encode(ws), remote.encode(ws), atol=1e-6)
    assert native.fingerprint() != remote.fingerprint()
    fps = {remote.fingerprint(), OdysseyWavLMEncoder(model=tiny_odyssey, trust_remote_code=True,
                                                     layer="pooled").fingerprint(),
           OdysseyWavLMEncoder(model=tiny_odyssey, trust_remote_code=True, crop_seconds=5.0).fingerprint()}
    assert len(fps) == 3


def test_odyssey_unavailable_offline_names_model_and_alternative():
    enc = OdysseyWavLMEncoder(trust_remote_code=True)
    with pytest.raises(EncoderUnavailableError, match=r"3loi/SER-Odyssey.*'egemaps'"):
        enc.encode(waves(0)[:1])


def test_odyssey_code_written_for_old_transformers_points_to_the_native_loader(tiny_odyssey, tmp_path):
    """The Hub repo's code imports PretrainedConfig from transformers.modeling_utils (gone in transformers 5)."""
    import shutil

    folder = tmp_path / "old_style_odyssey"
    shutil.copytree(tiny_odyssey, folder)
    code = (folder / "pipeline_utils.py").read_text()
    (folder / "pipeline_utils.py").write_text(code.replace(
        "from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel",
        "from transformers import AutoConfig, AutoModel\n"
        "from transformers.modeling_utils import PreTrainedModel, PretrainedConfig"))
    enc = OdysseyWavLMEncoder(model=str(folder), trust_remote_code=True, crop_seconds=1.0)
    with pytest.raises(EncoderUnavailableError, match="loader='native'"):
        enc.encode(waves(7)[:1])
    native = OdysseyWavLMEncoder(model=str(folder), loader="native", crop_seconds=1.0)  # runs none of that code
    reference = OdysseyWavLMEncoder(model=tiny_odyssey, trust_remote_code=True, crop_seconds=1.0)
    np.testing.assert_allclose(native.encode(waves(7)), reference.encode(waves(7)), atol=1e-6)


def test_hf_audio_rejects_a_layer_the_model_does_not_have(tiny_wavlm):
    with pytest.raises(EncoderInputError, match="layer 7 does not exist"):
        HFAudioEncoder(model=tiny_wavlm["raw"], layer=7).encode(waves(0)[:1])


def test_local_models_load_without_a_progress_bar(capfd):
    from transformers.utils import logging as hf_logging

    build_text_encoder("minilm").encode(["The person is speaking calmly."])
    assert "Loading weights" not in capfd.readouterr().err
    assert hf_logging.is_progress_bar_enabled()  # restored for downloads
