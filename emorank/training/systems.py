"""Systems of the emotion-CLAP family: a system = caption builder + loss (+ a teacher for RA-CLAP).

Every system trains on the same cached frozen encoders, so a comparison differs only in captions and loss.

    get_system("emotionrankclap")        # V-A captions + cross-modal Rank-N-Contrast (the default)
    SYSTEMS                              # plain dict name -> System; the CLI and the app read it
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import numpy as np

from emorank.data.manifest import Manifest
from emorank.encoders.cache import FeatureCache


@dataclass(frozen=True)
class System:
    name: str
    title: str  # as in the paper's tables
    captions: str  # key of CAPTION_BUILDERS
    loss: str  # key of LOSSES
    paper: str
    interpretation: str
    loss_kwargs: dict = field(default_factory=dict)
    va_captions: bool = False  # trained on valence-arousal captions (the paper's Table 1 rows)
    teacher: str | None = None  # system whose trained checkpoint is the teacher (RA-CLAP stage 1)
    temperature_init: float | None = None  # the system's initial temperature; None: 1.0 (the paper's)

    def to_dict(self, loss: str | None = None, loss_kwargs: dict | None = None) -> dict:
        out = asdict(self)
        out["loss"] = loss or self.loss
        out["loss_kwargs"] = dict(self.loss_kwargs if loss_kwargs is None else loss_kwargs)
        return out


SYSTEMS: dict[str, System] = {s.name: s for s in [
    System("clap-template", "CLAP-template", "template", "sce",
           "baseline of Suresh Chandra et al. (2025); CLAP (Elizalde et al., 2023)",
           "rows without a category name their valence-arousal quadrant instead"),
    System("clap4emo", "CLAP4emo", "lexicon", "sce",
           "Lin et al., CLAP4emo (ICASSP 2024)",
           "captions from our own emotion lexicon and templates instead of ChatGPT + NRC; "
           "a user caption file (e.g. the CLAP4emo release) can replace them"),
    System("paraclap", "ParaCLAP", "acoustic", "sce",
           "Jing, Triantafyllopoulos & Schuller, ParaCLAP (Interspeech 2024)",
           "Parselmouth pitch, pitch variation, intensity, jitter, shimmer, articulation rate and duration; "
           "quantile thresholds 0.3/0.7 fitted on the training split; category and gender phrases when known"),
    System("clap-sce-av", "CLAP-SCE (A-V)", "va", "sce",
           "Suresh Chandra et al. (2025), ablation baseline",
           "same V-A captions as EmotionRankCLAP; CLIP symmetric cross-entropy", va_captions=True),
    System("supcon-av", "SupConCLAP (A-V)", "va", "supcon",
           "Suresh Chandra et al. (2025), ablation baseline; SupCon (Khosla et al., 2020)",
           "cross-modal SupCon, positives = same category; V-A quadrants when a corpus has no categories; "
           "both directions averaged", va_captions=True),
    System("smoothclap", "SmoothCLAP (A-V)", "va", "smooth",
           "Jing et al., SmoothCLAP (ICASSP 2026; abstract only)",
           "V-A captions (to compare losses on equal captions); targets = lam * I + (1 - lam) * softmax of a "
           "detached mix of audio-audio, text-text and Parselmouth-feature similarity; weights are ours",
           va_captions=True),
    System("ra-clap", "RA-CLAP (A-V)", "va", "ra",
           "Sun et al., RA-CLAP / ESS-CLAP (abstract only)",
           "stage 1 = a frozen CLAP-SCE (A-V) teacher trained with the same budget; stage 2 distils its "
           "similarity distribution (temperature 0.1) mixed half-and-half with the hard diagonal",
           loss_kwargs={"alpha": 0.5, "teacher_temperature": 0.1}, va_captions=True, teacher="clap-sce-av"),
    System("emotionrankclap", "EmotionRankCLAP (A-V)", "va", "rnc",
           "Suresh Chandra et al., EmotionRankCLAP (2025)",
           "caption wording is ours (seeded templates in place of the paper's o1 captions); "
           "rank sets use >= as in the released Rank-N-Contrast", va_captions=True),
    System("emotionrankclap-plus", "EmotionRankCLAP+ (A-V, ours)", "va", "rnc-sce",
           "ours: EmotionRankCLAP's cross-modal Rank-N-Contrast plus a CLIP term, both directions",
           "not in any paper: loss = symmetric RNC (audio and text anchors) + 0.5 x symmetric cross-entropy, "
           "learnable temperature initialised at 0.1 (chosen on RAVDESS dev actors with the Whisper front end: "
           "dev AOC 0.702 vs 0.654 at 1.0, VOC 0.755 vs 0.783, label R@1 equal; docs/results-whisper.md), "
           "so captions keep the ordinal structure and the paired caption is still told apart; V-A captions "
           "as EmotionRankCLAP; chosen on RAVDESS (README, real speech)",
           loss_kwargs={"sce_weight": 0.5, "symmetric": True}, va_captions=True, temperature_init=0.1),
]}


def get_system(name: str) -> System:
    if name not in SYSTEMS:
        raise ValueError(f"unknown system {name!r}; valid systems: {', '.join(SYSTEMS)}")
    return SYSTEMS[name]


# ----------------------------------------------------------- caption builders
class VACaptions:
    """Adapter giving the valence-arousal builder the fit/build interface of every caption builder.

    Rows whose manifest already has a caption (user-written or LLM-filled) keep it; the rest are built.
    """

    def __init__(self, seed: int = 0) -> None:
        from emorank.captions.va import VACaptionBuilder
        self.seed = seed
        self.builder = VACaptionBuilder(seed=seed)

    def fit(self, manifest: Manifest, features: np.ndarray | None = None) -> "VACaptions":
        return self

    def build(self, manifest: Manifest, features: np.ndarray | None = None,
              keys: Sequence[str] | None = None) -> list[str]:
        """``keys`` seed each row's phrasing (default the row ids; training passes the clips' content hashes)."""
        built = self.builder(manifest.valence, manifest.arousal, manifest.ids if keys is None else keys)
        return [given or made for given, made in zip(manifest.caption, built)]

    def to_dict(self) -> dict:
        return {"builder": "va", "seed": self.seed}

    @classmethod
    def from_dict(cls, spec: dict) -> "VACaptions":
        return cls(seed=spec.get("seed", 0))


class _Lazy:
    """A builder class imported on first use (keeps `import emorank.training.systems` light)."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def _cls(self):
        import importlib
        return getattr(importlib.import_module(self.module), self.name)

    def __call__(self, *args, **kwargs):
        return self._cls()(*args, **kwargs)

    def from_dict(self, spec: dict):
        return self._cls().from_dict(spec)


