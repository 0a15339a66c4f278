"""Train and evaluate several systems with identical data, encoders, seeds and budget: the paper's Tables 1-2.

    python -m emorank compare --manifest M --systems all --seeds 3 --out DIR

Layout of DIR (every piece is reused on a re-run, so a crashed or stopped comparison resumes where it stopped):

    runs/<system>/seed<k>/checkpoint/      trained heads (train_state.safetensors while unfinished)
    runs/<system>/seed<k>/eval.json        its evaluation report
    comparison.json, comparison.md         the tables
    ordinality.html, ordinality.png        the ordinality figure

Statistics use the trained model (seed) as the unit: each run's report is reduced to one number per metric (its
mean over the protocol's 30 trials or 100 lists), and a system's cell is the mean +- std of those numbers across
seeds. Systems are compared with a two-tailed Welch t-test over seeds (``--test paired`` pairs them by seed); a
star marks a system significantly better (p < 0.05) than every other system in the same table, and no star is
given with fewer than 3 seeds per system. Pooling the trials or lists of several seeds as if they were
independent samples (what an earlier version did) finds "significant" differences between two seeds of the same
system: the trials measure the evaluation's sampling noise, not the training's.
"""
from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from emorank.data.manifest import Manifest
from emorank.evaluation.evaluate import EvalConfig, evaluate
from emorank.encoders.cache import FeatureCache
from emorank.metrics.stats import mean_std, seed_test
from emorank.model.checkpoint import CheckpointError
from emorank.model.core import EmotionRankCLAP
from emorank.training.systems import SYSTEMS, get_system
from emorank.training.trainer import LEGACY_STATE_FILE, STATE_FILE, ResumeMismatchError, TrainConfig, train
from emorank.evaluation.zeroshot import MIN_CLASSES

# metric key -> (path in a report, lower is better, heading)
METRICS = {
    "mmd": (("alignment", "mmd"), True, "MMD ↓"),
    "wasserstein": (("alignment", "wasserstein"), True, "Wass. Dist. ↓"),
    "aoc": (("ordinality", "aoc"), False, "AOC (KT) ↑"),
    "voc": (("ordinality", "voc"), False, "VOC (KT) ↑"),
}
EXTRA_COLUMNS = {"a2t_r@1": ("retrieval",), "a2t_r@5": ("retrieval",), "a2t_r@10": ("retrieval",),
                 "t2a_r@10": ("retrieval",),
                 "a2t_label_r@1": ("retrieval",), "a2t_label_r@5": ("retrieval",), "a2t_label_r@10": ("retrieval",),
                 "t2a_label_r@1": ("retrieval",), "t2a_label_r@5": ("retrieval",),
                 "ccc_valence": ("va_estimation",), "ccc_arousal": ("va_estimation",),
                 "zs_uar": ("zero_shot",), "zs_accuracy": ("zero_shot",), "zs_macro_f1": ("zero_shot",)}
COLUMN_TITLES = {"a2t_r@1": "R@1 a→t", "a2t_r@5": "R@5 a→t", "a2t_r@10": "R@10 a→t", "t2a_r@10": "R@10 t→a",
                 "a2t_label_r@1": "label R@1 a→t", "a2t_label_r@5": "label R@5 a→t",
                 "a2t_label_r@10": "label R@10 a→t", "t2a_label_r@1": "label R@1 t→a",
                 "t2a_label_r@5": "label R@5 t→a", "ccc_valence": "CCC V", "ccc_arousal": "CCC A",
                 "aoc": "AOC", "voc": "VOC", "mmd": "MMD", "wasserstein": "Wass.",
                 "zs_uar": "ZS UAR", "zs_accuracy": "ZS Acc.", "zs_macro_f1": "ZS macro-F1"}
VERSUS_METRICS = ("aoc", "voc", "a2t_label_r@1", "a2t_label_r@5", "t2a_label_r@1", "t2a_label_r@5")
ALPHA = 0.05
MIN_SEEDS = 3  # fewer trained models per system: no significance test, no star
SEED_TEST = "welch"
SEED_TESTS_TEXT = {"welch": "Welch's t-test over seeds", "paired": "paired t-test over seeds"}
REFERENCE = "clap-sce-av"


