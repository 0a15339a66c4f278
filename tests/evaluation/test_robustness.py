"""The shift suite: each degradation does what it says, renders are deterministic and resumable, and the suite's
clean row is evaluate()'s own report."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import welch

from emorank.evaluation import robustness as R
from emorank.data.audio import TARGET_SR
from emorank.cli import main
from emorank.evaluation.evaluate import EvalConfig, evaluate
from emorank.model.core import EmotionRankCLAP

SR = R.RENDER_SR
SMALL = EvalConfig(n_trials=4, n_pairs=5000, n_lists=6, seed=0)


def speech_like(seconds=3.0, seed=0, level=0.1):
    """A voiced-like test signal: harmonics of a gliding pitch under a syllable-rate envelope, plus a little noise,
    with pauses (silence) at both ends as in real recordings."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    voiced = sum(np.sin(k * phase) / k for k in range(1, 25))
    envelope = (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)) * ((t > 0.3) & (t < seconds - 0.3))
    x = envelope * voiced + 0.02 * rng.standard_normal(t.size)
    return level * x / np.max(np.abs(x))


def band_fraction(y, low, high=None):
    f, p = welch(y, SR, nperseg=1024)
    band = (f >= low) if high is None else (f >= low) & (f < high)
    return p[band].sum() / p.sum()


def rms_db(y):
    return 10 * np.log10(np.mean(np.asarray(y, np.float64) ** 2))


# ------------------------------------------------------------------------------------------ each degradation
@pytest.mark.parametrize("name,snr", [("white-20db", 20), ("white-10db", 10), ("pink-20db", 20), ("pink-10db", 10)])
def test_noise_is_added_at_the_stated_snr(name, snr):
    x = speech_like()
    y = R.degrade(x, SR, R.CONDITIONS[name], "Actor_20/a.wav")
    measured = rms_db(x) - rms_db(y.astype(np.float64) - x)
    assert abs(measured - snr) < 0.5


def test_pink_noise_has_a_one_over_f_spectrum_and_white_noise_is_flat():
    rng = np.random.default_rng(0)
    f, p_pink = welch(R.pink_noise(SR * 20, rng), SR, nperseg=4096)
    _, p_white = welch(R.white_noise(SR * 20, rng), SR, nperseg=4096)
    band = (f > 50) & (f < 6000)
    slope_pink = np.polyfit(np.log(f[band]), np.log(p_pink[band]), 1)[0]
    slope_white = np.polyfit(np.log(f[band]), np.log(p_white[band]), 1)[0]
    assert abs(slope_pink + 1) < 0.1 and abs(slope_white) < 0.1


def test_telephone_band_removes_energy_outside_300_to_3400_hz():
    x = 0.1 * np.random.default_rng(1).standard_normal(SR * 3)  # white: 57% of its energy is above 3.4 kHz
    y = R.degrade(x, SR, R.CONDITIONS["telephone"], "a.wav")
    assert len(y) == len(x)
    assert band_fraction(x, 3400) > 0.5
    assert band_fraction(y, 3400) < 0.01 and band_fraction(y, 4000) < 1e-4
    assert band_fraction(y, 0, 200) < 1e-3
    tone = 0.3 * np.sin(2 * np.pi * 1000 * np.arange(SR) / SR)  # the pass band is kept
    kept = R.telephone_band(tone, SR)
    assert abs(rms_db(kept[2000:-2000]) - rms_db(tone[2000:-2000])) < 0.5


@pytest.mark.parametrize("name,db", [("gain-12db", -12.0), ("gain+12db", 12.0)])
def test_gain_changes_the_level_by_the_stated_db(name, db):
    x = speech_like(level=0.05)  # peak 0.05: +12 dB (x3.98) does not reach full scale
    y = R.degrade(x, SR, R.CONDITIONS[name], "a.wav")
    assert abs((rms_db(y) - rms_db(x)) - db) < 0.01


def test_gain_clips_at_full_scale_as_a_recorder_would():
    x = speech_like(level=0.8)
    y = R.degrade(x, SR, R.CONDITIONS["gain+12db"], "a.wav")
    assert np.max(np.abs(y)) == 1.0
    assert np.mean(np.abs(y) == 1.0) > 0.01
    assert rms_db(y) - rms_db(x) < 12.0 - 0.5  # clipping costs level