CAPTION_BUILDERS: dict[str, Callable[..., object]] = {
    "va": VACaptions,
    "template": _Lazy("emorank.captions.emotion", "TemplateCaptionBuilder"),
    "lexicon": _Lazy("emorank.captions.emotion", "LexiconCaptionBuilder"),
    "acoustic": _Lazy("emorank.captions.acoustic", "AcousticCaptionBuilder"),
}


def make_caption_builder(name: str, seed: int = 0, **kwargs):
    if name not in CAPTION_BUILDERS:
        raise ValueError(f"unknown caption builder {name!r}; valid: {', '.join(CAPTION_BUILDERS)}")
    return CAPTION_BUILDERS[name](seed=seed, **kwargs)


def caption_builder_from_spec(spec: dict):
    """Rebuild the (fitted) caption builder stored in a checkpoint's config."""
    name = spec.get("builder")
    if name not in CAPTION_BUILDERS:
        raise ValueError(f"checkpoint names caption builder {name!r}; this emorank knows {', '.join(CAPTION_BUILDERS)}")
    return CAPTION_BUILDERS[name].from_dict(spec)


# ------------------------------------------------------------ prepared inputs
@dataclass
class PreparedData:
    """Everything a training run reads: raw cached features, captions and labels for the usable rows."""

    manifest: Manifest  # usable rows only
    split: np.ndarray  # [N] str
    audio: np.ndarray  # [N, Da] raw frozen audio features
    text: np.ndarray  # [N, Dt] frozen text features of the captions
    captions: list[str]
    labels: np.ndarray  # [N, 2] float64 (valence, arousal), as the manifest holds them (ties stay exact in the loss)
    classes: np.ndarray  # [N] int64, -1 unknown
    class_names: list[str]
    audio_fingerprint: str
    text_fingerprint: str
    caption_spec: dict
    skipped: list[tuple[str, str]] = field(default_factory=list)
    para: np.ndarray | None = None  # [N, P] paralinguistic measures (SmoothCLAP, ParaCLAP)
    teacher_audio: np.ndarray | None = None  # [N, D] teacher embeddings (RA-CLAP)
    teacher_text: np.ndarray | None = None
    teacher_scale: float = 1.0