def resolve_systems(names: str | Sequence[str]) -> list[str]:
    """"all" or a comma-separated list / sequence of system names, in the paper's table order."""
    if isinstance(names, str):
        names = list(SYSTEMS) if names == "all" else [n.strip() for n in names.split(",") if n.strip()]
    for n in names:
        get_system(n)
    return list(dict.fromkeys(names))


def _finished_checkpoint(run_dir: Path, config: TrainConfig) -> bool:
    try:
        saved = EmotionRankCLAP.from_checkpoint(run_dir / "checkpoint")
    except CheckpointError:
        return False
    train = saved.extra.get("train")
    # through from_dict, so a field added to TrainConfig later (at its default) still matches an older checkpoint
    return isinstance(train, dict) and TrainConfig.from_dict(train) == config and not saved.extra.get("stopped")


def run_one(manifest: Manifest, system: str, seed: int, base: TrainConfig, eval_config: EvalConfig, run_dir: Path,
            cache: FeatureCache, retrain: bool, stop: threading.Event | None,
            emit: Callable[[dict], None]) -> dict | None:
    """Train (unless a finished checkpoint with this exact config exists) and evaluate one (system, seed)."""
    config = replace(base, system=system, seed=seed)
    report_file = run_dir / "eval.json"
    if retrain or not _finished_checkpoint(run_dir, config):
        report_file.unlink(missing_ok=True)
        if retrain:
            (run_dir / STATE_FILE).unlink(missing_ok=True)
            (run_dir / LEGACY_STATE_FILE).unlink(missing_ok=True)
        kwargs = dict(cache=cache, stop=stop, progress=False, on_event=lambda e: emit({**e, "system": system,
                                                                                       "seed": seed}))
        try:
            result = train(manifest, config, run_dir, resume=True, **kwargs)
        except ResumeMismatchError as err:
            err.path.unlink()  # a leftover (other settings, unreadable, or pickled): start this run afresh
            result = train(manifest, config, run_dir, resume=True, **kwargs)
        if result.stopped:
            return None
    if report_file.is_file():
        report = json.loads(report_file.read_text())
        if report.get("meta", {}).get("protocol") == asdict(eval_config) and all(
                _has(report, (*path, key)) for key, path in expected_columns(report).items()):
            return report
    model = EmotionRankCLAP.from_checkpoint(run_dir / "checkpoint")
    report = evaluate(model, manifest, "test", eval_config, cache, progress=False)
    tmp = report_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=2))
    os.replace(tmp, report_file)
    return report


def expected_columns(report: dict) -> dict[str, tuple[str, ...]]:
    """The EXTRA_COLUMNS a report of its test split can have: the zero-shot columns need at least MIN_CLASSES
    emotion categories (``meta.categories``, recorded by evaluate). A report older than that record is missing
    them and is re-evaluated once; a corpus without categories then never asks for them again."""
    categories = report.get("meta", {}).get("categories")
    if categories is not None and len(categories) < MIN_CLASSES:
        return {c: p for c, p in EXTRA_COLUMNS.items() if p != ("zero_shot",)}
    return EXTRA_COLUMNS


def _per_seed(report: dict, path: tuple[str, ...]) -> float:
    """One trained model's score: the mean over its trials / lists, or the scalar itself (recall, CCC)."""
    node = _node(report, path)
    return float(np.mean(node["values"])) if isinstance(node, dict) else float(node)


def _cell_stats(per_seed: Sequence[float], within: Sequence[dict] = ()) -> dict:
    """Mean +- std across seeds; for the protocol's metrics also the mean within-model std of trials / lists."""
    out = {**mean_std(per_seed), "seeds": [float(v) for v in per_seed]}
    if within:
        out["within_std"] = float(np.mean([np.std(w["values"], ddof=1) if len(w["values"]) > 1 else 0.0
                                           for w in within]))
    return out