def test_cut_keeps_the_middle_two_seconds():
    x = speech_like(seconds=3.7)
    y = R.degrade(x, SR, R.CONDITIONS["cut-2s"], "a.wav")
    assert len(y) / SR == 2.0
    start = (len(x) - 2 * SR) // 2
    np.testing.assert_allclose(y, x[start:start + 2 * SR], atol=1e-7)
    short = speech_like(seconds=1.5)
    assert len(R.degrade(short, SR, R.CONDITIONS["cut-2s"], "a.wav")) == len(short)


def test_reverb_lengthens_the_decay_with_the_stated_rt60():
    condition = R.CONDITIONS["reverb"]
    burst = np.zeros(SR * 2)
    burst[SR // 2: SR // 2 + 800] = 0.3 * np.random.default_rng(2).standard_normal(800)
    y = R.degrade(burst, SR, condition, "a.wav").astype(np.float64)
    end = SR // 2 + 800
    assert np.sum(burst[end:end + SR // 10] ** 2) == 0
    assert np.sum(y[end:end + SR // 10] ** 2) > 0.05 * np.sum(y ** 2)  # energy after the talker stopped
    assert len(y) == len(burst) and abs(rms_db(y) - rms_db(burst)) < 0.01
    # Schroeder backward integration of the impulse response: the -5..-35 dB slope gives RT60
    rir = R.synthetic_rir(SR, condition.rt60, condition.drr_db)
    energy = np.cumsum(rir[1:][::-1] ** 2)[::-1]
    decay_db = 10 * np.log10(energy / energy[0])
    t5, t35 = np.argmax(decay_db < -5) / SR, np.argmax(decay_db < -35) / SR
    assert abs(2 * (t35 - t5) - condition.rt60) < 0.05
    assert abs(10 * np.log10(1.0 / np.sum(rir[1:] ** 2)) - condition.drr_db) < 1e-6


@pytest.mark.parametrize("name,frame", [("mp3", 576), ("ogg", 2048)])
def test_codec_round_trip_keeps_the_length_and_changes_the_samples(name, frame):
    condition = R.CONDITIONS[name]
    reason = condition.unavailable()
    if reason:
        pytest.skip(reason)
    x = speech_like(level=0.3)
    y = R.degrade(x, SR, condition, "a.wav").astype(np.float64)
    assert abs(len(y) - len(x)) <= frame
    n = min(len(x), len(y))
    assert np.max(np.abs(y[:n] - x[:n])) > 1e-3  # lossy: samples change
    assert np.corrcoef(x[:n], y[:n])[0, 1] > 0.9  # ... but it is the same speech, aligned


def test_an_unwritable_codec_is_skipped_with_a_reason(monkeypatch):
    monkeypatch.setattr(R.sf, "available_formats", lambda: {"WAV": "WAV"})
    reason = R.CONDITIONS["mp3"].unavailable()
    assert "cannot write MP3" in reason and "libsndfile" in reason


def test_every_condition_is_deterministic_and_seeded_by_the_relative_path():
    x = speech_like()
    for condition in R.CONDITIONS.values():
        a = R.degrade(x, SR, condition, "Actor_20/a.wav")
        assert a.dtype == np.float32 and np.max(np.abs(a)) <= 1.0
        assert np.array_equal(a, R.degrade(x, SR, condition, "Actor_20/a.wav")), condition.name
    white = R.CONDITIONS["white-20db"]
    assert not np.array_equal(R.degrade(x, SR, white, "Actor_20/a.wav"), R.degrade(x, SR, white, "Actor_20/b.wav"))
    # the two SNRs of one colour share their draw: the added noise differs by exactly 10 dB
    n20 = R.degrade(x, SR, white, "a.wav").astype(np.float64) - x
    n10 = R.degrade(x, SR, R.CONDITIONS["white-10db"], "a.wav").astype(np.float64) - x
    assert np.corrcoef(n20, n10)[0, 1] > 0.999


def test_render_rate_is_the_encoders_rate():
    assert R.RENDER_SR == TARGET_SR


def test_unknown_condition_lists_the_valid_names():
    with pytest.raises(ValueError, match="valid: clean, telephone, gain-12db"):
        R.get_conditions(["telephone", "underwater"])
    assert [c.name for c in R.get_conditions(["mp3", "telephone", "mp3"])] == ["clean", "mp3", "telephone"]
    assert len(R.get_conditions("all")) == len(R.CONDITIONS) == 12


# ------------------------------------------------------------------------------------------ rendering
@pytest.fixture(scope="module")
def small_corpus(demo_manifest, tmp_path_factory):
    """Four test clips of the demo corpus copied to their own folder (so it can be moved)."""
    from emorank.data.manifest import Manifest
    part = demo_manifest.split_of("test").subset(np.arange(4))
    root = tmp_path_factory.mktemp("small") / "corpus"
    for rel, src in zip(part.ids, part.path):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, root / rel)
    return Manifest(path=list(part.ids), valence=part.valence, arousal=part.arousal, speaker=part.speaker,
                    split=part.split, emotion=part.emotion, root=str(root))


def _rendered_bytes(rendered):
    return {name: {rel: open(p, "rb").read() for rel, p in zip(r.manifest.ids, r.manifest.path)}
            for name, r in rendered.items() if name != "clean" and r.manifest is not None}


def test_render_is_byte_identical_and_independent_of_where_the_corpus_lives(small_corpus, tmp_path):
    conditions = R.get_conditions("all")
    first = R.render(small_corpus, conditions, tmp_path / "a", progress=False)
    again = R.render(small_corpus, conditions, tmp_path / "b", progress=False)
    moved_root = tmp_path / "elsewhere" / "corpus"
    shutil.copytree(small_corpus.root, moved_root)
    moved = type(small_corpus)(path=list(small_corpus.ids), valence=small_corpus.valence,
                               arousal=small_corpus.arousal, speaker=small_corpus.speaker, split=small_corpus.split,
                               root=str(moved_root))
    third = R.render(moved, conditions, tmp_path / "c", progress=False)
    ref = _rendered_bytes(first)
    assert len(ref) == sum(1 for c in conditions if c.name != "clean" and not c.unavailable())
    assert ref == _rendered_bytes(again) == _rendered_bytes(third)
    for name, r in first.items():  # ids (and so captions) are the clean ones; every clip is 16 kHz mono PCM_16
        if r.manifest is not None:
            assert r.manifest.ids == small_corpus.ids
            if name != "clean":
                info = sf.info(r.manifest.path[0])
                assert (info.samplerate, info.channels, info.subtype) == (SR, 1, "PCM_16")
    assert first["clean"].manifest is small_corpus


def test_render_reuses_finished_clips_and_a_changed_source_renders_anew(small_corpus, tmp_path):
    conditions = R.get_conditions(["telephone"])
    first = R.render(small_corpus, conditions, tmp_path, progress=False)["telephone"].manifest
    mtimes = [p.stat().st_mtime_ns for p in map(Path, first.path)]
    again = R.render(small_corpus, conditions, tmp_path, progress=False)["telephone"].manifest
    assert again.path == first.path
    assert [p.stat().st_mtime_ns for p in map(Path, again.path)] == mtimes
    # a changed source file changes the render folder's fingerprint
    changed = tmp_path / "changed"
    shutil.copytree(small_corpus.root, changed)
    wav, sr = sf.read(changed / small_corpus.ids[0])
    sf.write(changed / small_corpus.ids[0], 0.5 * wav, sr)
    other = type(small_corpus)(path=list(small_corpus.ids), valence=small_corpus.valence,
                               arousal=small_corpus.arousal, split=small_corpus.split, root=str(changed))
    third = R.render(other, conditions, tmp_path, progress=False)["telephone"].manifest
    assert third.root != first.root


def test_an_interrupted_render_leaves_no_broken_files_and_resumes(small_corpus, tmp_path, monkeypatch):
    conditions = R.get_conditions(["white-10db", "reverb"])
    real_degrade, calls = R.degrade, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real_degrade(*args, **kwargs)

    monkeypatch.setattr(R, "degrade", interrupted)
    with pytest.raises(KeyboardInterrupt):
        R.render(small_corpus, conditions, tmp_path / "run", progress=False)
    written = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert len(written) == 4 and not [p for p in written if p.name.endswith(".tmp")]
    for p in written:
        assert sf.info(p).frames > 0
    monkeypatch.setattr(R, "degrade", real_degrade)
    resumed = R.render(small_corpus, conditions, tmp_path / "run", progress=False)
    fresh = R.render(small_corpus, conditions, tmp_path / "fresh", progress=False)
    assert _rendered_bytes(resumed) == _rendered_bytes(fresh)


# ------------------------------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def suite(trained_checkpoint, demo_manifest, session_cache, tmp_path_factory):
    return R.robustness([trained_checkpoint], demo_manifest, "test", "all", tmp_path_factory.mktemp("shift"),
                        session_cache, SMALL, workers=1, progress=False)


def test_suite_reports_every_condition_and_its_clean_row_is_evaluate(suite, trained_checkpoint, demo_manifest,
                                                                     session_cache):
    json.dumps(suite)
    names = [c["name"] for c in suite["conditions"]]
    assert names == list(R.CONDITIONS)
    (ck,) = suite["checkpoints"]
    assert set(ck["results"]) == set(R.CONDITIONS)
    reference = evaluate(EmotionRankCLAP.from_checkpoint(trained_checkpoint), demo_manifest, "test", SMALL,
                         session_cache, progress=False)
    clean = ck["results"]["clean"]
    assert {k: clean[k] for k in R.METRICS} == R.metric_values(reference)
    assert clean["label_r@1"] == reference["retrieval"]["a2t_label_r@1"]
    assert clean["aoc"] == reference["ordinality"]["aoc"]["mean"]
    assert ck["reports"]["clean"]["alignment"] == reference["alignment"]
    assert clean["delta"] == {k: 0.0 for k in R.METRICS}
    for name in names[1:]:
        res = ck["results"][name]
        if "unavailable" in res:
            continue
        assert res["delta"] == {k: res[k] - clean[k] for k in R.METRICS}
        assert ck["reports"][name]["meta"]["clips"] == clean_clips(suite)
    # the conditions really reach the model: heavy noise moves the embedding-based scores
    noisy = ck["reports"]["white-10db"]
    assert noisy["alignment"] != reference["alignment"]


def clean_clips(suite):
    return next(c["clips"] for c in suite["conditions"] if c["name"] == "clean")


def test_table_has_a_row_per_condition_and_the_change_from_clean(suite):
    table = R.robustness_table(suite)
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| condition")]
    assert [r.split(" | ")[0].lstrip("| ") for r in rows] == list(R.CONDITIONS)
    label = suite["checkpoints"][0]["label"]
    assert f"| condition | {label} AOC | {label} VOC | {label} label R@1 |" in table
    res = suite["checkpoints"][0]["results"]
    clean_cells = rows[0].strip("| ").split(" | ")[1:]
    assert clean_cells == [f"{res['clean'][k]:.3f}" for k in R.METRICS]
    tel = rows[1].strip("| ").split(" | ")[1]
    assert tel == f"{res['telephone']['aoc']:.3f} ({res['telephone']['delta']['aoc']:+.3f})"
    assert "RT60 0.5 s" in table


def test_cli_writes_json_and_markdown(demo_corpus, trained_checkpoint, session_cache, tmp_path, capsys):
    code = main(["robustness", "--manifest", str(demo_corpus), "--checkpoints", str(trained_checkpoint),
                 "--conditions", "cut-2s,gain-12db", "--cache", str(session_cache.path), "--audio-dir",
                 str(tmp_path / "audio"), "--out", str(tmp_path / "out"), "--trials", "4", "--lists", "6",
                 "--workers", "1"])
    out = capsys.readouterr().out
    assert code == 0
    report = json.loads((tmp_path / "out" / "robustness.json").read_text())
    assert [c["name"] for c in report["conditions"]] == ["clean", "cut-2s", "gain-12db"]
    md = (tmp_path / "out" / "robustness.md").read_text()
    assert "| cut-2s |" in md and "Command: `python -m emorank" in md and "| gain-12db |" in out


@pytest.mark.parametrize("argv,message", [
    (["--conditions", "telephone,underwater"], "valid: clean, telephone"),
    (["--checkpoints", "/nonexistent/ckpt"], "checkpoint not found: /nonexistent/ckpt"),
    (["--split", "dev"], "no 'dev' clips"),
])
def test_cli_refuses_bad_arguments_clearly(argv, message, demo_corpus, trained_checkpoint, tmp_path, capsys):
    from emorank.data.manifest import read_csv_manifest
    manifest = read_csv_manifest(demo_corpus)
    no_dev = tmp_path / "no_dev.csv"
    manifest.split[:] = ["train" if s == "dev" else s for s in manifest.split]
    manifest.to_csv(no_dev)
    args = {"--manifest": str(no_dev), "--checkpoints": str(trained_checkpoint), "--out": str(tmp_path / "o"),
            "--cache": str(tmp_path / "c.sqlite"), "--audio-dir": str(tmp_path / "a")}
    args.update(dict(zip(argv[::2], argv[1::2])))
    code = main(["robustness", *[x for kv in args.items() for x in kv]])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error:") and message in err
    assert not (tmp_path / "a").exists()  # refused before anything was rendered
