"""``odyssey-wavlm``: ``3loi/SER-Odyssey-Baseline-WavLM-Multi-Attributes``, the paper's audio encoder,
re-implemented here so that its published weights load without ``trust_remote_code`` executing the repo's code.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, ClassVar, Sequence

import numpy as np

from emorank.encoders.base import (
    ODYSSEY_MODEL,
    SAMPLE_RATE,
    AudioEncoder,
    EncoderInputError,
    EncoderUnavailableError,
    RemoteCodeNotTrustedError,
    _check_device_name,
    _check_positive,
    _crop_samples,
    _fingerprint,
    _fit_length,
    _package_version,
    _unavailable,
    as_wave_list,
    equal_length_batches,
    resolve_device,
)
from emorank.encoders.hub import _HFModelRef, _load_state_dict, _read_config


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
