"""Tests of the SYNTHETIC demo corpus (emorank.corpus) and its eSpeak NG driver (emorank.espeak).

The session fixture ``demo_corpus`` (conftest.py: n=120, seed=3, automatic workers) is shared with other test
files; this file adds two small builds (n=24) for determinism and a few cheap ones for the folder handling.
"""
import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from emorank.data.synthetic_plan import (CorpusError, CorpusExistsError, DemoCorpusConfig, MANIFEST_COLUMNS, NRC_VA,
                                         assign_speaker_splits, category_prototypes, plan_demo_corpus)
from emorank.data.synthetic import (apply_harshness, apply_spectral_tilt, apply_tremolo, build_demo_corpus,
                                    moving_average, resample)

SEED = 3  # the seed of the conftest demo_corpus


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def folder_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small_pair(tmp_path_factory):
    """The same small corpus built twice, with one and with two workers."""
    root = tmp_path_factory.mktemp("determinism")
    one = build_demo_corpus(root / "one", n=24, seed=SEED, workers=1, progress=False)
    two = build_demo_corpus(root / "two", n=24, seed=SEED, workers=2, progress=False)
    return one.parent, two.parent


# ------------------------------------------------------------------------------------------------ determinism

def test_same_seed_gives_byte_identical_corpus_whatever_the_workers(small_pair):
    one, two = (folder_bytes(root) for root in small_pair)
    assert sorted(one) == sorted(two)
    assert len([name for name in one if name.startswith("audio/")]) == 24
    assert [name for name in one if one[name] != two[name]] == []


def test_small_corpus_is_a_prefix_of_a_larger_one_with_the_same_seed(small_pair, demo_corpus):
    small_root, big_root = small_pair[0], demo_corpus.parent
    small, big = read_rows(small_root / "manifest.csv"), read_rows(big_root / "manifest.csv")
    assert small == big[:len(small)]
    for row in small:
        assert (small_root / row["path"]).read_bytes() == (big_root / row["path"]).read_bytes()


def test_plans_depend_on_the_seed():
    a, b = plan_demo_corpus(30, seed=0), plan_demo_corpus(30, seed=1)
    assert [p.valence for p in a] != [p.valence for p in b]
    assert plan_demo_corpus(30, seed=0) == a


# ---------------------------------------------------------------------------------------------------- format

def test_manifest_has_the_generic_csv_format(demo_corpus):
    root = demo_corpus.parent
    with open(demo_corpus, newline="", encoding="utf-8") as f:
        header = f.readline().rstrip("\n")
    assert header == ",".join(MANIFEST_COLUMNS)
    rows = read_rows(demo_corpus)
    assert len(rows) == 120
    assert len({r["path"] for r in rows}) == len(rows)
    for r in rows:
        assert not Path(r["path"]).is_absolute() and (root / r["path"]).is_file()
        assert r["caption"] == "" and r["dominance"] == ""
        assert r["emotion"] in NRC_VA and r["gender"] in {"male", "female"} and r["split"] in {"train", "dev", "test"}
        assert 1.0 <= float(r["valence"]) <= 7.0 and 1.0 <= float(r["arousal"]) <= 7.0


def test_corpus_json_says_synthetic_and_records_parameters(demo_corpus):
    info = json.loads((demo_corpus.parent / "corpus.json").read_text())
    assert info["synthetic"] is True and "SYNTHETIC" in info["notice"]
    assert (info["seed"], info["n"], info["sample_rate"]) == (SEED, 120, 16000)
    assert info["version"] and info["config"]["rater_sd"] == DemoCorpusConfig().rater_sd
    rows = read_rows(demo_corpus)
    assert info["clips_per_split"] == dict(Counter(r["split"] for r in rows))


def test_manifest_is_readable_by_the_datasets_loader(demo_corpus):
    from emorank.data.manifest import read_csv_manifest

    manifest = read_csv_manifest(demo_corpus)
    assert len(manifest) == 120 and np.isnan(manifest.dominance).all()
    assert manifest.va().shape == (120, 2)


