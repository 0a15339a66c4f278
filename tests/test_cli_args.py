"""Command-line values are checked before any work; `encode`; Ctrl-C; fuzzing of the numeric and path options."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emorank.cli import INTERRUPTED, main, parse_args
from emorank.cli.checks import LIMITS, OUTPUTS

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = ROOT / "checkpoints" / "emotionrankclap"


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def refused(capsys, *argv) -> str:
    """The message of a command line refused before any work (exit status 2, one line, no traceback)."""
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    with pytest.raises(SystemExit) as exit_info:  # the same refusal through parse_args
        parse_args([str(a) for a in argv])
    assert exit_info.value.code == 2 and err[len("error: "):] in capsys.readouterr().err
    return err


# ------------------------------------------------------------------------------------- paths, before any work
@pytest.fixture
def places(tmp_path):
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "a-folder").mkdir()
    return tmp_path


@pytest.mark.parametrize("argv, flag", [
    (["train", "--manifest", "missing.csv", "--out", "{file}"], "--out"),
    (["train", "--manifest", "missing.csv", "--out", "{file}/run"], "--out"),
    (["train", "--manifest", "missing.csv", "--out", "{folder}/run", "--cache", "{folder}"], "--cache"),
    (["features", "--manifest", "missing.csv", "--cache", "{folder}"], "--cache"),
    (["compare", "--manifest", "missing.csv", "--out", "{file}"], "--out"),
    (["evaluate", "--manifest", "missing.csv", "--checkpoint", "missing", "--json", "{folder}"], "--json"),
    (["evaluate", "--manifest", "missing.csv", "--checkpoint", "missing", "--cache", "{folder}"], "--cache"),
    (["search", "--manifest", "missing.csv", "--checkpoint", "missing", "--text", "x", "--cache", "{folder}"],
     "--cache"),
    (["corpus", "--out", "{file}"], "--out"),
    (["caption", "--manifest", "missing.csv", "--out", "{folder}"], "--out"),
    (["encode", "--checkpoint", "missing", "--out", "{folder}", "a.wav"], "--out"),
    (["encode", "--checkpoint", "missing", "--out", "{folder}/emb.pkl", "a.wav"], "--out"),
])
def test_output_paths_are_refused_before_any_work(capsys, places, argv, flag):
    """Before: `--out FILE` trained a first epoch and then failed with a traceback; `--cache FOLDER` likewise.
    Now the path is refused first: the (missing) manifest and checkpoint are never even looked at."""
    argv = [a.format(file=places / "a-file", folder=places / "a-folder") for a in argv]
    err = refused(capsys, *argv)
    assert flag in err and "manifest" not in err and "checkpoint" not in err.lower().replace("--checkpoint", "")


def test_the_default_cache_is_checked_too(capsys, places, monkeypatch):
    monkeypatch.setenv("EMORANK_CACHE", str(places / "a-folder"))
    assert "--cache" in refused(capsys, "features", "--manifest", "missing.csv")


# ---------------------------------------------------------------------------------------------- numbers
@pytest.mark.parametrize("argv, fragment", [
    (["search", "--text", "x", "--k", "0"], "--k must be a whole number from 1 to 10000 (got 0)"),
    (["search", "--text", "x", "--k", "-1"], "--k must be a whole number from 1 to 10000 (got -1)"),
    (["search", "--text", "x", "--k", "1" + "0" * 308], "(got a number of over 15 digits)"),
    (["search", "--valence", "9", "--arousal", "4"], "--valence must be a number from 1 to 7 (got 9.0)"),
    (["search", "--valence", "4", "--arousal", "nan"], "--arousal must be a number from 1 to 7 (got nan)"),
    (["caption", "--valence", "4", "--arousal=-inf"], "--arousal must be a number from 1 to 7 (got -inf)"),
    (["evaluate", "--checkpoint", "c", "--trials", "0"], "--trials must be a whole number from 1 to 1000"),
    (["corpus", "--out", "x", "--n", "0"], "--n must be a whole number from 1 to 1e+06"),
    (["train", "--out", "x", "--epochs", "0"], "epochs must be a whole number from 1 to 10000"),
    (["features", "--workers", "0"], "workers must be a whole number from 1 to 256, got 0"),
])
def test_numbers_out_of_range_are_refused_before_any_work(capsys, argv, fragment):
    """Before: `search --k 0` and `--k -1` exited 0 with no hits, `--valence 9` searched at 7."""
    argv = argv[:1] + ["--manifest", "missing.csv", "--checkpoint", "missing"] * (argv[0] in ("search",)) + argv[1:]
    assert fragment in refused(capsys, *argv)


def test_k_is_bounded_in_the_library_the_cli_and_the_app_share():
    """Before: k=1e308 from the app came back as "... (got 1000...000)", a 309-digit number."""
    from emorank.app.bounds import WorkspaceError, whole
    from emorank.search.retrieval import check_k

    assert check_k(5) == 5 and check_k(np.int64(3)) == 3
    for bad in (0, -1, 1e308, 10 ** 308, 10 ** 5000, float("nan"), "5", None):
        with pytest.raises(ValueError) as info:
            check_k(bad)
        assert len(str(info.value)) < 100, str(info.value)
    for bad in (1e308, 10 ** 308, 10 ** 5000, "1e308"):
        with pytest.raises(WorkspaceError) as info:
            whole(bad, "k (clips to return)", 1, 50)
        assert len(str(info.value)) < 100 and "000000" not in str(info.value), str(info.value)


# ------------------------------------------------------------------------------------------------ encode
def tones(folder: Path, n: int) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        t = np.arange(16000) / 16000
        wav = (0.1 + 0.05 * i) * np.sin(2 * np.pi * (120 + 40 * i) * t) + 0.01 * rng.normal(size=t.size)
        paths.append(folder / f"tone{i}.wav")
        sf.write(paths[-1], wav.astype(np.float32), 16000)
    return paths


def test_encode_writes_embeddings_of_files_and_skips_bad_ones(capsys, tmp_path):
    from emorank.model.embeddings import read_embeddings
    from emorank.model.core import EmotionRankCLAP

    good = tones(tmp_path, 3)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really")
    code, out, err = run(capsys, "encode", good[0], bad, good[1], good[2], "--checkpoint", CHECKPOINT,
                         "--out", tmp_path / "out" / "emb.npz", "--batch-size", 2)
    assert code == 0 and "wrote 3 embeddings" in out and "1 files skipped" in out
    assert f"skipped {bad}:" in err and "Traceback" not in err
    with np.load(tmp_path / "out" / "emb.npz", allow_pickle=False) as data:  # no pickle anywhere in the file
        emb, files = data["embeddings"], data["files"].tolist()
    assert files == [str(p) for p in good] and emb.dtype == np.float32
    expected = EmotionRankCLAP.from_checkpoint(CHECKPOINT).encode_audio([str(p) for p in good])
    np.testing.assert_allclose(emb, expected, rtol=1e-5, atol=1e-6)  # each file as encode_audio embeds it
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    assert os.listdir(tmp_path / "out") == ["emb.npz"]  # written atomically: no temporary file left

    code, _, _ = run(capsys, "encode", *good, "--checkpoint", CHECKPOINT, "--out", tmp_path / "emb.safetensors",
                     "--quiet")
    again, names, meta = read_embeddings(tmp_path / "emb.safetensors")
    assert code == 0 and names == files and meta["checkpoint"] == "emotionrankclap"
    np.testing.assert_allclose(again, emb, rtol=1e-5, atol=1e-6)  # other batches: float32 rounding only


def test_encode_a_manifest_and_clear_errors(capsys, tmp_path):
    good = tones(tmp_path, 2)
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,valence,arousal\n" + "".join(f"{p.name},4,4\n" for p in good))
    code, out, _ = run(capsys, "encode", "--manifest", manifest, "--checkpoint", CHECKPOINT,
                       "--out", tmp_path / "emb.npz", "--quiet")
    assert code == 0 and "wrote 2 embeddings" in out
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"\0" * 10)
    code, _, err = run(capsys, "encode", bad, "--checkpoint", CHECKPOINT, "--out", tmp_path / "none.npz", "--quiet")
    assert code == 2 and "none of the 1 files could be encoded" in err and not (tmp_path / "none.npz").exists()
    with pytest.raises(SystemExit, match="not both"):
        main(["encode", str(good[0]), "--manifest", str(manifest), "--checkpoint", str(CHECKPOINT),
              "--out", str(tmp_path / "x.npz")])
    code, _, err = run(capsys, "encode", good[0], "--checkpoint", tmp_path / "nowhere", "--out", tmp_path / "x.npz")
    assert code == 2 and err.startswith("error:")


def test_encode_documents_itself(capsys):
    with pytest.raises(SystemExit) as info:
        parse_args(["encode", "--help"])
    out = capsys.readouterr().out
    assert info.value.code == 0 and "usage: emorank encode" in out
    assert "allow_pickle=False" in out and ".safetensors" in out and "atomically" in out


# ----------------------------------------------------------------------------------------------- Ctrl-C
def _children(pid: int) -> set[int]:
    out = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = dict(line.split(":", 1) for line in Path(f"/proc/{entry}/status").read_text().splitlines()
                              if ":" in line)
            except OSError:
                continue
            if int(fields.get("PPid", "0")) == pid:
                out.add(int(entry))
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_double_ctrl_c_during_feature_extraction_exits_cleanly(tmp_path):
    """Before: the second Ctrl-C ended `train` with a KeyboardInterrupt traceback (and each worker printed its
    own). Now: one line, status 130, and the cache holds whole rows only."""
    rng = np.random.default_rng(0)
    rows = ["path,valence,arousal,speaker"]
    for i in range(80):
        sf.write(tmp_path / f"{i}.wav", (0.1 * rng.normal(size=48000)).astype(np.float32), 16000)
        rows.append(f"{i}.wav,{1 + i % 7},{1 + (i * 3) % 7},s{i % 4}")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    cache = tmp_path / "c.sqlite"
    proc = subprocess.Popen([sys.executable, "-m", "emorank", "train", "--manifest", str(tmp_path / "m.csv"),
                             "--cache", str(cache), "--out", str(tmp_path / "run"), "--workers", "2"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while len(_children(proc.pid)) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None and len(_children(proc.pid)) >= 2, "extraction never started"
        time.sleep(0.5)
        for _ in range(2):  # a terminal's Ctrl-C: SIGINT to the whole process group
            os.killpg(proc.pid, signal.SIGINT)
            time.sleep(0.3)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = err.decode()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert err.strip().splitlines()[-1] == INTERRUPTED
    db = sqlite3.connect(str(cache))
    assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert {len(v) for (v,) in db.execute("SELECT vec FROM features")} <= {88 * 4}  # whole eGeMAPS rows only
    db.close()


# ---------------------------------------------------------------------------------------------- fuzzing
NUMERIC = sorted({(cmd, dest) for cmd, limits in LIMITS.items() for dest in limits}
                 | {("train", d) for d in ("epochs", "min_steps", "batch_size", "lr", "weight_decay", "temperature",
                                           "caption_seed", "seed", "workers")}
                 | {("compare", d) for d in ("seeds", "epochs", "batch_size", "lr")})
PATHS = sorted((cmd, dest) for cmd, outputs in OUTPUTS.items() for dest in outputs)
BASE = {  # the required options of each command, with harmless values
    "corpus": ["--out", "{tmp}/corpus"], "features": ["--manifest", "m.csv"],
    "train": ["--manifest", "m.csv", "--out", "{tmp}/run"], "evaluate": ["--manifest", "m.csv", "--checkpoint", "c"],
    "compare": ["--manifest", "m.csv", "--out", "{tmp}/cmp"],
    "search": ["--manifest", "m.csv", "--checkpoint", "c", "--text", "calm"],
    "caption": ["--valence", "4", "--arousal", "4"], "encode": ["--checkpoint", "c", "--out", "{tmp}/e.npz", "a.wav"],
}
numbers = st.one_of(st.integers(-10 ** 12, 10 ** 12).map(str), st.integers().map(str),
                    st.floats(allow_nan=True, allow_infinity=True).map(repr), st.sampled_from(["", "1e308", "-0",
                                                                                              "0x10", "1_000", " 7 "]))
texts = st.text(min_size=0, max_size=40)
paths = st.one_of(texts, st.sampled_from(["{file}", "{folder}", "{file}/x", "{folder}/new/deeper", "", ".", "/",
                                          "/proc/self/fd", "{tmp}/" + "n" * 300, "a\0b", "\udcff"]))


@pytest.fixture(scope="module")
def fuzz_places(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    (tmp / "file").write_text("x")
    (tmp / "folder").mkdir()
    return {"tmp": str(tmp), "file": str(tmp / "file"), "folder": str(tmp / "folder")}


def _place(text: str, where: dict) -> str:
    for name, path in where.items():
        text = text.replace("{" + name + "}", path)
    return text


def _argv(command: str, extra: list[tuple[str, str]], where: dict) -> list[str]:
    argv = [command] + [_place(a, where) for a in BASE[command]]
    return argv + [f"--{dest.replace('_', '-')}={_place(value, where)}" for dest, value in extra]


def _parses_or_refuses(argv: list[str], capsys) -> None:
    try:
        args = parse_args(argv)
    except SystemExit as exit_info:
        err = capsys.readouterr().err
        assert exit_info.code not in (0, None) and err.strip(), (argv, exit_info.code, err)
        return
    capsys.readouterr()
    assert args.command == argv[0]
    for dest, (lo, hi) in LIMITS.get(args.command, {}).items():  # what is accepted is usable
        value = getattr(args, dest)
        assert value is None or (np.isfinite(value) and lo <= value <= hi), (argv, dest, value)
    for dest, kind in OUTPUTS.get(args.command, {}).items():
        value = getattr(args, dest)
        if value is not None:
            assert not (Path(value).is_dir() if kind == "file" else Path(value).is_file()), (argv, dest)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_numeric_and_path_options_end_in_a_clean_refusal_or_success(data, fuzz_places, capsys):
    """Arbitrary strings and numbers in every numeric and output-path option: parsing and checking either
    succeeds or exits with a message (status 2, or 1 for a --help-like request), never with a traceback."""
    command = data.draw(st.sampled_from(sorted(BASE)))
    options = [("n", d) for c, d in NUMERIC if c == command] + [("p", d) for c, d in PATHS if c == command]
    chosen = data.draw(st.lists(st.sampled_from(options), max_size=4, unique=True)) if options else []
    extra = [(dest, data.draw(numbers if kind == "n" else paths)) for kind, dest in chosen]
    _parses_or_refuses(_argv(command, extra, fuzz_places), capsys)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(valence=numbers, arousal=numbers, n=numbers, seed=numbers)
def test_fuzz_the_caption_command_end_to_end(valence, arousal, n, seed, capsys):
    """A whole command (cheap: no files) with arbitrary numbers: a result or a message, never a traceback."""
    argv = ["caption", f"--valence={valence}", f"--arousal={arousal}", f"--n={n}", f"--seed={seed}"]
    try:
        code = main(argv)
    except SystemExit as exit_info:
        code = exit_info.code
    out = capsys.readouterr()
    assert code in (0, 1, 2) and "Traceback" not in out.err, (argv, code, out.err)
    assert (out.out.strip() != "") if code == 0 else (out.err.strip() != "")
