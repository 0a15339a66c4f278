"""Train and evaluate several systems with identical data, encoders, seeds and budget: the paper's Tables 1-2.

    python -m emorank compare --manifest M --systems all --seeds 3 --out DIR

Layout of DIR (every piece is reused on a re-run, so a crashed or stopped comparison resumes where it stopped):

    runs/<system>/seed<k>/checkpoint/      trained heads (train_state.pt while a run is unfinished)
    runs/<system>/seed<k>/eval.json        its evaluation report
    comparison.json, comparison.md         the tables
    ordinality.html, ordinality.png        the ordinality figure

Statistics: for each system the per-trial (alignment) and per-list (ordinality) values of all seeds are pooled and
reported as mean +- std. Trials and lists are the same for every system (same seeds, same caption lists), so
systems are compared with a two-tailed paired t-test over those matched values; a star marks a system that is
significantly better (p < 0.05) than every other system in the same table.
"""
from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from emorank.datasets import Manifest
from emorank.evaluate import EvalConfig, evaluate
from emorank.features import FeatureCache
from emorank.metrics import mean_std, paired_test
from emorank.model import CheckpointError, EmotionRankCLAP
from emorank.systems import SYSTEMS, get_system
from emorank.train import ResumeMismatchError, TrainConfig, train

# metric key -> (path in a report, lower is better, heading)
METRICS = {
    "mmd": (("alignment", "mmd"), True, "MMD ↓"),
    "wasserstein": (("alignment", "wasserstein"), True, "Wass. Dist. ↓"),
    "aoc": (("ordinality", "aoc"), False, "AOC (KT) ↑"),
    "voc": (("ordinality", "voc"), False, "VOC (KT) ↑"),
}
EXTRA_COLUMNS = {"a2t_r@1": ("retrieval",), "a2t_r@5": ("retrieval",), "a2t_r@10": ("retrieval",),
                 "t2a_r@10": ("retrieval",), "ccc_valence": ("va_estimation",), "ccc_arousal": ("va_estimation",)}
ALPHA = 0.05
TEST = "ttest"


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
    return saved.extra.get("train") == asdict(config) and not saved.extra.get("stopped")


def run_one(manifest: Manifest, system: str, seed: int, base: TrainConfig, eval_config: EvalConfig, run_dir: Path,
            cache: FeatureCache, retrain: bool, stop: threading.Event | None,
            emit: Callable[[dict], None]) -> dict | None:
    """Train (unless a finished checkpoint with this exact config exists) and evaluate one (system, seed)."""
    config = replace(base, system=system, seed=seed)
    report_file = run_dir / "eval.json"
    if retrain or not _finished_checkpoint(run_dir, config):
        report_file.unlink(missing_ok=True)
        state = run_dir / "train_state.pt"
        if retrain:
            state.unlink(missing_ok=True)
        kwargs = dict(cache=cache, stop=stop, progress=False, on_event=lambda e: emit({**e, "system": system,
                                                                                       "seed": seed}))
        try:
            result = train(manifest, config, run_dir, resume=True, **kwargs)
        except ResumeMismatchError:
            state.unlink()  # a leftover from a comparison with other settings: start this run afresh
            result = train(manifest, config, run_dir, resume=True, **kwargs)
        if result.stopped:
            return None
    if report_file.is_file():
        report = json.loads(report_file.read_text())
        if report.get("meta", {}).get("protocol") == asdict(eval_config):
            return report
    model = EmotionRankCLAP.from_checkpoint(run_dir / "checkpoint")
    report = evaluate(model, manifest, "test", eval_config, cache, progress=False)
    tmp = report_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=2))
    os.replace(tmp, report_file)
    return report


def _values(report: dict, path: tuple[str, ...]) -> np.ndarray:
    node = report
    for key in path:
        node = node[key]
    return np.asarray(node["values"], dtype=float)