# ---------------------------------------------------------------------------------------------- labels, splits

def test_speakers_are_disjoint_between_splits_and_fractions_are_kept(demo_corpus):
    rows = read_rows(demo_corpus)
    speakers = {s: {r["speaker"] for r in rows if r["split"] == s} for s in ("train", "dev", "test")}
    assert all(speakers.values())
    assert not (speakers["train"] & speakers["dev"] or speakers["train"] & speakers["test"]
                or speakers["dev"] & speakers["test"])
    counts = Counter(r["split"] for r in rows)
    for split, fraction in zip(("train", "dev", "test"), DemoCorpusConfig().split_fractions):
        assert abs(counts[split] - fraction * len(rows)) <= 1
    genders = {r["speaker"]: r["gender"] for r in rows}
    assert all({genders[s] for s in speakers[split]} == {"male", "female"} for split in ("dev", "test"))


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_speaker_split_assignment_is_disjoint_for_any_seed(seed):
    split_of = assign_speaker_splits(DemoCorpusConfig().speakers, seed)
    plans = plan_demo_corpus(60, seed=seed)
    assert all(split_of[p.speaker] == p.split for p in plans)
    assert Counter(split_of.values()) == {"train": 8, "dev": 2, "test": 2}


def test_labels_are_noisy_targets_near_the_category_prototype():
    config = DemoCorpusConfig()
    plans = plan_demo_corpus(400, seed=11, config=config)
    target = np.array([[p.target_valence, p.target_arousal] for p in plans])
    label = np.array([[p.valence, p.arousal] for p in plans])
    assert target.min() >= 1 and target.max() <= 7 and label.min() >= 1 and label.max() <= 7
    noise = (label - target)[(label > 1) & (label < 7)]            # unclipped rater noise
    assert abs(noise.std() - config.rater_sd) < 0.1 and abs(noise.mean()) < 0.1
    prototypes, neutral = category_prototypes(), np.array(category_prototypes()["neutral"])
    for p, t in zip(plans, target):   # the pre-spread point lies between neutral and the prototype
        point = neutral + p.intensity * (np.array(prototypes[p.emotion]) - neutral)
        assert np.linalg.norm(t - point) < 5 * config.target_spread


def test_sentences_are_drawn_independently_of_the_emotion():
    plans = plan_demo_corpus(900, seed=5)
    by_emotion = Counter((p.emotion, p.sentence) for p in plans)
    assert len({p.sentence for p in plans}) == len(DemoCorpusConfig().sentences)
    for emotion in NRC_VA:   # every category uses many different sentences, none dominates
        counts = [c for (e, _), c in by_emotion.items() if e == emotion]
        assert len(counts) >= 25 and max(counts) <= 0.15 * sum(counts)


# ------------------------------------------------------------------------------------------------------ audio

def test_audio_is_16k_mono_pcm16_non_silent_and_unclipped(demo_corpus):
    root = demo_corpus.parent
    for r in read_rows(demo_corpus):
        info = sf.info(root / r["path"])
        assert (info.samplerate, info.channels, info.subtype, info.format) == (16000, 1, "PCM_16", "WAV")
        x, _ = sf.read(root / r["path"], dtype="int16")
        assert 0.8 < x.size / 16000 < 8.0
        assert np.sqrt(np.mean(x.astype(float) ** 2)) > 100        # about -50 dBFS: clearly not silence
        assert np.abs(x).max() < 32767                             # never at full scale


def test_arousal_labels_show_in_the_audio(demo_corpus):
    """Behaviour: loudness and speaking rate follow the arousal labels (and loudness follows arousal more than
    valence), across speakers."""
    root = demo_corpus.parent
    rows, render = read_rows(demo_corpus), {r["path"]: r for r in read_rows(demo_corpus.parent / "render.csv")}
    arousal = np.array([float(r["arousal"]) for r in rows])
    level_db = np.array([20 * np.log10(np.sqrt(np.mean(sf.read(root / r["path"])[0] ** 2))) for r in rows])
    seconds_per_char = np.array([float(render[r["path"]]["duration_s"]) / len(render[r["path"]]["sentence"])
                                 for r in rows])
    valence = np.array([float(r["valence"]) for r in rows])
    assert np.corrcoef(level_db, arousal)[0, 1] > max(0.3, abs(np.corrcoef(level_db, valence)[0, 1]))
    assert np.corrcoef(seconds_per_char, arousal)[0, 1] < -0.3


