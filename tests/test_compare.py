import json
import threading

import numpy as np
import pytest

from emorank.compare import compare, markdown, resolve_systems, summarise
from emorank.evaluate import EvalConfig
from emorank.systems import SYSTEMS
from emorank.train import TrainConfig

BASE = TrainConfig(epochs=2, lr=1e-3, batch_size=32, device="cpu", workers=1)
EVAL = EvalConfig(n_trials=3, n_lists=4)


def fake_report(aoc, mmd, rng):
    cell = lambda mu, n: {"values": list(mu + 0.01 * rng.normal(size=n))}  # noqa: E731
    return {"alignment": {"mmd": cell(mmd, 30), "wasserstein": cell(mmd * 2, 30)},
            "ordinality": {"aoc": cell(aoc, 100), "voc": cell(aoc / 2, 100)},
            "retrieval": {"a2t_r@1": 0.1, "a2t_r@5": 0.3, "a2t_r@10": 0.5, "t2a_r@10": 0.4},
            "va_estimation": {"ccc_valence": 0.2, "ccc_arousal": 0.8}}


def test_summary_stars_only_a_system_better_than_every_other():
    rng = np.random.default_rng(0)
    reports = {"emotionrankclap": [fake_report(0.6, 0.05, rng)], "clap-sce-av": [fake_report(0.4, 0.10, rng)],
               "supcon-av": [fake_report(0.4, 0.2, rng)], "clap-template": [fake_report(0.7, 0.3, rng)]}
    s = summarise(reports)["systems"]
    assert s["emotionrankclap"]["mmd"]["significance"]["table1"]["best"]  # lowest MMD among V-A systems
    assert not s["clap-sce-av"]["mmd"]["significance"]["table1"]["best"]
    assert s["clap-template"]["aoc"]["significance"]["table2"]["best"]  # best AOC among all
    assert not s["emotionrankclap"]["aoc"]["significance"]["table2"]["best"]
    assert "table1" not in s["clap-template"]["mmd"].get("significance", {})  # not a V-A-caption system
    md = markdown(summarise(reports))
    table1 = md.split("Table 2")[0]
    erc_row = next(line for line in table1.splitlines() if line.startswith("| EmotionRankCLAP"))
    sce_row = next(line for line in table1.splitlines() if line.startswith("| CLAP-SCE"))
    assert erc_row.count("*") == 2 and "*" not in sce_row  # best MMD and best Wasserstein
    assert md.index("Table 1") < md.index("Table 2") and "CLAP-template" in md.split("Table 2")[1]


def test_no_star_without_a_significant_difference():
    rng = np.random.default_rng(1)
    reports = {"emotionrankclap": [fake_report(0.5, 0.1, rng)], "clap-sce-av": [fake_report(0.5, 0.1, rng)]}
    s = summarise(reports)["systems"]
    assert not any(s[n][m]["significance"][t]["best"] for n in s for m, t in
                   [("mmd", "table1"), ("aoc", "table2"), ("voc", "table2")])


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
    assert len(summary["systems"]["emotionrankclap"]["aoc"]["values"]) == 2 * 4
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
