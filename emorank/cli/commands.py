"""The commands: each ``cmd_*`` takes the parsed arguments and returns an exit status.
"""
from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path

from emorank.cli.checks import _cache, _manifest, _names, features_config, train_config_from_args


# ------------------------------------------------------------------ commands
def cmd_corpus(args) -> int:
    from emorank.data.synthetic import build_demo_corpus
    path = build_demo_corpus(args.out, n=args.n, seed=args.seed, workers=args.workers, overwrite=args.overwrite)
    print(f"wrote {path}")
    return 0


def cmd_features(args) -> int:
    from emorank.encoders.registry import build_audio_encoder
    from emorank.training.systems import get_system, prepare_data

    config = features_config(args)
    audio_kw = config.audio_encoder_kwargs
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

    from emorank.encoders.cache import SkippedAudioWarning
    from emorank.evaluation.evaluate import EvalConfig, evaluate
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


def cmd_encode(args) -> int:
    from tqdm.auto import tqdm

    from emorank.model.core import EmotionRankCLAP
    from emorank.model.embeddings import encode_files, write_embeddings

    if bool(args.files) == bool(args.manifest or args.hf_dataset):
        raise SystemExit("encode: give audio files, or --manifest (or --hf-dataset), not both")
    model = EmotionRankCLAP.from_checkpoint(args.checkpoint)
    files = [str(f) for f in args.files] or list(_manifest(args).path)
    with tqdm(total=len(files), desc="encode", unit="file", disable=args.quiet) as bar:
        result = encode_files(model, files, args.batch_size, args.max_seconds,
                              progress=lambda done, total: bar.update(done - bar.n))
    for path, reason in result.skipped:
        print(f"  skipped {path}: {reason}", file=sys.stderr)
    if not result.files:
        print(f"error: none of the {len(files)} files could be encoded (reasons above)", file=sys.stderr)
        return 2
    out = write_embeddings(args.out, result.embeddings, result.files, checkpoint=Path(args.checkpoint).name,
                           embed_dim=int(result.embeddings.shape[1]))
    print(f"wrote {len(result.files)} embeddings of dimension {result.embeddings.shape[1]} to {out}"
          + (f" ({len(result.skipped)} files skipped)" if result.skipped else ""))
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


def cmd_robustness(args) -> int:
    import warnings

    from emorank.encoders.cache import SkippedAudioWarning
    from emorank.evaluation.evaluate import EvalConfig
    from emorank.evaluation.robustness import get_conditions, robustness, write_report

    conditions = [c.name for c in get_conditions(_names(args.conditions) or "all")]  # refused before any loading
    config = EvalConfig(n_trials=args.trials, n_pairs=args.pairs, n_lists=args.lists, seed=args.seed)
    try:
        with _cache(args) as cache, warnings.catch_warnings():
            warnings.simplefilter("ignore", SkippedAudioWarning)  # each condition's report lists its skipped clips
            report = robustness(args.checkpoints, _manifest(args), args.split, conditions, args.audio_dir, cache,
                                config, args.workers)
    except KeyboardInterrupt:
        print("\ninterrupted: rendered clips and cached features are kept; run the same command again to continue",
              file=sys.stderr)
        return 130
    json_path, md_path = write_report(report, args.out, "python -m emorank " + " ".join(sys.argv[1:]))
    print(md_path.read_text())
    for cond in report["conditions"]:
        if cond["unavailable"]:
            print(f"skipped condition {cond['name']}: {cond['unavailable']}", file=sys.stderr)
    print(f"wrote {json_path} and {md_path}")
    return 0
