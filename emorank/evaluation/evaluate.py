"""The paper's evaluation protocol (§4.2; REFERENCE.md §5) plus retrieval recall and V-A estimation.

    report = evaluate(EmotionRankCLAP.from_checkpoint(c), manifest, split="test")
    report["ordinality"]["aoc"]["mean"]

Keys: alignment.{mmd,wasserstein}.{mean,std,values}, ordinality.{aoc,voc}.{mean,std,values},
retrieval.{a2t_r@1,...,a2t_label_r@1,...}, va_estimation.{ccc_valence,ccc_arousal,...}, zero_shot.{zs_uar,
zs_accuracy,zs_macro_f1,confusion,...} (only when the split has at least 2 emotion categories; see
:mod:`emorank.zeroshot`), meta (split, categories: the emotion categories present, clips evaluated, n_skipped,
and skipped: every clip of the split that could not be encoded, as {"path": relative to the manifest root (else the
file name), "reason": ...}).
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import numpy as np

from emorank.captions.va import va_caption
from emorank.data.manifest import Manifest
from emorank.encoders.cache import FeatureCache
from emorank.metrics.alignment import alignment_trials
from emorank.metrics.va import ccc, pearson, va_from_similarity
from emorank.metrics.recall import label_match, label_recall_at_k, recall_at_k
from emorank.metrics.ordinality import ordinality_lists, ordinality_test
from emorank.model.core import EmotionRankCLAP
from emorank.search.retrieval import grid_embeddings, text_embeddings
from emorank.training.systems import caption_builder_from_spec, caption_keys, paralinguistic_features
from emorank.evaluation.zeroshot import MIN_CLASSES, zero_shot, zero_shot_classes


@dataclass
class EvalConfig:
    """Protocol sizes (paper: 30 trials of 5000 pairs; 100 lists of 14 captions per axis)."""

    n_trials: int = 30
    n_pairs: int = 5000
    small_set_fraction: float = 0.8  # test sets of at most n_pairs clips: each trial samples this fraction (ours)
    n_lists: int = 100
    retrieval_max: int = 5000  # recall@k on at most this many pairs (an N x N similarity matrix)
    va_temperature: float = 0.02  # softmax temperature of the V-A estimate over the caption grid (ours)
    seed: int = 0


def pair_captions(model: EmotionRankCLAP, manifest: Manifest, cache: FeatureCache, progress: bool) -> list[str]:
    """The captions the checkpoint's system pairs with these clips (its own caption builder)."""
    builder = caption_builder_from_spec(model.extra.get("captions", {"builder": "va", "seed": 0}))
    para = None
    if getattr(builder, "needs_features", False):
        para = paralinguistic_features(manifest, cache, None, progress)
    return builder.build(manifest, para, keys=caption_keys(manifest, cache))


def ordinality(model: EmotionRankCLAP, audio_emb: np.ndarray, labels: np.ndarray, n_lists: int, seed: int,
               cache: FeatureCache | None) -> dict:
    """AOC and VOC: Kendall tau between each list's caption values and its retrieved clips' labels."""
    out = {}
    for key, axis, col in (("aoc", "arousal", 1), ("voc", "valence", 0)):
        lists = ordinality_lists(axis, n_lists)  # [L, 14, 2]
        rng = np.random.default_rng(seed)
        texts = [va_caption(v, a, rng) for v, a in lists.reshape(-1, 2)]
        emb = text_embeddings(model, texts, cache)  # [L * 14, D]
        # one 2-D product (one BLAS call) then a free reshape: a [L, 14, D] @ [D, M] broadcast runs L small
        # products and was 4-5x slower at 35k clips
        sims = (emb @ audio_emb.T).reshape(lists.shape[0], lists.shape[1], -1)  # [L, 14, M]
        out[key] = ordinality_test(sims, labels[:, col], lists[:, :, col])
    return out


def va_estimation(model: EmotionRankCLAP, audio_emb: np.ndarray, labels: np.ndarray, temperature: float,
                  cache: FeatureCache | None) -> dict:
    grid, grid_emb = grid_embeddings(model, cache=cache)
    est = va_from_similarity(audio_emb @ grid_emb.T, grid, temperature)  # [M, 2]
    return {"ccc_valence": ccc(est[:, 0], labels[:, 0]), "ccc_arousal": ccc(est[:, 1], labels[:, 1]),
            "pearson_valence": pearson(est[:, 0], labels[:, 0]), "pearson_arousal": pearson(est[:, 1], labels[:, 1]),
            "temperature": temperature}


def trial_size(n: int, config: EvalConfig) -> int:
    """Pairs per alignment trial: the paper's 5000 of a 35k test set; on a test set of at most that many clips,
    every trial would be the whole set (std 0, no test possible), so each samples `small_set_fraction` of it
    instead -- our interpretation."""
    return config.n_pairs if n > config.n_pairs else max(2, int(round(config.small_set_fraction * n)))


def evaluate(model: EmotionRankCLAP, manifest: Manifest, split: str = "test", config: EvalConfig | None = None,
             cache: FeatureCache | None = None, progress: bool = True) -> dict:
    """Run the whole protocol on one split of a manifest; returns the JSON-ready report."""
    config = config or EvalConfig()
    cache = cache or FeatureCache()
    part = manifest.split_of(split)
    if len(part) < 14:
        raise ValueError(f"split {split!r} has {len(part)} clips; the ordinality test needs at least 14")
    feats = cache.audio_features(part.path, model.audio_encoder, progress=progress)  # the model checks the encoder
    skipped = [{"path": _shown_path(path, manifest.root), "reason": reason} for path, reason in feats.skipped]
    part = part.subset(feats.rows)
    if len(part) < 14:
        raise ValueError(f"split {split!r} has {len(part)} readable clips ({len(skipped)} skipped); the ordinality "
                         "test needs at least 14")
    audio_emb = model.embed_audio_features(feats.values, part.speaker)  # [M, D]
    labels = part.va()
    text_emb = text_embeddings(model, pair_captions(model, part, cache, progress), cache)

    rng = np.random.default_rng(config.seed)
    sub = rng.choice(len(part), size=min(len(part), config.retrieval_max), replace=False)
    report = {
        "alignment": alignment_trials(audio_emb, text_emb, config.n_trials, trial_size(len(part), config),
                                      config.seed),
        "ordinality": ordinality(model, audio_emb, labels, config.n_lists, config.seed, cache),
        "retrieval": {**recall_at_k(audio_emb[sub] @ text_emb[sub].T),
                      **label_recall_at_k(audio_emb[sub] @ text_emb[sub].T,
                                          label_match(labels[sub], [part.emotion[i] for i in sub]))},
        "va_estimation": va_estimation(model, audio_emb, labels, config.va_temperature, cache),
        "meta": {"split": split, "categories": zero_shot_classes(part.emotion), "clips": len(part), "n_skipped": len(skipped), "skipped": skipped, "system": model.extra.get("system", {}).get("name"),
                 "logit_scale": model.logit_scale.item(), "protocol": asdict(config)},
    }
    if len(report["meta"]["categories"]) >= MIN_CLASSES:
        report["zero_shot"] = zero_shot(model, part, audio_emb, cache)
    return report


def _shown_path(path: str, root: str | None) -> str:
    """A path as reports show it: relative to the manifest root when inside it, else the bare file name (reports
    are shared, and absolute paths of the machine that ran them say nothing useful)."""
    if root:
        rel = os.path.relpath(path, root)
        if rel != os.pardir and not rel.startswith(os.pardir + os.sep) and not os.path.isabs(rel):
            return rel
    return os.path.basename(path)
