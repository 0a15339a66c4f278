import json

import pytest

from emorank.cli import build_parser, main


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_caption_command_prints_distinct_digit_free_captions(capsys):
    code, out, _ = run(capsys, "caption", "--valence", 6.5, "--arousal", 2, "--n", 3)
    lines = out.strip().splitlines()
    assert code == 0 and len(lines) == 3 and len(set(lines)) == 3
    assert all(line.startswith("The person is speaking") and not any(c.isdigit() for c in line) for line in lines)


def test_every_command_documents_itself(capsys):
    for command in ["corpus", "features", "train", "evaluate", "compare", "search", "caption"]:
        with pytest.raises(SystemExit) as exit_info:
            build_parser().parse_args([command, "--help"])
        assert exit_info.value.code == 0
        assert "usage: python -m emorank " + command in capsys.readouterr().out


def test_unknown_system_is_rejected_with_the_valid_names(capsys, tmp_path):
    with pytest.raises(SystemExit):
        main(["train", "--manifest", "m.csv", "--out", str(tmp_path), "--system", "nope"])
    assert "emotionrankclap" in capsys.readouterr().err


def test_bad_manifest_is_a_clear_error_not_a_traceback(capsys, tmp_path):
    bad = tmp_path / "m.csv"
    bad.write_text("path,valence\na.wav,3\n")
    code, _, err = run(capsys, "train", "--manifest", bad, "--out", tmp_path / "run")
    assert code == 2 and err.startswith("error:") and "arousal" in err


def test_train_evaluate_search_pipeline(capsys, demo_corpus, tmp_path, session_cache):
    cache = session_cache.path
    code, out, _ = run(capsys, "train", "--manifest", demo_corpus, "--out", tmp_path / "run", "--epochs", 2,
                       "--lr", 1e-3, "--cache", cache, "--workers", 1)
    assert code == 0 and "epoch 2:" in out and "checkpoint:" in out
    ckpt = tmp_path / "run" / "checkpoint"
    code, out, _ = run(capsys, "evaluate", "--manifest", demo_corpus, "--checkpoint", ckpt, "--cache", cache,
                       "--trials", 2, "--lists", 3, "--json", tmp_path / "eval.json")
    report = json.loads((tmp_path / "eval.json").read_text())
    assert code == 0 and "AOC" in out
    assert set(report) >= {"alignment", "ordinality", "retrieval", "va_estimation"}
    assert set(report["alignment"]["mmd"]) >= {"mean", "std"} and set(report["ordinality"]["voc"]) >= {"mean", "std"}
    code, out, _ = run(capsys, "search", "--manifest", demo_corpus, "--checkpoint", ckpt, "--cache", cache,
                       "--valence", 2, "--arousal", 6.5, "--k", 4)
    assert code == 0 and out.startswith("query: The person is speaking") and out.count(".wav") == 4
    with pytest.raises(SystemExit, match="either --text"):
        main(["search", "--manifest", str(demo_corpus), "--checkpoint", str(ckpt), "--valence", "2"])