# ---------------------------------------------------------------------------------------------- folder safety

def test_refuses_to_overwrite_a_non_empty_folder(tmp_path):
    out = tmp_path / "corpus"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(CorpusExistsError, match="not empty"):
        build_demo_corpus(out, n=4, progress=False)
    with pytest.raises(CorpusExistsError, match="does not hold an emorank demo corpus"):
        build_demo_corpus(out, n=4, progress=False, overwrite=True)
    assert (out / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus"]   # no staging folder left behind


def test_overwrite_replaces_an_earlier_corpus_and_reports_progress(small_pair, tmp_path):
    out = tmp_path / "corpus"
    out.mkdir()
    for name, data in folder_bytes(small_pair[0]).items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(data)
    calls = []
    manifest = build_demo_corpus(out, n=3, seed=1, workers=1, overwrite=True,
                                 progress=lambda done, total: calls.append((done, total)))
    assert manifest == out.resolve() / "manifest.csv"
    assert len(read_rows(manifest)) == 3 and len(list((out / "audio").iterdir())) == 3
    assert calls[-1] == (3, 3) and all(total == 3 for _, total in calls)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus"]


def test_an_interrupted_build_leaves_nothing_that_looks_complete(tmp_path):
    def stop(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_demo_corpus(tmp_path / "corpus", n=20, workers=1, progress=stop)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kwargs, message", [({"n": 0}, "n must be"), ({"seed": -1}, "seed must be"),
                                             ({"workers": 0}, "workers must be"), ({"n": 2.5}, "n must be")])
def test_bad_arguments_raise_clear_errors(tmp_path, kwargs, message):
    with pytest.raises(CorpusError, match=message):
        build_demo_corpus(tmp_path / "corpus", progress=False, **kwargs)


def test_unknown_category_lists_the_valid_names():
    with pytest.raises(CorpusError, match="valid: .*boredom"):
        plan_demo_corpus(4, config=DemoCorpusConfig(categories=("joyful",)))


# ------------------------------------------------------------------------------------------- post-processing

def test_spectral_tilt_moves_energy_between_low_and_high_frequencies():
    t = np.arange(16000) / 16000
    x = np.sin(2 * np.pi * 200 * t) + np.sin(2 * np.pi * 5000 * t)

    def high_ratio(y):
        spectrum = np.abs(np.fft.rfft(y))
        return spectrum[5000] / spectrum[200]

    assert high_ratio(apply_spectral_tilt(x, 0.6)) > high_ratio(x) > high_ratio(apply_spectral_tilt(x, -0.6))
    np.testing.assert_array_equal(apply_spectral_tilt(x, 0.0), x)


def test_neutral_settings_of_effects_are_identities():
    x = np.random.default_rng(0).uniform(-0.5, 0.5, 1000)
    np.testing.assert_array_equal(apply_harshness(x, 0.0), x)
    np.testing.assert_allclose(apply_tremolo(x, 16000, 0.0, 6.0, 1.0), x)
    assert np.abs(apply_harshness(x, 3.0)).max() == pytest.approx(np.abs(x).max())


def test_moving_average_and_resample_match_naive_versions():
    x = np.random.default_rng(1).normal(size=2000)
    for width in (1, 6, 7):
        naive = [x[max(0, i - width // 2):i - width // 2 + width].mean() for i in range(x.size)]
        np.testing.assert_allclose(moving_average(x, width), naive, atol=1e-12)
    np.testing.assert_allclose(resample(x, 22050, 16000), resample_poly(x, 320, 441), atol=1e-12)
