"""Normalisations on the shift suite, and Analyse without speaker statistics (issue 13, item 3).

    shift     evaluate checkpoints on every shift condition of a split (default: dev actors 17-19, for choosing)
              with the robustness module (emorank.evaluation.robustness); checkpoints named ``<tag>-s<seed>`` are averaged
              over seeds. Writes OUT/shift-<split>.json and .md.
    speakers  evaluate checkpoints on a split twice: with each clip's speaker given (the speaker normaliser uses
              that speaker's own statistics) and withheld (every speaker blank: the global training statistics,
              which is what Analyse does with one uploaded clip). Writes OUT/speakers-<split>.json and .md.

    OMP_NUM_THREADS=1 nice -n 5 python bench/shift_dev.py shift --checkpoints /work/runs/p13/select/ckpt/norm/*
    OMP_NUM_THREADS=1 nice -n 5 python bench/shift_dev.py speakers --split test --checkpoints checkpoints/*-ravdess*
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.select_frontend import RAVDESS, manifest, summarise  # noqa: E402

KEYS = ("aoc", "voc", "label_r@1")


def robustness_module():
    """The shift suite (emorank.evaluation.robustness)."""
    from emorank.evaluation import robustness

    return robustness


def group_of(path: str) -> str:
    p = Path(path)
    name = p.parent.name if p.name == "checkpoint" else p.name
    return re.sub(r"-s\d+$", "", name)


def shift(args) -> None:
    from emorank.encoders.cache import FeatureCache

    rob = robustness_module()
    cache = FeatureCache(args.cache)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    m = manifest(args.root)
    if args.withhold_speakers:  # every clip alone, as Analyse sees one upload: the global training statistics
        m = dataclasses.replace(m, speaker=[""] * len(m))
    report = rob.robustness(args.checkpoints, m, split=args.split, audio_dir=args.audio_dir,
                            cache=cache, workers=1, progress=False)
    for c in report["checkpoints"]:
        c.pop("reports", None)
    name = f"shift-{args.split}{args.suffix}"
    (out / f"{name}.json").write_text(json.dumps(report, indent=1))
    (out / f"{name}.md").write_text(shift_table(report))
    print(shift_table(report))


def shift_table(report: dict) -> str:
    groups: dict[str, list[dict]] = {}
    for c in report["checkpoints"]:
        groups.setdefault(group_of(c["path"]), []).append(c["results"])
    conds = [c["name"] for c in report["conditions"]]
    lines = [f"Split {report['split']!r} ({report['clips']} clips); AOC / VOC / label R@1 a→t, mean over "
             "seeds; last rows: the worst condition's drop from clean and the mean over the shifted conditions.", "",
             "| condition | " + " | ".join(groups) + " |", "|---|" + "---|" * len(groups)]
    agg = {g: {} for g in groups}
    for cond in conds:
        cells = []
        for g, results in groups.items():
            vals = [r[cond] for r in results if cond in r and "unavailable" not in r[cond]]
            if not vals:
                cells.append("n/a")
                continue
            agg[g][cond] = {k: float(np.mean([v[k] for v in vals])) for k in KEYS}
            cells.append(" / ".join(f"{agg[g][cond][k]:.3f}" for k in KEYS))
        lines.append(f"| {cond} | " + " | ".join(cells) + " |")
    worst, mean = [], []
    for g in groups:
        clean = agg[g].get("clean")
        shifted = [v for c, v in agg[g].items() if c != "clean"]
        if not clean or not shifted:
            worst.append("n/a")
            mean.append("n/a")
            continue
        worst.append(" / ".join(f"{min(v[k] for v in shifted) - clean[k]:+.3f}" for k in KEYS))
        mean.append(" / ".join(f"{np.mean([v[k] for v in shifted]):.3f}" for k in KEYS))
    lines.append("| **worst drop vs clean** | " + " | ".join(worst) + " |")
    lines.append("| **mean over shifted** | " + " | ".join(mean) + " |")
    return "\n".join(lines) + "\n"


def speakers(args) -> None:
    from emorank.encoders.cache import FeatureCache
    from emorank.evaluation.evaluate import evaluate
    from emorank.model.core import EmotionRankCLAP

    cache, m = FeatureCache(args.cache), manifest(args.root)
    blind = dataclasses.replace(m, speaker=[""] * len(m))
    rows = []
    for ckpt in args.checkpoints:
        model = EmotionRankCLAP.from_checkpoint(ckpt)
        given = summarise(evaluate(model, m, split=args.split, cache=cache, progress=False))
        withheld = summarise(evaluate(model, blind, split=args.split, cache=cache, progress=False))
        rows.append({"checkpoint": ckpt, "norm": model.normaliser.mode, "given": given, "withheld": withheld})
        print(ckpt, model.normaliser.mode, {k: (round(given[k], 3), round(withheld[k], 3)) for k in KEYS},
              flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"speakers-{args.split}.json").write_text(json.dumps(rows, indent=1))
    lines = [f"Split {args.split!r}: speakers given (per-speaker statistics where the normaliser uses them) vs "
             "withheld (every clip alone: the global training statistics).", "",
             "| checkpoint | normaliser | AOC given → withheld | VOC given → withheld | label R@1 given → withheld |",
             "|---|---|---|---|---|"]
    for r in rows:
        cells = " | ".join(f"{r['given'][k]:.3f} → {r['withheld'][k]:.3f} ({r['withheld'][k] - r['given'][k]:+.3f})"
                           for k in KEYS)
        lines.append(f"| {Path(r['checkpoint']).name} | {r['norm']} | {cells} |")
    (out / f"speakers-{args.split}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=("shift", "speakers"))
    ap.add_argument("--checkpoints", nargs="+", required=True)
    ap.add_argument("--split", default="dev")
    ap.add_argument("--root", default=RAVDESS)
    ap.add_argument("--cache", default="/work/cache/features.sqlite")
    ap.add_argument("--audio-dir", default="/work/cache/robustness-audio")
    ap.add_argument("--out", default="/work/runs/p13/shift")
    ap.add_argument("--suffix", default="", help="added to the output file names")
    ap.add_argument("--withhold-speakers", action="store_true", help="shift: blank every speaker id")
    args = ap.parse_args(argv)
    (shift if args.mode == "shift" else speakers)(args)


if __name__ == "__main__":
    main()