def summarise(reports: dict[str, list[dict]], test: str = SEED_TEST, reference: str = REFERENCE) -> dict:
    """Statistics and significance per system and metric from {system: [report per seed]}.

    The unit is the trained model: each seed's report is reduced to one number per metric (its mean over the
    evaluation's trials or lists), and systems are compared with ``test`` over those numbers (``seed_test``). A
    system needs at least ``MIN_SEEDS`` seeds to be starred; with fewer no test is run. ``versus`` holds every
    system's difference from ``reference`` (CLAP-SCE (A-V) by default) on the headline and label-recall metrics.
    """
    n_seeds = {s: len(rs) for s, rs in reports.items()}
    can_test = bool(n_seeds) and min(n_seeds.values()) >= MIN_SEEDS
    out: dict = {"systems": {}, "test": SEED_TESTS_TEXT[test], "alpha": ALPHA, "min_seeds": MIN_SEEDS,
                 "seeds": n_seeds, "tested": can_test}
    scores: dict[str, dict[str, np.ndarray]] = {}
    for s, rs in reports.items():
        row = {"title": get_system(s).title, "va_captions": get_system(s).va_captions, "seeds": len(rs)}
        scores[s] = {}
        for m, (path, _, _) in {**METRICS, **{c: (p + (c,), False, c) for c, p in EXTRA_COLUMNS.items()}}.items():
            present = [r for r in rs if _has(r, path)]
            if len(present) < len(rs):
                continue  # an older report without this key (e.g. label-level recall): leave the column empty
            scores[s][m] = np.array([_per_seed(r, path) for r in rs])
            row[m] = _cell_stats(scores[s][m], [_node(r, path) for r in rs] if m in METRICS else ())
        out["systems"][s] = row
    for table, members in (("table1", [s for s in reports if get_system(s).va_captions]), ("table2", list(reports))):
        for m in (("mmd", "wasserstein") if table == "table1" else ("aoc", "voc")):
            for s in members:
                tests = {o: seed_test(scores[s][m], scores[o][m], test) for o in members if o != s} if can_test else {}
                better = [_better(scores[s][m], scores[o][m], t, METRICS[m][1]) for o, t in tests.items()]
                out["systems"][s][m].setdefault("significance", {})[table] = {
                    "best": bool(better) and all(better), "p": {o: t["p"] for o, t in tests.items()}}
    if reference in reports:
        out["versus"] = {"reference": reference, "systems": {}}
        for s in reports:
            if s == reference:
                continue
            cells = {}
            for m in VERSUS_METRICS:
                if m not in scores[s] or m not in scores[reference]:
                    continue
                lower = METRICS[m][1] if m in METRICS else False
                t = seed_test(scores[s][m], scores[reference][m], test) if can_test else None
                cells[m] = {"diff": float(scores[s][m].mean() - scores[reference][m].mean()),
                            "p": None if t is None else t["p"],
                            "better": t is not None and _better(scores[s][m], scores[reference][m], t, lower)}
            out["versus"]["systems"][s] = cells
    return out


def _node(report: dict, path: tuple[str, ...]):
    for key in path:
        report = report[key]
    return report


def _has(report: dict, path: tuple[str, ...]) -> bool:
    try:
        _node(report, path)
    except (KeyError, TypeError):
        return False
    return True


def _better(a: np.ndarray, b: np.ndarray, test: dict, lower_is_better: bool) -> bool:
    diff = float(np.mean(a) - np.mean(b))
    return test["p"] < ALPHA and (diff < 0 if lower_is_better else diff > 0)


def _cell(row: dict, metric: str, table: str, digits: int = 3) -> str:
    c = row.get(metric)
    if c is None:
        return "–"
    star = "*" if c.get("significance", {}).get(table, {}).get("best") else ""
    return f"{star}{c['mean']:.{digits}f} ± {c['std']:.{digits}f}"


def _caption(summary: dict) -> str:
    seeds = sorted(set(summary["seeds"].values()))
    n = "/".join(map(str, seeds))
    text = (f"Mean ± std across {n} trained model(s) (seeds) per system; each model's score is its mean over the "
            f"protocol's trials (alignment) or lists (ordinality).")
    if summary["tested"]:
        return text + (f" * = significantly better than every other system in the same table "
                       f"({summary['test']}, two-tailed, p < {summary['alpha']}, seed as the unit).")
    return text + f" No significance marks: a test needs at least {summary['min_seeds']} seeds per system."


