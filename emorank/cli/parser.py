"""The argument parser: one sub-parser per command, each documented by ``--help``.
"""
from __future__ import annotations

import argparse

from emorank.cli.checks import DESCRIPTION
from emorank.cli.commands import (
    cmd_caption,
    cmd_compare,
    cmd_corpus,
    cmd_encode,
    cmd_evaluate,
    cmd_features,
    cmd_push,
    cmd_robustness,
    cmd_search,
    cmd_train,
)


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
                   "whisper-base | whisper-tiny-en (a Whisper encoder block, offline from pip wheels) | "
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
    p.add_argument("--temperature", type=float, default=None,
                   help="initial temperature (default: the system's own; the paper's systems: 1.0)")
    p.add_argument("--caption-seed", type=int, default=0)
    p.add_argument("--audio-norm", default="auto", choices=["auto", "speaker", "global", "utterance", "none"])
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")


ENCODE_HELP = """Embed audio files in a checkpoint's joint space (model.encode_audio) and write them to one file.

  python -m emorank encode a.wav b.wav --checkpoint checkpoints/emotionrankclap --out emb.npz
  python -m emorank encode --manifest data/manifest.csv --checkpoint CKPT --out emb.safetensors

The file holds `embeddings` [N, D] (float32, L2-normalised: cosine similarity is a dot product) and `files` (the N
paths, in the order given); --out's extension picks the format:
  .npz          np.load(path, allow_pickle=False): arrays "embeddings", "files", "meta" (JSON)
  .safetensors  the tensor "embeddings"; "files" and "meta" (JSON) in the header's metadata
(emorank.model.embeddings.read_embeddings reads both.) Nothing in either format can run code when loaded. Each file is
encoded on its own (the checkpoint's global normalisation statistics), so its embedding does not depend on the
others listed (beyond float32 rounding). Files that cannot be read (corrupt, silent, longer than --max-seconds) are
skipped and listed on stderr. The file is written atomically: an interrupted run leaves no partial file.
"""


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
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/train_state.safetensors (tensors + JSON, never unpickled)")
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

    from emorank.evaluation.robustness import CONDITIONS
    p = sub.add_parser("robustness", help="shift suite: evaluate checkpoints on re-rendered copies of a split")
    _add_data_args(p)
    p.add_argument("--checkpoints", nargs="+", required=True, metavar="FOLDER", help="checkpoint folders to compare")
    p.add_argument("--conditions", default="all", help="'all' or comma-separated names (clean is always included): "
                   + ", ".join(CONDITIONS))
    p.add_argument("--split", default="test")
    p.add_argument("--audio-dir", help="where rendered clips are kept (default: a robustness/ folder beside the "
                   "feature cache file)")
    p.add_argument("--out", required=True, help="folder for robustness.json and robustness.md")
    p.add_argument("--workers", type=int, help="feature-extraction processes (default: up to 4)")
    p.add_argument("--trials", type=int, default=30)
    p.add_argument("--pairs", type=int, default=5000)
    p.add_argument("--lists", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_robustness)

    p = sub.add_parser("encode", help="audio files or a manifest -> embeddings file, with a checkpoint",
                       description=ENCODE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="*", help="audio files (or give --manifest)")
    p.add_argument("--checkpoint", required=True, help="checkpoint folder (or a shipped checkpoint's folder)")
    p.add_argument("--out", required=True, help="embeddings file to write: NAME.npz or NAME.safetensors")
    p.add_argument("--manifest", help="encode every file of this CSV manifest (or corpus folder with --corpus)")
    p.add_argument("--corpus", help="read --manifest as the root folder of this corpus")
    _add_hf_args(p)
    p.add_argument("--batch-size", type=int, default=32, help="files encoded together (default 32)")
    p.add_argument("--max-seconds", type=float, default=60.0, help="longer files are skipped (default 60)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_encode)

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
