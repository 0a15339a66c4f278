import json
import threading

import numpy as np
import pytest
from scipy.stats import ttest_rel

from emorank.evaluation.compare import compare, markdown, resolve_systems, summarise
from emorank.evaluation.evaluate import EvalConfig
from emorank.training.systems import SYSTEMS
from emorank.training.trainer import TrainConfig

BASE = TrainConfig(epochs=2, lr=1e-3, batch_size=32, device="cpu", workers=1)
EVAL = EvalConfig(n_trials=3, n_lists=4)


def fake_report(aoc, mmd, rng, seed_sd=0.005):
    """One trained model's report: a model-level offset (seed_sd) plus per-trial / per-list noise."""
    cell = lambda mu, n: {"values": list(mu + rng.normal(0, seed_sd) + 0.01 * rng.normal(size=n))}  # noqa: E731
    return {"alignment": {"mmd": cell(mmd, 30), "wasserstein": cell(mmd * 2, 30)},
            "ordinality": {"aoc": cell(aoc, 100), "voc": cell(aoc / 2, 100)},
            "retrieval": {"a2t_r@1": 0.1, "a2t_r@5": 0.3, "a2t_r@10": 0.5, "t2a_r@10": 0.4,
                          "a2t_label_r@1": aoc / 2 + rng.normal(0, 0.01), "a2t_label_r@5": 0.6,
                          "a2t_label_r@10": 0.8, "t2a_label_r@1": 0.3, "t2a_label_r@5": 0.6},
            "va_estimation": {"ccc_valence": 0.2, "ccc_arousal": 0.8}}


def seeds(aoc, mmd, rng, n=5, **kw):
    return [fake_report(aoc, mmd, rng, **kw) for _ in range(n)]


def test_summary_stars_only_a_system_better_than_every_other():
    rng = np.random.default_rng(0)
    reports = {"emotionrankclap": seeds(0.6, 0.05, rng), "clap-sce-av": seeds(0.4, 0.10, rng),
               "supcon-av": seeds(0.4, 0.2, rng), "clap-template": seeds(0.7, 0.3, rng)}
    summary = summarise(reports)
    s = summary["systems"]
    assert s["emotionrankclap"]["mmd"]["significance"]["table1"]["best"]  # lowest MMD among V-A systems
    assert not s["clap-sce-av"]["mmd"]["significance"]["table1"]["best"]
    assert s["clap-template"]["aoc"]["significance"]["table2"]["best"]  # best AOC among all
    assert not s["emotionrankclap"]["aoc"]["significance"]["table2"]["best"]
    assert "table1" not in s["clap-template"]["mmd"].get("significance", {})  # not a V-A-caption system
    assert len(s["emotionrankclap"]["aoc"]["seeds"]) == 5  # one number per trained model
    assert s["emotionrankclap"]["aoc"]["mean"] == pytest.approx(np.mean(s["emotionrankclap"]["aoc"]["seeds"]))
    vs = summary["versus"]["systems"]["emotionrankclap"]
    assert vs["aoc"]["better"] and vs["a2t_label_r@1"]["better"] and vs["aoc"]["diff"] == pytest.approx(0.2, abs=0.02)
    md = markdown(summary)
    table1 = md.split("Table 2")[0]
    erc_row = next(line for line in table1.splitlines() if line.startswith("| EmotionRankCLAP"))
    sce_row = next(line for line in table1.splitlines() if line.startswith("| CLAP-SCE"))
    assert erc_row.count("*") == 2 and "*" not in sce_row  # best MMD and best Wasserstein
    assert md.index("Table 1") < md.index("Table 2") and "CLAP-template" in md.split("Table 2")[1]
    assert "Welch" in md and "5 trained model(s)" in md and "label R@1 a→t" in md and "Against CLAP-SCE" in md


def test_no_star_without_a_significant_difference():
    rng = np.random.default_rng(1)
    reports = {"emotionrankclap": seeds(0.5, 0.1, rng), "clap-sce-av": seeds(0.5, 0.1, rng)}
    s = summarise(reports)["systems"]
    assert not any(s[n][m]["significance"][t]["best"] for n in s for m, t in
                   [("mmd", "table1"), ("aoc", "table2"), ("voc", "table2")])


def test_two_seed_groups_of_one_system_are_not_called_different():
    """Pooling 100 lists per seed as independent samples made retrained copies of one system 'differ' (p ~ 1e-48);
    with the seed as the unit the same system is not significantly different from itself."""
    rng = np.random.default_rng(2)
    a, b = seeds(0.5, 0.1, rng, seed_sd=0.05), seeds(0.5, 0.1, rng, seed_sd=0.05)
    summary = summarise({"emotionrankclap": a, "clap-sce-av": b})
    assert summary["systems"]["emotionrankclap"]["aoc"]["significance"]["table2"]["p"]["clap-sce-av"] > 0.05
    pooled = ttest_rel(np.concatenate([r["ordinality"]["aoc"]["values"] for r in a]),
                       np.concatenate([r["ordinality"]["aoc"]["values"] for r in b])).pvalue
    assert pooled < 1e-6  # what the pooled test said about the same data