def markdown(summary: dict, command: str = "") -> str:
    """Tables laid out like the paper's (Table 1: alignment of the V-A-caption systems; Table 2: ordinality), then
    how each system differs from the reference system."""
    systems = summary["systems"]
    lines = []
    if command:
        lines += [f"Produced by `{command}`.", ""]
    t1 = [s for s, r in systems.items() if r["va_captions"]]
    if t1:
        lines += ["**Table 1: cross-modal alignment** (systems trained on valence-arousal captions)", "",
                  "| Method | MMD ↓ | Wass. Dist. ↓ |", "|---|---|---|"]
        lines += [f"| {systems[s]['title']} | {_cell(systems[s], 'mmd', 'table1', 4)} | "
                  f"{_cell(systems[s], 'wasserstein', 'table1', 4)} |" for s in t1]
        lines.append("")
    extra = [c for c in EXTRA_COLUMNS if any(c in r for r in systems.values())]
    lines += ["**Table 2: cross-modal emotion ordinality** (+ retrieval recall@k, pair-exact and label-level, and "
              "V-A estimation CCC)", "",
              "| Method | AOC (KT) ↑ | VOC (KT) ↑ | " + " | ".join(COLUMN_TITLES.get(c, c) for c in extra) + " |",
              "|---|---|---|" + "---|" * len(extra)]
    for r in systems.values():
        cells = [f"{r[c]['mean']:.3f}" if c in r else "–" for c in extra]
        lines.append(f"| {r['title']} | {_cell(r, 'aoc', 'table2')} | {_cell(r, 'voc', 'table2')} | "
                     + " | ".join(cells) + " |")
    lines += ["", _caption(summary)]
    versus = summary.get("versus")
    if versus and summary["tested"]:
        ref = systems[versus["reference"]]["title"]
        lines += ["", f"**Against {ref}** (difference of means across seeds; p of the {summary['test']}; "
                  "bold = significantly better)", "",
                  "| Method | " + " | ".join(COLUMN_TITLES.get(m, m) for m in VERSUS_METRICS) + " |",
                  "|---|" + "---|" * len(VERSUS_METRICS)]
        for s, cells in versus["systems"].items():
            row = []
            for m in VERSUS_METRICS:
                c = cells.get(m)
                if c is None:
                    row.append("–")
                    continue
                text = f"{c['diff']:+.3f} (p={c['p']:.2g})"
                row.append(f"**{text}**" if c["better"] else text)
            lines.append(f"| {systems[s]['title']} | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def compare(manifest: Manifest, systems: str | Sequence[str], seeds: int, out_dir: str | os.PathLike,
            base: TrainConfig | None = None, eval_config: EvalConfig | None = None,
            cache: FeatureCache | None = None, retrain: bool = False, stop: threading.Event | None = None,
            on_event: Callable[[dict], None] | None = None, progress: bool = True, command: str = "",
            test: str = SEED_TEST) -> dict:
    """Train and evaluate each system for seeds 0..seeds-1; write comparison.{json,md} and figures; return the
    summary. Stopping (stop.set()) keeps every finished run; a re-run picks up from there."""
    names = resolve_systems(systems)
    base = base or TrainConfig()
    eval_config = eval_config or EvalConfig()
    cache = cache or FeatureCache()
    emit = on_event or (lambda e: None)
    out_dir = Path(out_dir)
    jobs = [(s, k) for s in names for k in range(seeds)]
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(jobs), desc="compare", unit="run")
    reports: dict[str, list[dict]] = {s: [] for s in names}
    try:
        for s, k in jobs:
            if bar is not None:
                bar.set_postfix_str(f"{s} seed {k}")
            report = run_one(manifest, s, k, base, eval_config, out_dir / "runs" / s / f"seed{k}", cache, retrain,
                             stop, emit)
            if report is None:
                emit({"event": "stopped", "system": s, "seed": k})
                return {}
            reports[s].append(report)
            emit({"event": "run_done", "system": s, "seed": k})
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    summary = summarise(reports, test)
    summary["config"] = {"train": asdict(base), "eval": asdict(eval_config), "seeds": seeds, "systems": names}
    write_outputs(summary, out_dir, command)
    return summary


def write_outputs(summary: dict, out_dir: Path, command: str = "") -> None:
    from emorank.evaluation.figures import ordinality_figure, ordinality_figure_png, save_figure

    out_dir.mkdir(parents=True, exist_ok=True)
    _atomic_write(out_dir / "comparison.json", json.dumps(summary, indent=2))
    _atomic_write(out_dir / "comparison.md", markdown(summary, command))
    results = {r["title"]: {"aoc": r["aoc"], "voc": r["voc"]} for r in summary["systems"].values()}
    save_figure(ordinality_figure(results), out_dir / "ordinality.html")
    ordinality_figure_png(results, out_dir / "ordinality.png")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
