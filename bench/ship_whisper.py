"""Train the shipped real-speech heads on the dev-chosen Whisper front end (issue 13, item 5).

For each of EmotionRankCLAP+ (ours), EmotionRankCLAP and CLAP-SCE (A-V): train on RAVDESS actors 01-16 (dev
17-19 picks the best epoch), seed 0, our recipe budget, the system's own defaults; then write the folder
``checkpoints/<system>-ravdess-whisper`` with heads.safetensors + config.json ("dataset": "ravdess", licence), the
test evaluation (actors 20-24, reported only, never used to choose) as eval.json, RAVDESS's LICENSE and a model
card (README.md from emorank.model.card.model_card).

    OMP_NUM_THREADS=1 nice -n 5 python bench/ship_whisper.py --cache /work/cache/features.sqlite
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.select_frontend import RAVDESS, manifest  # noqa: E402

SYSTEMS = ("emotionrankclap-plus", "emotionrankclap", "clap-sce-av")
FRONT_END = {"audio_encoder": "whisper-tiny-en", "audio_encoder_kwargs": {"layer": 2, "pooling": "mean"}}


def ship(system: str, out_root: Path, work: Path, cache, m) -> Path:
    from emorank.evaluation.evaluate import evaluate
    from emorank.model.card import model_card
    from emorank.model.core import EmotionRankCLAP
    from emorank.training.trainer import TrainConfig, train

    config = TrainConfig.recipe(system=system, **FRONT_END, seed=0, workers=1)
    t0 = time.perf_counter()
    result = train(m, config, out_dir=work / system, cache=cache, progress=False)
    folder = out_root / f"{system}-ravdess-whisper"
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(result.checkpoint, folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(dataset="ravdess", license="cc-by-nc-sa-4.0")
    (folder / "config.json").write_text(json.dumps(cfg, indent=2))
    shutil.copy(ROOT / "checkpoints" / "emotionrankclap-plus-ravdess" / "LICENSE", folder / "LICENSE")
    model = EmotionRankCLAP.from_checkpoint(folder)
    report = evaluate(model, m, split="test", cache=cache, progress=False)
    (folder / "eval.json").write_text(json.dumps(report, indent=2))
    (folder / "README.md").write_text(model_card(folder), encoding="utf-8")
    print(system, f"{time.perf_counter() - t0:.0f}s", "test AOC", round(report["ordinality"]["aoc"]["mean"], 3),
          "VOC", round(report["ordinality"]["voc"]["mean"], 3), "label R@1",
          round(report["retrieval"]["a2t_label_r@1"], 3), "norm", model.normaliser.mode, flush=True)
    return folder


def main(argv=None) -> None:
    from emorank.encoders.cache import FeatureCache

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=RAVDESS)
    ap.add_argument("--cache", default="/work/cache/features.sqlite")
    ap.add_argument("--out", default=str(ROOT / "checkpoints"))
    ap.add_argument("--work", default="/work/runs/p13/ship")
    ap.add_argument("--systems", nargs="+", default=list(SYSTEMS))
    args = ap.parse_args(argv)
    cache, m = FeatureCache(args.cache), manifest(args.root)
    for system in args.systems:
        ship(system, Path(args.out), Path(args.work), cache, m)


if __name__ == "__main__":
    main()
