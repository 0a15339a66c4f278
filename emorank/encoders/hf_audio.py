"""``hf`` (audio): any Hugging Face speech model id or folder; mean of the last hidden state.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Sequence

import numpy as np

from emorank.encoders.base import (
    SAMPLE_RATE,
    AudioEncoder,
    EncoderInputError,
    _check_device_name,
    _check_positive,
    _crop_samples,
    _fingerprint,
    _fit_length,
    _package_version,
    as_wave_list,
    equal_length_batches,
    resolve_device,
)
from emorank.encoders.hub import _HFModelRef


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
