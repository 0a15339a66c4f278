"""What the command line checks before any work: every number in its range and every output path usable (one
line and exit status 2 instead of a traceback after training), and the shared plumbing of the commands' data
options (manifests, Hugging Face datasets, splits, the feature cache, encoder options).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from dataclasses import replace
from pathlib import Path


DESCRIPTION = """emorank: EmotionRankCLAP and the emotion-CLAP family (`emorank`, or `python -m emorank`).

commands:
  corpus    build the synthetic demo corpus (eSpeak NG, offline)
  features  fill the feature cache for a manifest
  train     train a system's projection heads on cached features
  evaluate  the paper's alignment and ordinality protocol (+ recall@k, V-A CCC)
  compare   train + evaluate several systems (x seeds): the paper's Tables 1-2 with significance
  search    caption or valence-arousal point -> nearest clips
  caption   valence-arousal point -> speaking-style captions
  encode    audio files or a manifest -> embeddings file (.npz or .safetensors) with a checkpoint
  push      upload a checkpoint folder to the Hugging Face Hub with a generated model card
  robustness  evaluate checkpoints on a split re-rendered as users record it (telephone, noise, codecs, ...)
"""


_NEEDS_SPLITS = ("train", "compare", "evaluate", "robustness")
VA_SCALE = (1.0, 7.0)
SEED_MAX = 2**32 - 1
MAX_K = 10_000  # emorank.search.retrieval.MAX_K (not imported here: the parser must stay cheap)
WORKERS = (1, 256)
# Numbers checked before any work, per command: option -> (lowest, highest). (train and compare: TrainConfig.)
LIMITS: dict[str, dict[str, tuple[float, float]]] = {
    "corpus": {"n": (1, 1_000_000), "seed": (0, SEED_MAX), "workers": WORKERS},
    "evaluate": {"trials": (1, 1000), "pairs": (2, 1_000_000), "lists": (1, 100_000), "seed": (0, SEED_MAX)},
    "compare": {"seeds": (1, 1000), "trials": (1, 1000), "pairs": (2, 1_000_000), "lists": (1, 100_000)},
    "search": {"k": (1, MAX_K), "valence": VA_SCALE, "arousal": VA_SCALE},
    "caption": {"valence": VA_SCALE, "arousal": VA_SCALE, "seed": (0, SEED_MAX)},
    "encode": {"batch_size": (1, 4096), "max_seconds": (0.1, 3600.0)},
}
# Paths a command writes or creates, checked before any work: option -> "file" | "folder".
OUTPUTS: dict[str, dict[str, str]] = {
    "corpus": {"out": "folder"},
    "features": {"cache": "file", "hf_cache": "folder"},
    "train": {"out": "folder", "cache": "file", "hf_cache": "folder"},
    "evaluate": {"json": "file", "cache": "file", "hf_cache": "folder"},
    "compare": {"out": "folder", "cache": "file", "hf_cache": "folder"},
    "search": {"cache": "file", "hf_cache": "folder"},
    "caption": {"out": "file"},
    "encode": {"out": "file", "hf_cache": "folder"},
}


class UsageError(ValueError):
    """A command-line value refused before any work; the message names the option."""


def check_args(args: argparse.Namespace) -> None:
    """UsageError for the first value of `args` that the command would only trip over later."""
    for dest, (lo, hi) in LIMITS.get(args.command, {}).items():
        value = getattr(args, dest, None)
        if value is not None and not (math.isfinite(value) and lo <= value <= hi):
            kind = "a whole number" if isinstance(value, int) else "a number"
            raise UsageError(f"{_flag(dest)} must be {kind} from {lo:g} to {hi:g} (got {_shown(value)})")
    outputs = dict(OUTPUTS.get(args.command, {}))
    if args.command == "caption" and args.llm_url:
        outputs["llm_cache"] = "file"
    for dest, kind in outputs.items():
        value = getattr(args, dest, None)
        if dest == "cache" and value is None:
            from emorank.encoders.cache import default_cache_path
            value = default_cache_path()
        if value is not None:
            _check_output(Path(value), _flag(dest), kind)
    if args.command in ("train", "compare", "features"):
        if args.command != "features":
            _check_output(Path(args.out) / ("checkpoint" if args.command == "train" else "runs"), "--out", "folder")
        from emorank.training.trainer import ConfigError
        try:
            (features_config if args.command == "features" else train_config_from_args)(args)
        except ConfigError as err:
            raise UsageError(str(err)) from None
    if args.command == "encode":
        from emorank.model.embeddings import EmbeddingsFileError, check_format
        try:
            check_format(args.out)
        except EmbeddingsFileError as err:
            raise UsageError(f"--out: {err}") from None


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def _shown(value) -> str:
    """A caller's value, short enough for a one-line message."""
    if isinstance(value, int) and abs(value) >= 10 ** 15:
        return "a number of over 15 digits"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_output(path: Path, flag: str, kind: str) -> None:
    """`path` can be written as a `kind` ("file" or "folder"): it is not the other kind, and the nearest folder
    that exists above it is a folder this user can write in."""
    shown = _shown(str(path))
    try:
        if kind == "file" and path.is_dir():
            raise UsageError(f"{flag} {shown} is a folder; give a file name")
        if kind == "folder" and path.exists() and not path.is_dir():
            raise UsageError(f"{flag} {shown} is a file; give a folder (it is created when missing)")
        above = path.absolute().parent
        while not above.exists() and above != above.parent:
            above = above.parent
        if not above.is_dir():
            raise UsageError(f"{flag} {shown}: {_shown(str(above))} is a file, so nothing can be created in it")
        if not os.access(above, os.W_OK | os.X_OK):
            raise UsageError(f"{flag} {shown}: no permission to write in {_shown(str(above))}")
    except (OSError, ValueError) as err:
        if isinstance(err, UsageError):
            raise
        raise UsageError(f"{flag} {shown} is not a usable path ({type(err).__name__}: {err})") from None


