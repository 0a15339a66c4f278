"""Evaluation over a manifest with bad files: every skipped file is listed with its reason."""
from __future__ import annotations

import json
import struct

import numpy as np
import soundfile as sf

from emorank.cli import main
from emorank.evaluation.evaluate import EvalConfig, evaluate
from emorank.model.core import EmotionRankCLAP
from emorank.data.manifest import read_csv_manifest

SMALL = EvalConfig(n_trials=3, n_pairs=5000, n_lists=4, seed=0)


def manifest_with_bad_files(demo_manifest, tmp_path):
    """The demo test split plus four unreadable clips: three under the manifest's folder, one outside it."""
    bad = tmp_path / "data" / "bad"
    bad.mkdir(parents=True)
    sf.write(bad / "silent.wav", np.zeros(8000, np.float32), 16000)
    (bad / "junk.wav").write_text("not audio at all " * 20)
    sf.write(bad / "bomb.wav", (0.3 * np.sin(np.arange(8000) / 5)).astype(np.float32), 16000)
    raw = bytearray((bad / "bomb.wav").read_bytes())
    struct.pack_into("<II", raw, 24, 1_000_003, 2_000_006)
    (bad / "bomb.wav").write_bytes(bytes(raw))
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    sf.write(outside / "quiet.wav", np.zeros(8000, np.float32), 16000)
    test = demo_manifest.split_of("test")
    rows = ["path,valence,arousal,speaker,split"]
    rows += [f"{p},{v},{a},{s},test" for p, v, a, s in zip(test.path, test.valence, test.arousal, test.speaker)]
    rows += [f"bad/{n},4,4,x,test" for n in ("silent.wav", "junk.wav", "bomb.wav")]
    rows.append(f"{outside / 'quiet.wav'},4,4,x,test")
    (tmp_path / "data" / "m.csv").write_text("\n".join(rows) + "\n")
    return tmp_path / "data" / "m.csv", len(test)


def test_report_lists_every_skipped_file_with_its_reason(trained_checkpoint, demo_manifest, session_cache,
                                                         tmp_path):
    csv, n_good = manifest_with_bad_files(demo_manifest, tmp_path)
    report = evaluate(EmotionRankCLAP.from_checkpoint(trained_checkpoint), read_csv_manifest(csv), "test", SMALL,
                      session_cache, progress=False)
    meta = report["meta"]
    assert meta["clips"] == n_good and meta["n_skipped"] == 4
    reasons = {s["path"]: s["reason"] for s in meta["skipped"]}
    assert set(reasons) == {"bad/silent.wav", "bad/junk.wav", "bad/bomb.wav", "quiet.wav"}
    assert reasons["bad/silent.wav"].startswith("silent audio")
    assert "not a readable audio file" in reasons["bad/junk.wav"]
    assert "sample rate 1000003 Hz" in reasons["bad/bomb.wav"]
    assert str(tmp_path) not in json.dumps(meta["skipped"])  # no absolute paths of this machine


def test_cli_says_how_many_were_skipped_and_where_the_list_is(trained_checkpoint, demo_manifest, session_cache,
                                                              tmp_path, capsys):
    csv, n_good = manifest_with_bad_files(demo_manifest, tmp_path)
    out = tmp_path / "report.json"
    rc = main(["evaluate", "--checkpoint", str(trained_checkpoint), "--manifest", str(csv), "--cache",
               str(session_cache.path), "--trials", "3", "--lists", "4", "--json", str(out)])
    err = capsys.readouterr().err
    assert rc == 0
    assert f"skipped 4 of {n_good + 4} 'test' clips" in err and f"meta.skipped of {out}" in err
    assert "silent.wav" not in err  # the list is in the report, not dumped on stderr
    assert len(json.loads(out.read_text())["meta"]["skipped"]) == 4
