"""Command line: `emorank <command> --help` (or `python -m emorank <command> --help`) documents each command."""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
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
  push      upload a checkpoint folder to the Hugging Face Hub with a generated model card
"""


_NEEDS_SPLITS = ("train", "compare", "evaluate")


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


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--manifest", help="generic CSV manifest (or a corpus folder with --corpus); or use --hf-dataset")
    p.add_argument("--corpus", help="read --manifest as the root folder of this corpus "
                   "(msp-podcast, iemocap, ravdess, crema-d, emodb, tess)")
    p.add_argument("--cache", help="feature cache file (default: $EMORANK_CACHE or ~/.cache/emorank/features.sqlite)")
    _add_hf_args(p)


def _add_hf_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Hugging Face dataset (instead of --manifest; audio decoded once to 16 kHz WAVs)")
    g.add_argument("--hf-dataset", metavar="ID", help="Hub id (needs network) or local folder: parquet files, "
                   "a save_to_disk folder, or an audiofolder with metadata.csv")
    g.add_argument("--hf-config", help="dataset configuration name (Hub)")
    g.add_argument("--hf-revision", help="dataset revision (Hub)")
    g.add_argument("--hf-audio", default="audio", help="audio column (default: audio)")
    g.add_argument("--hf-valence", metavar="COL", help="valence column (with --hf-arousal)")
    g.add_argument("--hf-arousal", metavar="COL", help="arousal column")
    g.add_argument("--hf-dominance", metavar="COL", help="dominance column (optional)")
    g.add_argument("--hf-scale", default="1,7", metavar="LOW,HIGH", help="scale of the V-A-D columns (default 1,7)")
    g.add_argument("--hf-category", metavar="COL", help="emotion category column (a category-norm proxy when no "
                   "V-A columns or scores are given)")
    g.add_argument("--hf-category-map", metavar="A=B,..", help="rename the dataset's categories, e.g. ps=surprise")
    g.add_argument("--hf-scores", metavar="COLS", help="per-emotion votes/probabilities: columns named after "
                   "emotions (angry,happy,..), COL=EMOTION pairs, or one column of dicts (or lists, with "
                   "--hf-score-names); gives a vote-weighted V-A proxy")
    g.add_argument("--hf-score-names", metavar="NAMES", help="emotion names of a list-valued --hf-scores column")
    g.add_argument("--hf-speaker", metavar="COL", help="speaker column")
    g.add_argument("--hf-gender", metavar="COL", help="gender column")
    g.add_argument("--hf-split", metavar="COL", help="split column (default: the dataset's own splits)")
    g.add_argument("--hf-split-map", metavar="A=B,..", help="map split names, e.g. validation=dev,extra=test")
    g.add_argument("--hf-cache", metavar="DIR", help="decoded audio folder (default: $EMORANK_HF_CACHE or "
                   "~/.cache/emorank/hf/<dataset>)")


def _add_encoder_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--audio-encoder", default="egemaps",
                   help="egemaps (offline default) | compare (openSMILE ComParE_2016, 6373-d, offline) | "
                   "odyssey-wavlm | hf")
    p.add_argument("--text-encoder", default="minilm", help="minilm (offline default) | distilroberta-emotion | hf")
    p.add_argument("--audio-model", help="model id or folder for --audio-encoder hf / odyssey-wavlm")
    p.add_argument("--text-model", help="model id or folder for --text-encoder hf / distilroberta-emotion")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="allow the hub model's own code to run (needed by odyssey-wavlm with --audio-loader remote)")
    p.add_argument("--audio-loader", choices=["remote", "native"],
                   help="odyssey-wavlm: 'remote' runs the hub repository's code (needs --trust-remote-code); "
                   "'native' rebuilds the same architecture in emorank and loads the weights strictly")
    p.add_argument("--workers", type=int, help="feature-extraction processes (default: up to 4)")


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


# ------------------------------------------------------------------ commands
def cmd_corpus(args) -> int:
    from emorank.data.synthetic import build_demo_corpus
    path = build_demo_corpus(args.out, n=args.n, seed=args.seed, workers=args.workers, overwrite=args.overwrite)
    print(f"wrote {path}")
    return 0


def cmd_features(args) -> int:
    from emorank.encoders.registry import build_audio_encoder
    from emorank.training.systems import get_system, prepare_data
    from emorank.training.trainer import TrainConfig

    audio_kw, text_kw = _encoder_kwargs(args)
    config = TrainConfig(system=args.system or "emotionrankclap", audio_encoder=args.audio_encoder,
                         text_encoder=args.text_encoder, audio_encoder_kwargs=audio_kw, text_encoder_kwargs=text_kw,
                         workers=args.workers)
    config.validate()  # names, --workers: refused before the manifest is read
    manifest = _manifest(args)
    with _cache(args) as cache:
        if args.system:
            data = prepare_data(manifest, get_system(args.system), config, cache=cache,
                                splits=sorted(set(manifest.split)))
            print(f"cached audio features of {len(data.manifest)} clips and text features of "
                  f"{len(set(data.captions))} distinct {args.system} captions")
            skipped = data.skipped
        else:
            feats = cache.audio_features(manifest.path, build_audio_encoder(args.audio_encoder, **audio_kw),
                                         workers=args.workers)
            print(f"cached audio features of {len(feats.rows)} clips")
            skipped = feats.skipped
        for path, reason in skipped:
            print(f"  skipped {path}: {reason}")
    return 0


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


def cmd_train(args) -> int:
    from emorank.training.trainer import train

    stop = threading.Event()

    def on_sigint(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        print("\nstopping after this step and saving the best checkpoint (Ctrl-C again to abort)", file=sys.stderr)
        stop.set()

    previous = signal.signal(signal.SIGINT, on_sigint)

    def on_event(e: dict) -> None:
        if e["event"] == "epoch":
            print(f"epoch {e['epoch'] + 1}: train {e['train_loss']:.4f}  val {e['val_loss']:.4f}  "
                  f"R@10 {e['val_recall@10']:.3f}  rank tau {e['val_rank_tau']:.3f}  scale {e['logit_scale']:.3f}  "
                  f"best epoch {e['best_epoch'] + 1}  ({e['seconds']:.1f}s)")
        elif e["event"] == "done":
            print(f"checkpoint: {e['checkpoint']}" + ("  (stopped early)" if e["stopped"] else ""))

    try:
        config = train_config_from_args(args)  # validated before the manifest, cache or any model is touched
        with _cache(args) as cache:
            train(_manifest(args), config, args.out, cache=cache, on_event=on_event, stop=stop, resume=args.resume)
    finally:
        signal.signal(signal.SIGINT, previous)
    return 0


def cmd_evaluate(args) -> int:
    import warnings

    from emorank.evaluation.evaluate import EvalConfig, evaluate
    from emorank.encoders.cache import SkippedAudioWarning
    from emorank.model.core import EmotionRankCLAP

    model = EmotionRankCLAP.from_checkpoint(args.checkpoint)
    config = EvalConfig(n_trials=args.trials, n_pairs=args.pairs, n_lists=args.lists, seed=args.seed)
    with _cache(args) as cache, warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedAudioWarning)  # summarised below, with where the full list is
        report = evaluate(model, _manifest(args), args.split, config, cache)
    a, o = report["alignment"], report["ordinality"]
    print(f"MMD {a['mmd']['mean']:.4f} ± {a['mmd']['std']:.4f}   Wasserstein {a['wasserstein']['mean']:.4f} ± "
          f"{a['wasserstein']['std']:.4f}")
    print(f"AOC {o['aoc']['mean']:.3f} ± {o['aoc']['std']:.3f}   VOC {o['voc']['mean']:.3f} ± {o['voc']['std']:.3f}")
    r, v = report["retrieval"], report["va_estimation"]
    print("recall " + "  ".join(f"{k} {r[k]:.3f}" for k in r if "@" in k))
    print(f"V-A CCC valence {v['ccc_valence']:.3f}  arousal {v['ccc_arousal']:.3f}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")
    n_skipped = report["meta"]["n_skipped"]
    if n_skipped:
        where = f"meta.skipped of {args.json}" if args.json else "meta.skipped of the report (add --json FILE)"
        print(f"skipped {n_skipped} of {n_skipped + report['meta']['clips']} '{args.split}' clips that could not be "
              f"read; each file and its reason are listed in {where}", file=sys.stderr)
    return 0


def cmd_compare(args) -> int:
    from emorank.evaluation.compare import compare
    from emorank.evaluation.evaluate import EvalConfig

    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: (print("\nstopping after the current step; finished runs "
                                                              "are kept", file=sys.stderr), stop.set()))
    eval_config = EvalConfig(n_trials=args.trials, n_pairs=args.pairs, n_lists=args.lists)
    command = "python -m emorank " + " ".join(sys.argv[1:]) if args.record_command else ""
    try:
        with _cache(args) as cache:
            summary = compare(_manifest(args), args.systems, args.seeds, args.out, train_config_from_args(args),
                              eval_config, cache, retrain=args.retrain, stop=stop, command=command, test=args.test)
    finally:
        signal.signal(signal.SIGINT, previous)
    if not summary:
        print("stopped; run the same command again to resume")
        return 1
    print((Path(args.out) / "comparison.md").read_text())
    return 0


def cmd_search(args) -> int:
    from emorank.model.core import EmotionRankCLAP
    from emorank.search.retrieval import Collection

    if (args.text is None) == (args.valence is None or args.arousal is None):
        raise SystemExit("search: give either --text, or both --valence and --arousal")
    model = EmotionRankCLAP.from_checkpoint(args.checkpoint)
    manifest = _manifest(args)
    if args.split:
        manifest = manifest.split_of(args.split)
    with _cache(args) as cache:
        index = Collection.from_manifest(model, manifest, cache)
        if args.text is not None:
            caption, hits = args.text, index.search_text(args.text, args.k)
        else:
            caption, hits = index.search_va(args.valence, args.arousal, args.k)
    print(f"query: {caption}")
    for rank, h in enumerate(hits, 1):
        print(f"{rank:>3}  {h.score:.3f}  V {h.valence:.2f}  A {h.arousal:.2f}  {h.emotion or '-':<9} {h.path}")
    return 0


def _llm(args):
    import os

    from emorank.captions.va import LLMCaptioner
    if not args.llm_url:
        return None
    if not args.llm_model:
        raise SystemExit("caption: --llm-url needs --llm-model")
    return LLMCaptioner(args.llm_url, args.llm_model, api_key=os.environ.get(args.llm_key_env),
                        cache_path=args.llm_cache)


def cmd_caption(args) -> int:
    from emorank.captions.va import VACaptionBuilder, caption_cli_text

    llm = _llm(args)
    if args.manifest:
        if not args.out:
            raise SystemExit("caption: --manifest needs --out (the captioned manifest to write)")
        manifest = _manifest(args, check_files=False)  # captions need labels, not audio
        todo = [i for i, c in enumerate(manifest.caption) if args.overwrite_captions or not c]
        builder = llm or VACaptionBuilder(seed=args.seed)
        sub = manifest.subset(todo)
        made = builder(sub.valence, sub.arousal, sub.ids)
        for i, text in zip(todo, made):
            manifest.caption[i] = text
        manifest.to_csv(args.out)
        print(f"captioned {len(todo)} of {len(manifest)} rows ({'LLM ' + args.llm_model if llm else 'V-A builder'})"
              f"; wrote {args.out}")
        return 0
    if args.valence is None or args.arousal is None:
        raise SystemExit("caption: give --valence and --arousal, or --manifest and --out")
    lines = [llm.caption(args.valence, args.arousal)] if llm else caption_cli_text(args.valence, args.arousal,
                                                                                  args.n, args.seed)
    for line in lines:
        print(line)
    return 0


def cmd_push(args) -> int:
    from emorank.model.card import push_to_hub

    plan = push_to_hub(args.checkpoint, args.repo_id, private=args.private, dry_run=args.dry_run,
                       license=args.license, dataset=args.dataset, eval_report=args.eval)
    card = "generated model card" if plan.card_generated else "the folder's own model card"
    verb = "would upload" if args.dry_run else "uploaded"
    print(f"{verb} to {plan.repo_id}{' (private)' if args.private else ''} ({card}):")
    for name, size in plan.files.items():
        print(f"  {name}\t{size} bytes")
    if plan.eval_report is None:
        print("no evaluation report found: the card has no metrics (run `emorank evaluate --checkpoint "
              f"{args.checkpoint} ... --json {Path(args.checkpoint) / 'eval.json'}`, or pass --eval FILE)",
              file=sys.stderr)
    elif plan.eval_report.parent.resolve() != Path(args.checkpoint).resolve():
        print(f"eval.json (the card's metrics) from {plan.eval_report}")
    if plan.url:
        print(plan.url)
    return 0


# -------------------------------------------------------------------- parser
def _add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--paper", action="store_true",
                   help="the paper's exact budget: 15 epochs at Adam lr 1e-4, no step minimum")
    p.add_argument("--epochs", type=int,
                   help="epochs (default: at least 15 and at least --min-steps steps; paper: 15); given alone, "
                   "exactly this many")
    p.add_argument("--min-steps", type=int,
                   help="at least this many optimiser steps (default 900, ours; 0 with --paper or --epochs)")
    p.add_argument("--batch-size", type=int, default=64, help="paper: 64")
    p.add_argument("--lr", type=float, help="Adam learning rate (default 1e-3, ours; paper: 1e-4)")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--temperature", type=float, default=1.0, help="initial temperature (paper: 1.0)")
    p.add_argument("--caption-seed", type=int, default=0)
    p.add_argument("--audio-norm", default="auto", choices=["auto", "speaker", "global", "none"])
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")


def build_parser() -> argparse.ArgumentParser:
    from emorank.losses import LOSSES
    from emorank.training.systems import CAPTION_BUILDERS, SYSTEMS

    parser = argparse.ArgumentParser(prog="emorank", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("corpus", help="build the synthetic demo corpus")
    p.add_argument("--out", required=True, help="output folder (audio/ and manifest.csv)")
    p.add_argument("--n", type=int, default=1000, help="number of clips (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, help="synthesis processes (default: all cores)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing corpus folder")
    p.set_defaults(func=cmd_corpus)

    p = sub.add_parser("features", help="fill the feature cache")
    _add_data_args(p)
    _add_encoder_args(p)
    p.add_argument("--system", choices=list(SYSTEMS), help="also cache the text features of this system's captions")
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("train", help="train a system (fills the feature cache when needed)")
    _add_data_args(p)
    _add_encoder_args(p)
    p.add_argument("--out", required=True, help="run folder; the checkpoint goes to OUT/checkpoint")
    p.add_argument("--system", default="emotionrankclap", choices=list(SYSTEMS))
    p.add_argument("--loss", choices=list(LOSSES), help="override the system's loss")
    p.add_argument("--captions", choices=list(CAPTION_BUILDERS), help="override the system's caption builder")
    p.add_argument("--seed", type=int, default=0)
    _add_train_args(p)
    p.add_argument("--resume", action="store_true", help="continue from OUT/train_state.safetensors (tensors + JSON, never unpickled)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="the paper's evaluation protocol")
    _add_data_args(p)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--trials", type=int, default=30)
    p.add_argument("--pairs", type=int, default=5000)
    p.add_argument("--lists", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the full report here")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("compare", help="train + evaluate several systems: the paper's Tables 1-2")
    _add_data_args(p)
    _add_encoder_args(p)
    _add_train_args(p)
    p.add_argument("--out", required=True, help="comparison folder (runs/, comparison.json, comparison.md, figures)")
    p.add_argument("--systems", default="all", help="'all' or comma-separated names: " + ", ".join(SYSTEMS))
    p.add_argument("--seeds", type=int, default=5,
                   help="train seeds 0..K-1 per system (default 5; significance needs at least 3)")
    p.add_argument("--test", choices=["welch", "paired"], default="welch",
                   help="significance test across seeds (the trained model is the unit): Welch's t-test (default) "
                   "or a paired t-test by seed")
    p.add_argument("--retrain", action="store_true", help="retrain even where a finished checkpoint exists")
    p.add_argument("--trials", type=int, default=30)
    p.add_argument("--pairs", type=int, default=5000)
    p.add_argument("--lists", type=int, default=100)
    p.add_argument("--no-record-command", dest="record_command", action="store_false",
                   help="do not write the command line into comparison.md")
    p.set_defaults(func=cmd_compare, system="emotionrankclap", loss=None, captions=None, seed=0)

    p = sub.add_parser("search", help="caption or V-A point -> clips")
    _add_data_args(p)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--split", help="search only this split (default: all clips)")
    p.add_argument("--text")
    p.add_argument("--valence", type=float)
    p.add_argument("--arousal", type=float)
    p.add_argument("--k", type=int, default=5)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("caption", help="V-A point -> captions; or caption every row of a manifest")
    p.add_argument("--valence", type=float)
    p.add_argument("--arousal", type=float)
    p.add_argument("--n", type=int, default=1, help="distinct phrasings to print")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--manifest", help="caption every row without a caption and write the result to --out")
    p.add_argument("--corpus", help="read --manifest as the root folder of this corpus")
    p.add_argument("--out", help="captioned manifest CSV to write")
    p.add_argument("--overwrite-captions", action="store_true", help="replace captions the manifest already has")
    p.add_argument("--llm-url", help="OpenAI-compatible endpoint (e.g. http://host/v1); uses the paper's Figure 2 "
                   "prompt")
    p.add_argument("--llm-model", help="model name for --llm-url")
    p.add_argument("--llm-key-env", default="OPENAI_API_KEY", help="environment variable holding the API key")
    p.add_argument("--llm-cache", default="llm-captions.json", help="JSON cache of LLM answers (reused, resumable)")
    p.set_defaults(func=cmd_caption)

    p = sub.add_parser("push", help="upload a checkpoint folder to the Hugging Face Hub with a model card")
    p.add_argument("checkpoint", help="checkpoint folder (heads.safetensors + config.json [+ eval.json])")
    p.add_argument("--repo-id", required=True, help="Hub model repo, owner/name (created when absent)")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.add_argument("--dry-run", action="store_true", help="list the files that would be uploaded; no network")
    p.add_argument("--license", help="licence id for the card (default: the checkpoint's own: its config, a "
                   "LICENSE file, or its corpus; e.g. cc-by-nc-sa-4.0 for RAVDESS-trained heads)")
    p.add_argument("--dataset", help="training corpus for the card when the config does not name it (e.g. ravdess)")
    p.add_argument("--eval", metavar="FILE", help="evaluation report for the card and eval.json (default: the "
                   "checkpoint's own eval.json, else the eval.json beside it, where `evaluate --json RUN/eval.json` "
                   "writes for RUN/checkpoint)")
    p.set_defaults(func=cmd_push)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from emorank.data.audio import AudioError
    from emorank.data.manifest import ManifestError
    from emorank.model.checkpoint import CheckpointError

    try:
        return args.func(args)
    except (ManifestError, CheckpointError, AudioError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