def _manifest(args, check_files: bool = True):
    from emorank.data.corpora import load_corpus
    from emorank.data.manifest import read_csv_manifest

    if getattr(args, "hf_dataset", None):
        if args.manifest or args.corpus:
            raise SystemExit("give either --hf-dataset or --manifest (with --corpus), not both")
        from emorank.data.hf import load_hf_dataset
        manifest = load_hf_dataset(args.hf_dataset, **_hf_kwargs(args))
    elif not args.manifest:
        raise SystemExit("name the data: --manifest CSV, --manifest FOLDER --corpus NAME, or --hf-dataset ID")
    elif getattr(args, "corpus", None):
        manifest = load_corpus(args.corpus, args.manifest, check_files=check_files)
    else:
        manifest = read_csv_manifest(args.manifest, check_files=check_files)
    return _with_splits(manifest, getattr(args, "command", None))


def _pairs(text: str | None, option: str) -> dict[str, str] | None:
    """``a=b,c=d`` -> {"a": "b", "c": "d"}."""
    if not text:
        return None
    pairs = [item.split("=", 1) for item in text.split(",") if item.strip()]
    if any(len(p) != 2 for p in pairs):
        raise SystemExit(f"{option}: expected NAME=VALUE pairs separated by commas, got {text!r}")
    return {k.strip(): v.strip() for k, v in pairs}