def summarise(reports: dict[str, list[dict]]) -> dict:
    """Pooled statistics and significance per system and metric from {system: [report per seed]}."""
    out: dict = {"systems": {}, "test": f"two-tailed paired t-test, alpha {ALPHA}"}
    pooled = {s: {m: np.concatenate([_values(r, METRICS[m][0]) for r in rs]) for m in METRICS}
              for s, rs in reports.items()}
    for s, rs in reports.items():
        row = {"title": get_system(s).title, "va_captions": get_system(s).va_captions, "seeds": len(rs)}
        for m, (_, lower, _) in METRICS.items():
            row[m] = {**mean_std(pooled[s][m]), "values": pooled[s][m].tolist()}
        for col, path in EXTRA_COLUMNS.items():
            row[col] = mean_std([r[path[0]][col] for r in rs])
        out["systems"][s] = row
    for table, members in (("table1", [s for s in reports if get_system(s).va_captions]), ("table2", list(reports))):
        for m in (("mmd", "wasserstein") if table == "table1" else ("aoc", "voc")):
            lower = METRICS[m][1]
            for s in members:
                tests = {o: paired_test(pooled[s][m], pooled[o][m], TEST) for o in members if o != s}
                better = [_better(pooled[s][m], pooled[o][m], t, lower) for o, t in tests.items()]
                cell = out["systems"][s][m]
                cell.setdefault("significance", {})[table] = {
                    "best": bool(better) and all(better), "p": {o: t["p"] for o, t in tests.items()}}
    return out


def _better(a: np.ndarray, b: np.ndarray, test: dict, lower_is_better: bool) -> bool:
    diff = float(np.mean(a - b))
    return test["p"] < ALPHA and (diff < 0 if lower_is_better else diff > 0)


def _cell(row: dict, metric: str, table: str, digits: int = 3) -> str:
    c = row[metric]
    star = "*" if c.get("significance", {}).get(table, {}).get("best") else ""
    return f"{star}{c['mean']:.{digits}f} ± {c['std']:.{digits}f}"


def markdown(summary: dict, command: str = "") -> str:
    """Tables laid out like the paper's (Table 1: alignment of the V-A-caption systems; Table 2: ordinality)."""
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
    extra = list(EXTRA_COLUMNS)
    lines += ["**Table 2: cross-modal emotion ordinality** (+ retrieval recall@k and V-A estimation CCC)", "",
              "| Method | AOC (KT) ↑ | VOC (KT) ↑ | " + " | ".join(extra) + " |",
              "|---|---|---|" + "---|" * len(extra)]
    for s, r in systems.items():
        cells = [f"{r[c]['mean']:.3f}" for c in extra]
        lines.append(f"| {r['title']} | {_cell(r, 'aoc', 'table2')} | {_cell(r, 'voc', 'table2')} | "
                     + " | ".join(cells) + " |")
    n_seeds = {r["seeds"] for r in systems.values()}
    lines += ["", f"Mean ± std over the pooled trials (alignment) and lists (ordinality) of {'/'.join(map(str, n_seeds))}"
              f" seed(s). * = significantly better than every other system in the table ({summary['test']})."]
    return "\n".join(lines) + "\n"


def compare(manifest: Manifest, systems: str | Sequence[str], seeds: int, out_dir: str | os.PathLike,
            base: TrainConfig | None = None, eval_config: EvalConfig | None = None,
            cache: FeatureCache | None = None, retrain: bool = False, stop: threading.Event | None = None,
            on_event: Callable[[dict], None] | None = None, progress: bool = True, command: str = "") -> dict:
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
    summary = summarise(reports)
    summary["config"] = {"train": asdict(base), "eval": asdict(eval_config), "seeds": seeds, "systems": names}
    write_outputs(summary, out_dir, command)
    return summary


def write_outputs(summary: dict, out_dir: Path, command: str = "") -> None:
    from emorank.viz import ordinality_figure, ordinality_figure_png, save_figure

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