def prepare_data(manifest: Manifest, system: System, config, cache: FeatureCache | None = None,
                 progress: bool = True, on_event: Callable[[dict], None] | None = None,
                 splits: Sequence[str] = ("train", "dev")) -> PreparedData:
    """Fill the feature cache as needed and assemble the inputs of one system on the given splits."""
    from emorank.encoders.registry import build_audio_encoder, build_text_encoder

    emit = on_event or (lambda e: None)
    cache = cache or FeatureCache()
    manifest = manifest.subset(np.flatnonzero(np.isin(np.asarray(manifest.split, dtype=object), list(splits))))
    audio_enc = build_audio_encoder(config.audio_encoder, **config.audio_encoder_kwargs)
    feats = cache.audio_features(manifest.path, audio_enc, workers=config.workers, progress=progress)
    manifest = manifest.subset(feats.rows)
    emit({"event": "audio_features", "rows": len(manifest), "skipped": len(feats.skipped)})

    from emorank.losses import LOSSES

    para = None
    builder = make_caption_builder(config.captions or system.captions, seed=config.caption_seed)
    loss = config.loss or system.loss  # the loss that will train (a --loss override included)
    if getattr(builder, "needs_features", False) or "para" in LOSSES[loss].uses:
        para = paralinguistic_features(manifest, cache, config.workers, progress)
    train_rows = np.flatnonzero(np.asarray(manifest.split, dtype=object) == "train")
    builder.fit(manifest.subset(train_rows), None if para is None else para[train_rows])
    captions = builder.build(manifest, para, keys=caption_keys(manifest, cache))
    text_enc = build_text_encoder(config.text_encoder, **config.text_encoder_kwargs)
    text = cache.text_features(captions, text_enc)
    emit({"event": "text_features", "rows": len(captions)})
    classes, names = manifest.emotion_ids()
    return PreparedData(manifest=manifest, split=np.asarray(manifest.split, dtype=object), audio=feats.values,
                        text=text, captions=captions, labels=manifest.va(), classes=classes,
                        class_names=names, audio_fingerprint=audio_enc.fingerprint(),
                        text_fingerprint=text_enc.fingerprint(), caption_spec=builder.to_dict(),
                        skipped=feats.skipped, para=para)


def caption_keys(manifest: Manifest, cache: FeatureCache) -> list[str]:
    """What seeds each row's caption phrasing: the sha256 of its audio file (memoised by the cache, which hashed
    every file for its features already). Unlike a path, it does not change when a corpus moves, is listed with
    relative instead of absolute paths, or is reached through a symbolic link: the same clips train the same
    heads wherever they are."""
    return [cache.content_hash(p) for p in manifest.path]


def paralinguistic_features(manifest: Manifest, cache: FeatureCache, workers: int | None,
                            progress: bool) -> np.ndarray:
    """Cached Parselmouth measures [N, P] for every row (NaN where a measure is undefined)."""
    from emorank.captions.acoustic import ParalinguisticEncoder

    enc = ParalinguisticEncoder()
    feats = cache.audio_features(manifest.path, enc, workers=workers, progress=progress)
    out = np.full((len(manifest), enc.dim), np.nan, dtype=np.float32)
    out[feats.rows] = feats.values
    return out