def _names(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def _hf_kwargs(args) -> dict:
    """The --hf-* options as keyword arguments of :func:`emorank.data.hf.load_hf_dataset`."""
    try:
        scale = tuple(float(x) for x in args.hf_scale.split(","))
    except ValueError:
        scale = ()
    if len(scale) != 2:
        raise SystemExit(f"--hf-scale: expected LOW,HIGH (e.g. 1,5), got {args.hf_scale!r}")
    scores = _names(args.hf_scores)
    if scores and any("=" in s for s in scores):
        scores = _pairs(args.hf_scores, "--hf-scores")
    elif scores and len(scores) == 1:
        scores = scores[0]  # one column holding a dict (or, with --hf-score-names, a list) of scores
    return dict(audio=args.hf_audio, valence=args.hf_valence, arousal=args.hf_arousal, dominance=args.hf_dominance,
                scale=scale, category=args.hf_category, category_map=_pairs(args.hf_category_map, "--hf-category-map"),
                scores=scores, score_names=_names(args.hf_score_names), speaker=args.hf_speaker,
                gender=args.hf_gender, split=args.hf_split, split_map=_pairs(args.hf_split_map, "--hf-split-map"),
                name=args.hf_config, revision=args.hf_revision, cache_dir=args.hf_cache)


def _with_splits(manifest, command):
    """Commands that train or evaluate on a manifest without any split get a speaker-disjoint 80/10/10 split
    (seed 0, so train and evaluate see the same one); a note on stderr says so."""
    from emorank.data.splits import speaker_disjoint_split

    if command not in _NEEDS_SPLITS or any(manifest.split):
        return manifest
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        manifest = speaker_disjoint_split(manifest, (0.8, 0.1, 0.1), seed=0)
    counts = ", ".join(f"{k} {v}" for k, v in sorted(manifest.split_counts().items()))
    note = " (no speaker ids: split by utterance)" if caught else ""
    print(f"note: the manifest has no split; assigned a speaker-disjoint 80/10/10 split, seed 0: {counts}{note}",
          file=sys.stderr)
    return manifest


def _cache(args):
    from emorank.encoders.cache import FeatureCache
    return FeatureCache(args.cache)


def _encoder_kwargs(args) -> tuple[dict, dict]:
    audio, text = {}, {}
    if args.audio_model:
        audio["model"] = args.audio_model
    if args.trust_remote_code:
        if args.audio_encoder not in ("odyssey-wavlm", "hf"):
            raise SystemExit(f"--trust-remote-code applies to the odyssey-wavlm and hf audio encoders, "
                             f"not {args.audio_encoder!r}")
        audio["trust_remote_code"] = True
    if args.audio_loader:
        if args.audio_encoder != "odyssey-wavlm":
            raise SystemExit("--audio-loader applies to --audio-encoder odyssey-wavlm only")
        audio["loader"] = args.audio_loader
    if args.text_model:
        text["model"] = args.text_model
    return audio, text


def features_config(args):
    """The TrainConfig that `features` fills the cache for, validated (names, --workers)."""
    from emorank.training.trainer import TrainConfig

    audio_kw, text_kw = _encoder_kwargs(args)
    config = TrainConfig(system=args.system or "emotionrankclap", audio_encoder=args.audio_encoder,
                         text_encoder=args.text_encoder, audio_encoder_kwargs=audio_kw, text_encoder_kwargs=text_kw,
                         workers=args.workers)
    config.validate()
    return config


def train_config_from_args(args):
    """The TrainConfig of the flags, validated: a bad value raises ConfigError (exit 2) before anything loads.

    Budget flags left out take our recipe (lr 1e-3, at least 900 steps), or the paper's with ``--paper``."""
    from emorank.training.trainer import TrainConfig
    audio_kw, text_kw = _encoder_kwargs(args)
    base = TrainConfig.paper() if args.paper else TrainConfig.recipe()
    budget = {k: getattr(args, k) for k in ("epochs", "min_steps", "lr") if getattr(args, k) is not None}
    if args.epochs is not None and args.min_steps is None:
        budget["min_steps"] = 0  # an explicit epoch count is the whole budget unless --min-steps says otherwise
    config = TrainConfig(system=args.system, loss=args.loss, audio_encoder=args.audio_encoder,
                         text_encoder=args.text_encoder, audio_encoder_kwargs=audio_kw, text_encoder_kwargs=text_kw,
                         epochs=base.epochs, min_steps=base.min_steps, lr=base.lr, batch_size=args.batch_size,
                         weight_decay=args.weight_decay, temperature_init=args.temperature, seed=args.seed,
                         caption_seed=args.caption_seed, device=args.device, workers=args.workers,
                         audio_norm=args.audio_norm, captions=args.captions)
    config = replace(config, **budget)
    config.validate()
    return config