def test_fewer_than_three_seeds_get_no_star_and_the_caption_says_why():
    rng = np.random.default_rng(3)
    reports = {"emotionrankclap": seeds(0.9, 0.01, rng, n=2), "clap-sce-av": seeds(0.1, 0.5, rng, n=2)}
    summary = summarise(reports)
    assert not summary["tested"]
    assert not summary["systems"]["emotionrankclap"]["aoc"]["significance"]["table2"]["best"]
    md = markdown(summary)
    assert "*" not in md.replace("**", "") and "at least 3 seeds" in md


def test_resolve_systems():
    assert resolve_systems("all") == list(SYSTEMS)
    assert resolve_systems("clap-sce-av, emotionrankclap") == ["clap-sce-av", "emotionrankclap"]
    with pytest.raises(ValueError, match="valid systems"):
        resolve_systems("emotionrankclap,nope")


def test_compare_runs_writes_tables_and_resumes(demo_manifest, session_cache, tmp_path):
    events = []
    out = tmp_path / "cmp"
    summary = compare(demo_manifest, "clap-sce-av,emotionrankclap", 2, out, BASE, EVAL, session_cache,
                      on_event=events.append, progress=False)
    assert set(summary["systems"]) == {"clap-sce-av", "emotionrankclap"}
    assert summary["systems"]["emotionrankclap"]["seeds"] == 2
    cell = summary["systems"]["emotionrankclap"]["aoc"]
    assert len(cell["seeds"]) == 2  # one score per trained model
    reports = [json.loads((out / "runs" / "emotionrankclap" / f"seed{k}" / "eval.json").read_text()) for k in (0, 1)]
    assert cell["seeds"] == pytest.approx([np.mean(r["ordinality"]["aoc"]["values"]) for r in reports])
    assert cell["mean"] == pytest.approx(np.mean(cell["seeds"]))
    assert cell["std"] == pytest.approx(np.std(cell["seeds"], ddof=1)) and cell["std"] > 0  # two seeds differ
    # the spread within one model: the mean over models of the sample std of its lists' values
    assert cell["within_std"] == pytest.approx(np.mean([np.std(r["ordinality"]["aoc"]["values"], ddof=1)
                                                        for r in reports])) and cell["within_std"] > 0
    assert not summary["tested"]  # two seeds: no significance test
    saved = json.loads((out / "comparison.json").read_text())
    assert saved["systems"].keys() == summary["systems"].keys()
    md = (out / "comparison.md").read_text()
    assert "CLAP-SCE (A-V)" in md and "EmotionRankCLAP (A-V)" in md and "±" in md
    assert (out / "ordinality.png").stat().st_size > 1000 and (out / "ordinality.html").is_file()
    assert sum(e["event"] == "epoch" for e in events) == 2 * 2 * 2
    # a second run reuses every checkpoint and report: no training at all, same numbers
    events.clear()
    again = compare(demo_manifest, "clap-sce-av,emotionrankclap", 2, out, BASE, EVAL, session_cache,
                    on_event=events.append, progress=False)
    assert not any(e["event"] == "epoch" for e in events)
    assert again["systems"]["emotionrankclap"]["aoc"] == summary["systems"]["emotionrankclap"]["aoc"]


def test_stopped_compare_keeps_finished_runs(demo_manifest, session_cache, tmp_path):
    stop = threading.Event()
    events = []

    def on_event(e):
        events.append(e)
        if e["event"] == "run_done":
            stop.set()

    assert compare(demo_manifest, "clap-sce-av,emotionrankclap", 1, tmp_path / "c", BASE, EVAL, session_cache,
                   stop=stop, on_event=on_event, progress=False) == {}
    assert (tmp_path / "c" / "runs" / "clap-sce-av" / "seed0" / "eval.json").is_file()
    events.clear()
    done = compare(demo_manifest, "clap-sce-av,emotionrankclap", 1, tmp_path / "c", BASE, EVAL, session_cache,
                   on_event=events.append, progress=False)
    assert set(done["systems"]) == {"clap-sce-av", "emotionrankclap"}
    assert {e.get("system") for e in events if e["event"] == "epoch"} == {"emotionrankclap"}


def test_a_checkpoint_from_before_a_new_config_field_still_counts_as_finished(tmp_path):
    """The shipped checkpoint's saved TrainConfig predates `min_steps`: at the field's default it is the same run."""
    import shutil

    from emorank.evaluation.compare import _finished_checkpoint

    shutil.copytree("checkpoints/emotionrankclap", tmp_path / "checkpoint")
    saved = json.loads((tmp_path / "checkpoint" / "config.json").read_text())["train"]
    assert "min_steps" not in saved
    config = TrainConfig.from_dict(saved)
    assert _finished_checkpoint(tmp_path, config)
    assert not _finished_checkpoint(tmp_path, TrainConfig.from_dict({**saved, "min_steps": 900}))
    assert not _finished_checkpoint(tmp_path, TrainConfig.from_dict({**saved, "lr": 1e-4}))
