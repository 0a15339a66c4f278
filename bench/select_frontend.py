"""Choose the Whisper front end and recipe of EmotionRankCLAP+ on RAVDESS dev actors 17-19 only (issue 13, item 2).

Every run trains on the train actors (01-16) through the library (``emorank.training.trainer.train``) and is
evaluated on ``split="dev"`` (``emorank.evaluation.evaluate.evaluate``); test actors 20-24 are never read here.
Results go to ``OUT/<stage>.json`` (one row per run, every seed) and ``OUT/<stage>.md`` (mean +- std over seeds).
Finished runs are read back from the JSON, so the script is re-runnable and resumable.

Stages (staged search, each fixes what the previous one chose; see docs/results-whisper.md):

    extract   Whisper features of all 1440 RAVDESS clips, every block and both poolings in ONE forward pass per
              model (the widest encoder, stored once in the cache), then the narrower configurations are cut
              out of it and stored under their own fingerprints (the very values their encoders would compute:
              same batches, same modules). Timed.
    frontend  encoder x layer x pooling, EmotionRankCLAP+ at its defaults, corpus-level ("global") z-score
    norm      normalisation (speaker / global / utterance / none) on the chosen front end
    recipe    loss mix (plain RNC vs RNC + w x SCE), temperature init (1.0 vs 0.1) and budget

    OMP_NUM_THREADS=1 nice -n 5 python bench/select_frontend.py extract --cache /work/cache/features.sqlite
    OMP_NUM_THREADS=1 nice -n 5 python bench/select_frontend.py frontend --seeds 3 --out /work/runs/p13/select
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RAVDESS = os.path.expanduser("~/corpora/speech-emotion-recognition-ravdess-data/audio_speech_actors_01-24")
FRONTEND_LAYERS = {"whisper-base": (2, 3, 4), "whisper-tiny-en": (1, 2)}  # the frontend stage's grid
METRICS = ("aoc", "voc", "label_r@1", "r@1", "zs_uar", "ccc_v", "ccc_a")


def manifest(root: str = RAVDESS):
    from emorank.data.corpora import load_corpus

    return load_corpus("ravdess", root)


# ------------------------------------------------------------------ extraction
def derived_specs(name: str) -> list[dict]:
    """The configurations cut out of the all-blocks mean_std features of ``name``."""
    if name == "whisper-base":
        layers = [2, 3, 4, [3, 4]]
    else:
        layers = [1, 2, 3]
    return [{"layer": layer, "pooling": pooling} for layer in layers for pooling in ("mean", "mean_std")]


def extract(args) -> None:
    import torch

    from emorank.encoders.cache import FeatureCache
    from emorank.encoders.whisper import WHISPER_ENCODERS

    m = manifest(args.root)
    cache = FeatureCache(args.cache)
    report = {}
    for name in args.encoders:
        cls = WHISPER_ENCODERS[name]
        full = cls(layer=list(range(1, cls.n_layers + 1)), pooling="mean_std")
        shas = [cache.content_hash(p) for p in m.path]
        missing = len(shas) - len(cache.get_many(full.fingerprint(), shas))
        c0, t0 = time.process_time(), time.perf_counter()
        feats = cache.audio_features(m.path, full, workers=1, progress=True)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        report[name] = {"clips": len(m), "computed": missing, "wall_s": wall, "cpu_s": cpu,
                        "torch_threads": torch.get_num_threads(), "load_avg": os.getloadavg()[0],
                        "fingerprint": full.fingerprint()}
        print(name, report[name], flush=True)
        d, width = cls.d_model, 2 * cls.d_model
        for spec in derived_specs(name):
            enc = cls(**spec)
            blocks = []
            for k in enc.layers:
                block = feats.values[:, (k - 1) * width:k * width]  # [N, 2D]: mean then std of block k
                blocks.append(block if enc.pooling == "mean_std" else block[:, :d])
            vals = np.concatenate(blocks, axis=1)
            assert vals.shape[1] == enc.dim
            cache.put_many(enc.fingerprint(), {shas[i]: vals[j] for j, i in enumerate(feats.rows)})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    old = json.loads((out / "extract.json").read_text()) if (out / "extract.json").exists() else {}
    (out / "extract.json").write_text(json.dumps({**old, **{k: v for k, v in report.items() if v["computed"]}},
                                                 indent=2))


# ------------------------------------------------------------------ one run
def run_key(cfg: dict) -> str:
    return json.dumps(cfg, sort_keys=True)


def train_eval(cfg: dict, m, cache, workdir: Path, split: str = "dev") -> dict:
    """Train one configuration on the train actors, evaluate on ``split``; returns the metrics."""
    from emorank.evaluation.evaluate import evaluate
    from emorank.model.core import EmotionRankCLAP
    from emorank.training.trainer import TrainConfig, train

    tc = dict(cfg)
    tc.pop("tag", None)
    config = TrainConfig.recipe(**tc, workers=1)
    t0 = time.perf_counter()
    result = train(m, config, out_dir=workdir, cache=cache, progress=False)
    train_s = time.perf_counter() - t0
    model = EmotionRankCLAP.from_checkpoint(result.checkpoint)
    rep = evaluate(model, m, split=split, cache=cache, progress=False)
    (workdir / "train_state.safetensors").unlink(missing_ok=True)  # Adam moments: not needed to evaluate
    return {**summarise(rep), "train_s": train_s, "best_epoch": result.best_epoch, "checkpoint": str(result.checkpoint),
            "epochs": len(result.history), "logit_scale": model.logit_scale.item()}


def summarise(rep: dict) -> dict:
    return {"aoc": rep["ordinality"]["aoc"]["mean"], "voc": rep["ordinality"]["voc"]["mean"],
            "label_r@1": rep["retrieval"]["a2t_label_r@1"], "r@1": rep["retrieval"]["a2t_r@1"],
            "zs_uar": rep.get("zero_shot", {}).get("zs_uar", float("nan")),
            "ccc_v": rep["va_estimation"]["ccc_valence"], "ccc_a": rep["va_estimation"]["ccc_arousal"]}


def run_grid(stage: str, configs: list[dict], seeds: int, out: Path, cache_path: str, root: str) -> list[dict]:
    import re

    from emorank.encoders.cache import FeatureCache

    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{stage}.json"
    rows = json.loads(path.read_text()) if path.exists() else []
    done = {(r["key"], r["seed"]) for r in rows}
    m, cache = manifest(root), FeatureCache(cache_path)
    for cfg in configs:
        for seed in range(seeds):
            full = {**cfg, "seed": seed}
            key = run_key(cfg)
            if (key, seed) in done:
                continue
            slug = re.sub(r"[^A-Za-z0-9.]+", "-", cfg.get("tag", key)).strip("-")
            metrics = train_eval(full, m, cache, out / "ckpt" / stage / f"{slug}-s{seed}")  # kept: shift suite
            row = {"key": key, "tag": cfg.get("tag", key), "seed": seed, **metrics}
            rows.append(row)
            print(stage, row["tag"], seed, {k: round(row[k], 3) for k in METRICS}, f"{metrics['train_s']:.0f}s",
                  flush=True)
            path.write_text(json.dumps(rows, indent=1))
    (out / f"{stage}.md").write_text(table(rows, stage))
    return rows


def aggregate(rows: list[dict]) -> list[dict]:
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["tag"], []).append(r)
    out = []
    for tag, rs in groups.items():
        agg = {"tag": tag, "n": len(rs)}
        for k in METRICS:
            vals = np.array([r[k] for r in rs], float)
            agg[k], agg[k + "_sd"] = float(np.mean(vals)), float(np.std(vals, ddof=1) if len(vals) > 1 else 0)
        agg["target_mean"] = (agg["aoc"] + agg["voc"] + agg["label_r@1"]) / 3
        out.append(agg)
    return out


def table(rows: list[dict], stage: str) -> str:
    lines = [f"### {stage} (RAVDESS dev actors 17-19, mean ± sd over seeds)", "",
             "| configuration | seeds | AOC | VOC | label R@1 a→t | R@1 a→t | zero-shot UAR | CCC V | CCC A | "
             "mean(AOC, VOC, label R@1) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for a in sorted(aggregate(rows), key=lambda a: -a["target_mean"]):
        cells = " | ".join(f"{a[k]:.3f} ± {a[k + '_sd']:.3f}" for k in METRICS)
        lines.append(f"| {a['tag']} | {a['n']} | {cells} | **{a['target_mean']:.3f}** |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ stages
def fe(encoder: str, **kw) -> dict:
    return {"audio_encoder": encoder, "audio_encoder_kwargs": kw}


def stage_configs(stage: str, args) -> list[dict]:
    system = {"system": "emotionrankclap-plus"}
    if stage == "frontend":
        out = [{**system, **fe("egemaps"), "audio_norm": "speaker", "tag": "egemaps / speaker"},
               {**system, **fe("egemaps"), "audio_norm": "global", "tag": "egemaps / global"}]
        for name in ("whisper-base", "whisper-tiny-en"):
            for spec in derived_specs(name):
                if spec["layer"] not in FRONTEND_LAYERS[name]:
                    continue
                tag = f"{name} L{spec['layer']} {spec['pooling']} / global"
                out.append({**system, **fe(name, **spec), "audio_norm": "global", "tag": tag})
        return out
    front = json.loads(args.frontend) if args.frontend else {"layer": 3, "pooling": "mean"}
    enc = args.encoder
    label = f"{enc} L{front['layer']} {front['pooling']}"
    if stage == "norm":
        return [{**system, **fe(enc, **front), "audio_norm": n, "tag": f"{label} / {n}"}
                for n in ("speaker", "global", "utterance", "none")]
    if stage == "recipe":
        base = {**system, **fe(enc, **front), "audio_norm": args.norm}
        out = []
        for loss, kw, lname in (("rnc-sce", {"sce_weight": 0.5, "symmetric": True}, "rnc+0.5sce (default)"),
                                ("rnc-sce", {"sce_weight": 0.2, "symmetric": True}, "rnc+0.2sce"),
                                ("rnc", {}, "plain rnc")):
            for temp in (1.0, 0.1):
                out.append({**base, "loss": loss, "loss_kwargs": kw, "temperature_init": temp,
                            "tag": f"{lname}, tau0 {temp}"})
        return out
    if stage == "budget":
        base = {**system, **fe(enc, **front), "audio_norm": args.norm, **json.loads(args.recipe or "{}")}
        return [{**base, "tag": "lr 1e-3, >=900 steps (recipe)"},
                {**base, "min_steps": 1800, "tag": "lr 1e-3, >=1800 steps"},
                {**base, "min_steps": 450, "tag": "lr 1e-3, >=450 steps"},
                {**base, "lr": 3e-4, "min_steps": 1800, "tag": "lr 3e-4, >=1800 steps"}]
    raise SystemExit(f"unknown stage {stage}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stage", choices=("extract", "frontend", "norm", "recipe", "budget"))
    ap.add_argument("--root", default=RAVDESS)
    ap.add_argument("--cache", default="/work/cache/features.sqlite")
    ap.add_argument("--out", default="/work/runs/p13/select")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--encoders", nargs="+", default=["whisper-base", "whisper-tiny-en"])
    ap.add_argument("--encoder", default="whisper-base", help="norm/recipe/budget: the chosen encoder")
    ap.add_argument("--frontend", default=None, help='norm/recipe/budget: JSON, e.g. {"layer": 3, "pooling": "mean"}')
    ap.add_argument("--norm", default="global", help="recipe/budget: the chosen normalisation")
    ap.add_argument("--recipe", default=None, help="budget: JSON TrainConfig overrides chosen by the recipe stage")
    ap.add_argument("--only", nargs="*", default=None, help="run only the configurations whose tag contains one "
                    "of these strings")
    args = ap.parse_args(argv)
    if args.stage == "extract":
        return extract(args)
    configs = stage_configs(args.stage, args)
    if args.only:
        configs = [c for c in configs if any(s in c["tag"] for s in args.only)]
    run_grid(args.stage, configs, args.seeds, Path(args.out), args.cache, args.root)


if __name__ == "__main__":
    main()
