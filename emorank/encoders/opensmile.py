"""openSMILE functionals: ``egemaps`` (eGeMAPSv02, 88-d) and ``compare`` (ComParE_2016, 6373-d), offline.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Sequence

import numpy as np

from emorank.encoders.base import (
    SAMPLE_RATE,
    AudioEncoder,
    EncoderInputError,
    EncoderUnavailableError,
    _check_device_name,
    _check_positive,
    _fingerprint,
    _package_version,
    as_wave_list,
)


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
