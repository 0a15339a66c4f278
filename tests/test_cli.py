import json

import pytest

from emorank.cli.parser import build_parser
from emorank.cli import main


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
    parser = build_parser()
    commands = list(next(a for a in parser._actions if isinstance(a, __import__("argparse")._SubParsersAction)).choices)
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    top = capsys.readouterr().out
    assert top.startswith("usage: emorank ")  # the installed command's name (python -m emorank also works)
    listed = [line.split()[0] for line in top.split("commands:")[1].splitlines() if line.startswith("  ")]
    assert set(commands) <= set(listed), sorted(set(commands) - set(listed))  # compare too
    for command in commands:
        with pytest.raises(SystemExit) as exit_info:
            build_parser().parse_args([command, "--help"])
        assert exit_info.value.code == 0
        assert "usage: emorank " + command in capsys.readouterr().out


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
                       "--trials", 2, "--lists", 3, "--json", tmp_path / "run" / "eval.json")  # the README's layout
    report = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert code == 0 and "AOC" in out
    assert set(report) >= {"alignment", "ordinality", "retrieval", "va_estimation"}
    assert set(report["alignment"]["mmd"]) >= {"mean", "std"} and set(report["ordinality"]["voc"]) >= {"mean", "std"}
    code, out, _ = run(capsys, "search", "--manifest", demo_corpus, "--checkpoint", ckpt, "--cache", cache,
                       "--valence", 2, "--arousal", 6.5, "--k", 4)
    assert code == 0 and out.startswith("query: The person is speaking") and out.count(".wav") == 4
    with pytest.raises(SystemExit, match="either --text"):
        main(["search", "--manifest", str(demo_corpus), "--checkpoint", str(ckpt), "--valence", "2"])
    # push finds the report beside the checkpoint (RUN/eval.json for RUN/checkpoint): the card has its metrics
    code, out, err = run(capsys, "push", ckpt, "--repo-id", "someone/erc", "--license", "mit", "--dry-run")
    assert code == 0 and "  eval.json" in out and "eval.json (the card's metrics) from" in out and not err
    from emorank.model.card import model_card
    assert "AOC" in model_card(ckpt) and "No evaluation report" not in model_card(ckpt)
    (tmp_path / "run" / "eval.json").unlink()
    code, out, err = run(capsys, "push", ckpt, "--repo-id", "someone/erc", "--license", "mit", "--dry-run")
    assert code == 0 and "  eval.json" not in out and "no evaluation report found" in err


def test_caption_a_manifest_with_the_builder_and_with_an_llm(capsys, tmp_path):
    import http.server
    import threading

    manifest = tmp_path / "m.csv"
    manifest.write_text("path,valence,arousal,caption\na.wav,2,6,\nb.wav,6,2,Mine already.\n")
    code, out, _ = run(capsys, "caption", "--manifest", manifest, "--out", tmp_path / "c.csv")
    from emorank.data.manifest import read_csv_manifest
    rows = read_csv_manifest(tmp_path / "c.csv", check_files=False)
    assert code == 0 and "captioned 1 of 2" in out
    assert rows.caption[0].startswith("The person is speaking") and rows.caption[1] == "Mine already."

    calls = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            calls.append(body["messages"][-1]["content"])
            answer = json.dumps({"choices": [{"message": {"content": "The person is speaking in a bright voice."}}]})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(answer.encode())

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/v1"
        args = ["caption", "--manifest", manifest, "--out", tmp_path / "l.csv", "--overwrite-captions",
                "--llm-url", url, "--llm-model", "test-model", "--llm-cache", tmp_path / "cache.json"]
        code, out, _ = run(capsys, *args)
        assert code == 0 and "captioned 2 of 2 rows (LLM test-model)" in out and len(calls) == 2
        assert "valence (1-very negative; 7-very positive)" in calls[0]
        code, out, _ = run(capsys, *args)  # everything answered from the cache
        assert code == 0 and len(calls) == 2
    finally:
        server.shutdown()
    rows = read_csv_manifest(tmp_path / "l.csv", check_files=False)
    assert rows.caption == ["The person is speaking in a bright voice."] * 2


def _budget(*flags):
    from emorank.cli.checks import train_config_from_args

    args = build_parser().parse_args(["train", "--manifest", "m.csv", "--out", "o", *flags])
    config = train_config_from_args(args)
    return config.epochs, config.min_steps, config.lr


def test_budget_defaults_learn_and_the_paper_is_one_flag_away():
    assert _budget() == (15, 900, 1e-3)  # our recipe: at least 900 optimiser steps at lr 1e-3
    assert _budget("--paper") == (15, 0, 1e-4)  # the paper's exact settings
    assert _budget("--epochs", "3") == (3, 0, 1e-3)  # an explicit epoch count alone is the whole budget
    assert _budget("--epochs", "3", "--min-steps", "50") == (3, 50, 1e-3)
    assert _budget("--paper", "--lr", "0.01") == (15, 0, 0.01)
