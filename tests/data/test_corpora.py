"""Tests for emorank.datasets: Manifest, the generic CSV, corpus loaders on tiny fake corpora, splits."""
from __future__ import annotations

import csv
import os
import shutil
import warnings

import numpy as np
import pytest
import soundfile as sf

from emorank.data.manifest import CATEGORIES, Manifest, ManifestError, read_csv_manifest
from emorank.data.proxies import CATEGORY_VA, INTENSITY_FACTORS, NEUTRAL_VA, category_va, soft_category_va
from emorank.data.corpora import CORPORA, load_corpus
from emorank.data.acted import load_crema_d, load_emodb, load_ravdess, load_tess
from emorank.data.rated import load_iemocap, load_msp_podcast
from emorank.data.splits import speaker_disjoint_split, split_by_speakers


def make_wav(path, seed=0, seconds=0.1, sr=16000):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    x = 0.3 * np.sin(2 * np.pi * (150 + 50 * seed) * t) + 0.01 * rng.standard_normal(t.size)
    sf.write(str(path), x.astype(np.float32), sr)
    return path


def write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def small_manifest(tmp_path, n=6, **extra):
    paths = [str(make_wav(tmp_path / "audio" / f"u{i}.wav", seed=i)) for i in range(n)]
    fields = dict(valence=np.linspace(1, 7, n), arousal=np.linspace(7, 1, n))
    fields.update(extra)
    return Manifest(path=paths, **fields)


# ---------------------------------------------------------------------------------------------------- Manifest


def test_manifest_defaults_ids_and_va(tmp_path):
    m = small_manifest(tmp_path)
    assert len(m) == 6 and m.root == str(tmp_path / "audio")
    assert m.ids == [f"u{i}.wav" for i in range(6)]
    assert m.va().shape == (6, 2)
    np.testing.assert_array_equal(m.va()[:, 0], m.valence)
    assert np.isnan(m.dominance).all() and m.emotion == [""] * 6 and m.split == [""] * 6
    m.validate()


def test_relative_paths_resolve_against_root(tmp_path):
    make_wav(tmp_path / "x" / "a.wav")
    m = Manifest(path=["x/a.wav"], valence=[4.0], arousal=[4.0], root=str(tmp_path))
    assert m.path == [str(tmp_path / "x" / "a.wav")] and m.ids == ["x/a.wav"]


def test_path_resolution_matches_abspath_join(tmp_path):
    root = str(tmp_path / "r")
    raw = ["/a.wav", "a.wav", "./b/../c.wav", "x/./y.wav", "x//z.wav", "../q.wav", "/s/../t/u.wav", "d/e/f.wav"]
    m = Manifest(path=raw, valence=np.full(8, 4.0), arousal=np.full(8, 4.0), root=root)
    assert m.path == [os.path.abspath(os.path.join(root, p)) for p in raw]
    assert m.ids == [os.path.relpath(p, root) for p in m.path]


def test_column_length_mismatch(tmp_path):
    with pytest.raises(ManifestError, match="column 'arousal' has 2 rows but 'path' has 3"):
        Manifest(path=["a", "b", "c"], valence=[1, 2, 3], arousal=[1, 2], root=str(tmp_path))
    with pytest.raises(ManifestError, match="column 'speaker' has 1 rows"):
        Manifest(path=["a", "b"], valence=[1, 2], arousal=[1, 2], speaker=["s"], root=str(tmp_path))


def test_subset_keeps_ids_and_fields(tmp_path):
    m = small_manifest(tmp_path, speaker=list("aabbcc"), emotion=["happy"] * 6)
    for index in ([4, 1], np.array([False, True, False, False, True, False])):
        s = m.subset(index)
        rows = [1, 4] if isinstance(index, np.ndarray) else [4, 1]
        assert s.ids == [m.ids[i] for i in rows] and s.speaker == [m.speaker[i] for i in rows]
        np.testing.assert_array_equal(s.valence, m.valence[rows])
        assert s.root == m.root
    assert len(m.subset(slice(0, 0))) == 0


def test_split_aliases_and_split_of(tmp_path):
    m = small_manifest(tmp_path, split=["Train", "Development", "validation", "Test1", "", "TEST"])
    assert m.split == ["train", "dev", "dev", "test", "", "test"]
    assert m.split_of("Development").ids == ["u1.wav", "u2.wav"]
    assert len(m.split_of("test")) == 2
    assert m.split_counts() == {"train": 1, "dev": 2, "test": 2, "": 1}
    with pytest.raises(ManifestError, match="unknown split 'holdout'; valid: train, dev, test"):
        m.split_of("holdout")


def test_emotion_ids(tmp_path):
    m = small_manifest(tmp_path, emotion=["Anger", "neutral", "", "growl", "happiness", "neu"])
    assert m.emotion == ["angry", "neutral", "", "growl", "happy", "neutral"]
    ids, cats = m.emotion_ids()
    assert cats == ["neutral", "happy", "angry", "growl"]  # canonical order first, then others sorted
    assert ids.dtype == np.int64
    assert [cats[i] if i >= 0 else "" for i in ids] == m.emotion
    ids, cats = m.emotion_ids(["happy", "angry"])
    assert cats == ["happy", "angry"] and ids.tolist() == [1, -1, -1, -1, 0, -1]


def test_csv_round_trip_is_exact(tmp_path):
    rng = np.random.default_rng(0)
    m = small_manifest(tmp_path, dominance=[1.5, np.nan, 2.0, 3.0, 4.0, 1 + 1 / 3],
                       emotion=["happy", "", "sad", "fear", "calm", "angry"], speaker=list("abcdef"),
                       gender=["female", "male", "", "female", "male", ""], split=["train", "dev", "test", "", "", ""],
                       caption=['she says "hi", loudly', "line\nbreak", "", "x", "y", "z"])
    m = Manifest(path=m.path, valence=1 + 6 * rng.random(6), arousal=1 + 6 * rng.random(6),
                 dominance=m.dominance, emotion=m.emotion, speaker=m.speaker, gender=m.gender, split=m.split,
                 caption=m.caption, root=m.root)
    out = tmp_path / "audio" / "manifest.csv"
    m.to_csv(out)
    assert next(csv.reader(open(out)))[0] == "path" and "u0.wav" in out.read_text()  # relative paths
    back = Manifest.from_csv(out)
    assert back.ids == m.ids and back.path == m.path
    for name in ("valence", "arousal", "dominance"):
        np.testing.assert_array_equal(getattr(back, name), getattr(m, name))
    for name in ("emotion", "speaker", "gender", "split", "caption"):
        assert getattr(back, name) == getattr(m, name)
    # The folder can move: paths are relative to the CSV.
    shutil.move(str(tmp_path / "audio"), str(tmp_path / "moved"))
    moved = read_csv_manifest(tmp_path / "moved" / "manifest.csv")
    assert moved.ids == m.ids and moved.root == str(tmp_path / "moved")


def test_to_csv_outside_folder_writes_absolute_paths(tmp_path):
    m = small_manifest(tmp_path, n=2)
    out = tmp_path / "elsewhere" / "m.csv"
    m.to_csv(out)
    assert read_csv_manifest(out).path == m.path
    assert [p.name for p in out.parent.iterdir()] == ["m.csv"]


# ---------------------------------------------------------------------------------------------------- CSV errors


def test_csv_only_required_columns_and_relative_paths(tmp_path):
    make_wav(tmp_path / "clips" / "a.wav")
    src = write_csv(tmp_path / "m.csv", ["Path", " Valence", "AROUSAL", "notes"], [["clips/a.wav", "2.5", "6", "x"]])
    m = read_csv_manifest(src)
    assert m.path == [str(tmp_path / "clips" / "a.wav")] and m.valence.tolist() == [2.5]
    assert m.split == [""] and np.isnan(m.dominance[0])


def test_csv_unknown_speaker_becomes_empty(tmp_path):
    make_wav(tmp_path / "a.wav")
    src = write_csv(tmp_path / "m.csv", ["path", "valence", "arousal", "speaker"], [["a.wav", "2", "3", "Unknown"]])
    assert read_csv_manifest(src).speaker == [""]


def test_csv_missing_required_columns(tmp_path):
    src = write_csv(tmp_path / "m.csv", ["file", "valence", "emotion"], [["a.wav", "3", "sad"]])
    with pytest.raises(ManifestError, match=r"m.csv: missing required column\(s\) path, arousal; "
                                            r"columns found: file, valence, emotion"):
        read_csv_manifest(src)


def test_csv_file_and_header_errors(tmp_path):
    with pytest.raises(ManifestError, match="manifest CSV not found"):
        read_csv_manifest(tmp_path / "none.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ManifestError, match="empty file"):
        read_csv_manifest(tmp_path / "empty.csv")


def test_csv_non_numeric_label(tmp_path):
    src = write_csv(tmp_path / "m.csv", ["path", "valence", "arousal"], [["a.wav", "3", "4"], ["b.wav", "high", "4"]])
    with pytest.raises(ManifestError, match=r"m.csv line 3: valence 'high' is not a number"):
        read_csv_manifest(src)


def test_csv_labels_out_of_range_or_nan(tmp_path):
    for i in range(4):
        make_wav(tmp_path / f"{i}.wav", seed=i)
    rows = [["0.wav", "0.5", "4", ""], ["1.wav", "", "4", ""], ["2.wav", "4", "4", "9"], ["3.wav", "7", "1", "1"]]
    src = write_csv(tmp_path / "m.csv", ["path", "valence", "arousal", "dominance"], rows)
    with pytest.raises(ManifestError) as exc:
        read_csv_manifest(src)
    msg = str(exc.value)
    assert "valence: 2 value(s) outside 1..7 or missing/NaN" in msg
    assert "row 0 (0.wav) = 0.5" in msg and "row 1 (1.wav) = nan" in msg
    assert "dominance: 1 value(s) outside 1..7; first: row 2 (2.wav) = 9.0" in msg
    assert "arousal" not in msg


def test_csv_missing_files_listed_with_count(tmp_path):
    make_wav(tmp_path / "ok.wav")
    rows = [["ok.wav", "3", "3"]] + [[f"gone{i}.wav", "3", "3"] for i in range(7)]
    src = write_csv(tmp_path / "m.csv", ["path", "valence", "arousal"], rows)
    with pytest.raises(ManifestError) as exc:
        read_csv_manifest(src)
    msg = str(exc.value)
    assert "7 audio file(s) missing (first 5 shown)" in msg
    assert str(tmp_path / "gone0.wav") in msg and str(tmp_path / "gone4.wav") in msg
    assert "gone5.wav" not in msg
    assert len(read_csv_manifest(src, check_files=False)) == 8


def test_csv_duplicates_and_unknown_splits(tmp_path):
    make_wav(tmp_path / "a.wav")
    make_wav(tmp_path / "b.wav")
    rows = [["a.wav", "3", "3", "train"], ["./a.wav", "3", "3", "train"], ["b.wav", "3", "3", "holdout"]]
    src = write_csv(tmp_path / "m.csv", ["path", "valence", "arousal", "split"], rows)
    with pytest.raises(ManifestError) as exc:
        read_csv_manifest(src)
    msg = str(exc.value)
    assert f"1 duplicate path(s), first: {tmp_path / 'a.wav'}" in msg
    assert "unknown split name(s) 'holdout' in 1 row(s)" in msg and "valid: train, dev, test or empty" in msg


def test_csv_empty_path(tmp_path):
    src = write_csv(tmp_path / "m.csv", ["path", "valence", "arousal"], [["", "3", "3"]])
    with pytest.raises(ManifestError, match=r"1 row\(s\) have an empty path"):
        read_csv_manifest(src)


# ---------------------------------------------------------------------------------------------------- categories


def test_category_table_is_read_only_and_follows_nrc_norms():
    nrc = {"calm": (.875, .100, .282), "happy": (.960, .732, .850),
           "sad": (.052, .288, .164), "angry": (.167, .865, .657), "fear": (.073, .840, .293),
           "disgust": (.052, .775, .317), "surprise": (.875, .875, .562), "boredom": (.167, .139, .255)}
    for name, vad in nrc.items():
        np.testing.assert_allclose(CATEGORY_VA[name], [1 + 6 * x for x in vad])
    assert set(CATEGORY_VA) == set(CATEGORIES) - {"other"}
    assert all(1 <= x <= 7 for vad in CATEGORY_VA.values() for x in vad)
    with pytest.raises(TypeError):
        CATEGORY_VA["neutral"] = (4.0, 4.0, 4.0)
    va = {k: np.array(v[:2]) for k, v in CATEGORY_VA.items()}
    nearest = min((k for k in va if k != "contempt"), key=lambda k: np.linalg.norm(va[k] - va["contempt"]))
    assert nearest == "disgust"


def test_neutral_sits_at_the_centre_above_the_calm_categories():
    # Moved from the NRC word "neutral" (arousal .184 -> 2.10, below sadness) to the scale's centre: a neutral
    # utterance is ordinary speech, so calm, boredom and sadness must lie below it in arousal, the aroused
    # categories above it, and the positive/negative ones either side of it in valence.
    assert CATEGORY_VA["neutral"] == NEUTRAL_VA == (4.0, 4.0, 4.0)
    va = {k: np.array(v[:2]) for k, v in CATEGORY_VA.items()}
    assert all(va[k][1] < 4.0 for k in ("calm", "boredom", "sad"))
    assert all(va[k][1] > 4.0 for k in ("angry", "fear", "disgust", "happy", "surprise"))
    assert all(va[k][0] > 4.0 for k in ("happy", "calm", "surprise"))
    assert all(va[k][0] < 4.0 for k in ("sad", "angry", "fear", "disgust", "boredom"))
    own = (3.814, 2.104, 3.142)  # the NRC word's own point, for those who prefer it
    np.testing.assert_allclose(category_va("neutral", neutral=own), own)
    np.testing.assert_allclose(category_va("sad", 0.5, neutral=own),
                               np.array(own) + 0.5 * (np.array(CATEGORY_VA["sad"]) - own))
    with pytest.raises(ManifestError, match="neutral point must be"):
        category_va("sad", neutral=(4.0, 9.0, 4.0))


def test_category_va_intensity_moves_along_the_line_from_neutral():
    neutral, angry = np.array(CATEGORY_VA["neutral"]), np.array(CATEGORY_VA["angry"])
    np.testing.assert_allclose(category_va("angry", 1.0), angry)
    np.testing.assert_allclose(category_va("anger", 0.0), neutral)
    np.testing.assert_allclose(category_va("angry", 0.75), neutral + 0.75 * (angry - neutral))
    with pytest.raises(ManifestError, match="no valence-arousal norm for emotion 'other'"):
        category_va("other")


def test_soft_point_is_the_vote_weighted_mean_of_category_points():
    votes = {"angry": 3, "neutral": 6, "sad": 1}
    hand = (3 * np.array(CATEGORY_VA["angry"]) + 6 * np.array(NEUTRAL_VA) + np.array(CATEGORY_VA["sad"])) / 10
    np.testing.assert_allclose(soft_category_va(votes), hand)
    probs = {"anger": 0.3, "neutrality": 0.6, "sadness": 0.1, "other": 0.5}  # aliases; no norm for "other"
    np.testing.assert_allclose(soft_category_va(probs), hand)
    for emotion in ("happy", "fear", "neutral"):
        np.testing.assert_allclose(soft_category_va({emotion: 7, "sad": 0}), CATEGORY_VA[emotion])
    # per-category intensity: each category point moved along its own line from neutral before averaging
    mixed = soft_category_va({"angry": 1, "sad": 1}, {"angry": 0.5, "sad": 1.0})
    np.testing.assert_allclose(mixed, (np.array(category_va("angry", 0.5)) + CATEGORY_VA["sad"]) / 2)
    with pytest.raises(ManifestError, match="no votes"):
        soft_category_va({"other": 3, "angry": 0})
    with pytest.raises(ManifestError, match="non-negative"):
        soft_category_va({"angry": -1})


def test_soft_point_intensity_moves_along_the_line_from_neutral():
    votes = {"happy": 2, "surprise": 1, "neutral": 1}
    full, neutral = np.array(soft_category_va(votes)), np.array(NEUTRAL_VA)
    for f in (0.0, 0.25, 0.5, 1.0):
        np.testing.assert_allclose(soft_category_va(votes, f), neutral + f * (full - neutral))


# ---------------------------------------------------------------------------------------------------- MSP-Podcast


MSP_HEADER = ["FileName", "EmoClass", "EmoAct", "EmoVal", "EmoDom", "SpkrID", "Gender", "Split_Set"]


def fake_msp(root):
    rows = [["MSP-PODCAST_0001_0001.wav", "H", "5.2", "6.4", "4.0", "127", "Female", "Train"],
            ["MSP-PODCAST_0001_0002.wav", "A", "6.0", "2.0", "5.5", "127", "Female", "Development"],
            ["MSP-PODCAST_0002_0001.wav", "N", "3.0", "4.2", "3.8", "Unknown", "Unknown", "Test1"],
            ["MSP-PODCAST_0002_0002.wav", "O", "3.0", "4.0", "3.0", "55", "Male", "Train"],
            ["MSP-PODCAST_0003_0001.wav", "X", "3.0", "4.0", "3.0", "55", "Male", "Train"],
            ["MSP-PODCAST_0004_0001.wav", "C", "4.4", "2.6", "4.8", "88", "Male", "Test2"]]
    write_csv((root / "Labels").mkdir(parents=True) or root / "Labels" / "labels_consensus.csv", MSP_HEADER, rows)
    for i, r in enumerate(rows):
        make_wav(root / "Audios" / r[0], seed=i)
    return rows


def test_msp_podcast(tmp_path):
    fake_msp(tmp_path)
    m = load_msp_podcast(tmp_path)
    assert m.ids == ["Audios/MSP-PODCAST_0001_0001.wav", "Audios/MSP-PODCAST_0001_0002.wav",
                     "Audios/MSP-PODCAST_0002_0001.wav"]
    assert m.valence.tolist() == [6.4, 2.0, 4.2] and m.arousal.tolist() == [5.2, 6.0, 3.0]  # Act, Val order
    assert m.dominance.tolist() == [4.0, 5.5, 3.8]
    assert m.emotion == ["happy", "angry", "neutral"] and m.split == ["train", "dev", "test"]
    assert m.speaker == ["127", "127", ""] and m.gender == ["female", "female", ""]
    every_test = load_msp_podcast(tmp_path, test_set=None)
    assert every_test.emotion[-1] == "contempt" and every_test.split[-1] == "test"
    assert load_corpus("MSP_Podcast", tmp_path).ids == m.ids


def test_msp_podcast_errors(tmp_path):
    with pytest.raises(ManifestError, match="label file not found: .*labels_consensus.csv"):
        load_msp_podcast(tmp_path)
    bad = write_csv(tmp_path / "l.csv", ["FileName", "EmoClass", "EmoVal"], [["a.wav", "H", "3"]])
    with pytest.raises(ManifestError, match="missing required column.*EmoAct.*columns found: FileName, EmoClass"):
        load_msp_podcast(tmp_path, labels_csv=bad)
    fake_msp(tmp_path)
    (tmp_path / "Audios" / "MSP-PODCAST_0001_0002.wav").unlink()
    with pytest.raises(ManifestError, match=r"1 audio file\(s\) missing: .*MSP-PODCAST_0001_0002.wav"):
        load_msp_podcast(tmp_path)


# ---------------------------------------------------------------------------------------------------- IEMOCAP


IEMOCAP_TXT = """% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]

[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]
C-E2:\tNeutral;\t()
A-F1:\tNeutral;\t()

[10.0100 - 11.3925]\tSes01F_impro01_M001\tfru\t[1.0000, 5.0000, 3.5000]

[14.8872 - 18.0175]\tSes01F_impro01_F001\txxx\t[4.0000, 3.0000, 1.5000]
"""


def fake_iemocap(root):
    evals = root / "Session1" / "dialog" / "EmoEvaluation"
    (evals / "Categorical").mkdir(parents=True)
    (evals / "Ses01F_impro01.txt").write_text(IEMOCAP_TXT)
    (evals / "Categorical" / "Ses01F_impro01_e2_cat.txt").write_text("Ses01F_impro01_F000 :Neutral state; ()\n")
    for i, turn in enumerate(["Ses01F_impro01_F000", "Ses01F_impro01_M001", "Ses01F_impro01_F001"]):
        make_wav(root / "Session1" / "sentences" / "wav" / "Ses01F_impro01" / f"{turn}.wav", seed=i)


def test_iemocap(tmp_path):
    fake_iemocap(tmp_path)
    m = load_iemocap(tmp_path)
    assert m.ids == [f"Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_{t}.wav" for t in ("F000", "M001", "F001")]
    raw = np.array([[2.5, 2.5, 2.5], [1.0, 5.0, 3.5], [4.0, 3.0, 1.5]])
    scaled = 1 + 6 * (raw - 1) / 4  # 1..5 -> 1..7
    np.testing.assert_allclose(np.stack([m.valence, m.arousal, m.dominance], 1), scaled)
    assert m.emotion == ["neutral", "frustration", ""]
    assert m.speaker == ["Ses01F", "Ses01M", "Ses01F"] and m.gender == ["female", "male", "female"]
    assert load_corpus("IEMOCAP", tmp_path).ids == m.ids


def test_iemocap_errors(tmp_path):
    with pytest.raises(ManifestError, match="no IEMOCAP label files under .*Session\\*/dialog/EmoEvaluation"):
        load_iemocap(tmp_path)
    fake_iemocap(tmp_path)
    txt = tmp_path / "Session1" / "dialog" / "EmoEvaluation" / "Ses01F_impro01.txt"
    txt.write_text(IEMOCAP_TXT.replace("[1.0000, 5.0000, 3.5000]", "[1.0000, 5.5000, 3.5000]"))
    with pytest.warns(UserWarning, match="clipped 1 V/A/D value"):
        assert load_iemocap(tmp_path).arousal[1] == 7.0


# ---------------------------------------------------------------------------------------------------- categorical


def test_ravdess(tmp_path):
    names = {"Actor_01/03-01-05-02-01-01-01.wav": ("angry", "strong", "male"),
             "Actor_01/03-01-05-01-02-01-01.wav": ("angry", "normal", "male"),
             "Actor_02/03-01-01-01-01-01-02.wav": ("neutral", "normal", "female"),
             "Actor_02/03-01-02-02-01-02-02.wav": ("calm", "strong", "female")}
    for i, name in enumerate(names):
        make_wav(tmp_path / name, seed=i)
    make_wav(tmp_path / "Actor_02/03-02-03-01-01-01-02.wav")  # song: skipped by default
    make_wav(tmp_path / "Actor_02/readme_take.wav")  # not a corpus name: ignored
    m = load_ravdess(tmp_path)
    assert m.ids == sorted(names)
    for row, rel in enumerate(m.ids):
        emotion, level, gender = names[rel]
        assert (m.emotion[row], m.gender[row]) == (emotion, gender)
        np.testing.assert_allclose([m.valence[row], m.arousal[row], m.dominance[row]],
                                   category_va(emotion, INTENSITY_FACTORS[level]))
    assert m.speaker == ["ravdess-01", "ravdess-01", "ravdess-02", "ravdess-02"]
    strong, normal = m.va()[0], m.va()[1]  # "02" sorts after "01": row 0 normal, row 1 strong
    neutral = np.array(CATEGORY_VA["neutral"][:2])
    assert np.linalg.norm(normal - neutral) > np.linalg.norm(strong - neutral)
    assert len(load_ravdess(tmp_path, include_song=True)) == 5
    custom = load_ravdess(tmp_path, intensity_factors={"normal": 1.0})
    np.testing.assert_allclose(custom.va()[0], CATEGORY_VA["angry"][:2])


def test_corpus_folders_given_as_relative_paths_resolve_once(tmp_path, monkeypatch):
    """A root relative to the working directory must not be joined onto itself (root/root/Actor_01/...)."""
    make_wav(tmp_path / "corpus/Actor_01/03-01-05-02-01-01-01.wav")
    monkeypatch.chdir(tmp_path)
    m = load_ravdess("corpus")
    assert m.path == [str(tmp_path / "corpus/Actor_01/03-01-05-02-01-01-01.wav")]
    assert m.ids == ["Actor_01/03-01-05-02-01-01-01.wav"]
    assert all(os.path.isfile(p) for p in m.path)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert load_ravdess("~/corpus").path == m.path  # a leading ~ is the user's home, as in a shell


def test_ravdess_fixed_speaker_split(tmp_path):
    for actor in (1, 16, 17, 19, 20, 24):
        make_wav(tmp_path / f"Actor_{actor:02d}/03-01-05-02-01-01-{actor:02d}.wav", seed=actor)
    m = load_ravdess(tmp_path)
    assert dict(zip(m.speaker, m.split)) == {"ravdess-01": "train", "ravdess-16": "train", "ravdess-17": "dev",
                                             "ravdess-19": "dev", "ravdess-20": "test", "ravdess-24": "test"}
    assert load_ravdess(tmp_path, split=None).split == [""] * 6
    own = load_ravdess(tmp_path, split={"train": [1, 16, 17], "test": [24]})
    assert own.split == ["train", "train", "train", "", "", "test"]


def test_split_by_speakers(tmp_path):
    m = speakers_manifest(tmp_path, n_speakers=4, per=2, split=["", "", "dev", "dev", "", "", "", ""])
    out = split_by_speakers(m, {"Train": ["s0", "s1"], "validation": ["s2"]})
    assert out.split == ["train", "train", "train", "train", "dev", "dev", "", ""]
    assert m.split[:4] == ["", "", "dev", "dev"]  # a new manifest; the input is unchanged
    kept = split_by_speakers(m, {"train": ["s0", "s1"]}, overwrite=False)
    assert kept.split[:4] == ["train", "train", "dev", "dev"]
    with pytest.raises(ManifestError, match="speaker 's1' is assigned to both 'train' and 'test'"):
        split_by_speakers(m, {"train": ["s1"], "test": ["s1"]})
    with pytest.raises(ManifestError, match="unknown split 'holdout'"):
        split_by_speakers(m, {"holdout": ["s1"]})


def test_crema_d(tmp_path):
    names = ["1001_DFA_ANG_XX.wav", "1001_IEO_HAP_HI.wav", "1002_IEO_SAD_LO.wav", "1002_TIE_NEU_XX.wav"]
    for i, name in enumerate(names):
        make_wav(tmp_path / "AudioWAV" / name, seed=i)
    write_csv(tmp_path / "VideoDemographics.csv", ["ActorID", "Age", "Sex", "Race", "Ethnicity"],
              [["1001", "51", "Male", "Caucasian", "Not Hispanic"], ["1002", "21", "Female", "Caucasian", "Hispanic"]])
    m = load_crema_d(tmp_path)
    assert m.ids == [f"AudioWAV/{n}" for n in names]
    assert m.emotion == ["angry", "happy", "sad", "neutral"]
    assert m.gender == ["male", "male", "female", "female"] and m.speaker[2] == "crema-d-1002"
    for row, (emotion, level) in enumerate([("angry", "normal"), ("happy", "strong"), ("sad", "low")]):
        np.testing.assert_allclose(m.va()[row], category_va(emotion, INTENSITY_FACTORS[level])[:2])
    np.testing.assert_allclose(m.va()[3], CATEGORY_VA["neutral"][:2])
    (tmp_path / "VideoDemographics.csv").unlink()
    assert load_corpus("cremad", tmp_path).gender == [""] * 4


VOTES_HEADER = ["", "A", "D", "F", "H", "N", "S", "fileName", "numResponses", "agreement", "emoVote", "meanEmoResp",
                "meanAngerResp", "meanDisgustResp", "meanFearResp", "meanHappyResp", "meanNeutralResp", "meanSadResp"]


def test_crema_d_places_clips_by_crowd_votes(tmp_path):
    names = ["1001_DFA_ANG_XX.wav", "1001_IEO_HAP_HI.wav", "1002_IEO_SAD_LO.wav"]
    for i, name in enumerate(names):
        make_wav(tmp_path / "AudioWAV" / name, seed=i)
    rows = [["100001", 4, 0, 0, 0, 6, 0, "1001_DFA_ANG_XX", 10, .6, "N", 60, 80, -1, -1, -1, 50, -1],
            ["100002", 0, 0, 0, 9, 0, 0, "1001_IEO_HAP_HI", 9, 1.0, "H", 100, -1, -1, -1, 100, -1, -1],
            ["200001", 0, 0, 0, 0, 0, 9, "1001_DFA_ANG_XX", 9, 1.0, "S", 50, -1, -1, -1, -1, -1, 50],  # video rows
            ["300002", 0, 0, 0, 0, 9, 0, "1001_IEO_HAP_HI", 9, 1.0, "N", 50, -1, -1, -1, -1, 50, -1]]
    (tmp_path / "processedResults").mkdir()
    write_csv(tmp_path / "processedResults" / "tabulatedVotes.csv", VOTES_HEADER, rows)
    m = load_crema_d(tmp_path)
    low, strong = INTENSITY_FACTORS["low"], INTENSITY_FACTORS["strong"]
    # 4 angry votes (rated 80 -> factor .5 + .5 * .8 = .9) and 6 neutral votes: 0.4 of the way to angry at .9
    angry = np.array(category_va("angry", low + (strong - low) * 0.8))
    np.testing.assert_allclose(m.va()[0], (0.4 * angry + 0.6 * np.array(NEUTRAL_VA))[:2])
    np.testing.assert_allclose(m.va()[1], CATEGORY_VA["happy"][:2])  # unanimous, rated 100: the category point
    np.testing.assert_allclose(m.va()[2], category_va("sad", low)[:2])  # no votes row: acted level (LO)
    assert m.emotion == ["angry", "happy", "sad"]  # the acted category stays the emotion label
    off = load_crema_d(tmp_path, votes=False)
    np.testing.assert_allclose(off.va()[0], category_va("angry", INTENSITY_FACTORS["normal"])[:2])


def test_emodb(tmp_path):
    names = ["03a01Fa.wav", "03a01Wa.wav", "08b02Lb.wav", "16a05Ac.wav", "16a05Nc.wav"]
    for i, name in enumerate(names):
        make_wav(tmp_path / "wav" / name, seed=i)
    m = load_emodb(tmp_path)
    assert m.emotion == ["happy", "angry", "boredom", "fear", "neutral"]
    assert m.speaker == ["emodb-03", "emodb-03", "emodb-08", "emodb-16", "emodb-16"]
    assert m.gender == ["male", "male", "female", "female", "female"]
    np.testing.assert_allclose(m.va()[1], category_va("angry", INTENSITY_FACTORS["normal"])[:2])
    strong = load_emodb(tmp_path, intensity="strong")
    np.testing.assert_allclose(strong.va()[1], CATEGORY_VA["angry"][:2])
    with pytest.raises(ManifestError, match="unknown intensity level 'extreme'; valid: low, normal, strong"):
        load_emodb(tmp_path, intensity="extreme")


def test_tess(tmp_path):
    names = {"OAF_angry/OAF_back_angry.wav": ("angry", "OAF"), "OAF_Fear/OAF_bath_fear.wav": ("fear", "OAF"),
             "OAF_Pleasant_surprise/OAF_back_ps.wav": ("surprise", "OAF"),
             "OAF_Sad/OAF_bean_Sad.wav": ("sad", "OAF"), "YAF_neutral/YAF_youth_neutral.wav": ("neutral", "YAF"),
             "YAF_pleasant_surprised/YAF_youth_ps.wav": ("surprise", "YAF"),
             "YAF_disgust/YAF_chat_disgust.wav": ("disgust", "YAF"),
             "YAF_happy/YAF_chair_happy.wav": ("happy", "YAF"),
             "YAF_pleasant_surprised/YAF_dog_pleasant_surprised.wav": ("surprise", "YAF")}
    for i, name in enumerate(names):
        make_wav(tmp_path / "TESS Toronto emotional speech set data" / name, seed=i)
    make_wav(tmp_path / "OAF_notes.wav")  # not a corpus name
    m = load_tess(tmp_path)
    assert len(m) == len(names)
    got = {rel.split("/", 1)[1]: (e, s) for rel, e, s in zip(m.ids, m.emotion, m.speaker)}
    assert got == {k: (e, f"tess-{s}") for k, (e, s) in names.items()}
    assert set(m.gender) == {"female"} and set(m.split) == {""}
    np.testing.assert_allclose(m.va()[m.ids.index("TESS Toronto emotional speech set data/OAF_angry/"
                                                  "OAF_back_angry.wav")],
                               category_va("angry", INTENSITY_FACTORS["normal"])[:2])
    assert load_corpus("TESS", tmp_path).ids == m.ids
    # a second, nested copy of the whole set (as some downloads have) is read once, with a warning
    shutil.copytree(tmp_path / "TESS Toronto emotional speech set data", tmp_path / "copy" / "TESS")
    with pytest.warns(UserWarning, match="9 file name"):
        assert len(load_tess(tmp_path)) == len(names)
    make_wav(tmp_path / "other" / "OAF_back_bored.wav")  # an emotion TESS does not have, in no TESS folder
    with pytest.raises(ManifestError, match="TESS: no audio files"):
        load_tess(tmp_path / "other")


def test_file_name_corpora_errors(tmp_path):
    with pytest.raises(ManifestError, match="RAVDESS: corpus folder not found"):
        load_ravdess(tmp_path / "nope")
    make_wav(tmp_path / "random.wav")
    with pytest.raises(ManifestError, match="EmoDB: no audio files named like the corpus"):
        load_emodb(tmp_path)


def test_corpus_registry(tmp_path):
    assert set(CORPORA) == {"csv", "msp-podcast", "iemocap", "ravdess", "crema-d", "emodb", "tess"}
    with pytest.raises(ManifestError, match="unknown corpus 'timit'; valid: csv, msp-podcast, iemocap, ravdess, "
                                            "crema-d, emodb, tess"):
        load_corpus("timit", tmp_path)
    make_wav(tmp_path / "a.wav")
    src = write_csv(tmp_path / "m.csv", ["path", "valence", "arousal"], [["a.wav", "2", "3"]])
    assert load_corpus("csv", src).ids == ["a.wav"]


# ---------------------------------------------------------------------------------------------------- splits


def speakers_manifest(tmp_path, n_speakers=10, per=5, **extra):
    speakers = [f"s{i}" for i in range(n_speakers) for _ in range(per)]
    paths = [str(tmp_path / f"{i}.wav") for i in range(len(speakers))]
    return Manifest(path=paths, valence=np.full(len(paths), 4.0), arousal=np.full(len(paths), 4.0),
                    speaker=extra.pop("speaker", speakers), root=str(tmp_path), **extra)


def speakers_by_split(m):
    out = {}
    for spk, split in zip(m.speaker, m.split):
        out.setdefault(split, set()).add(spk)
    return out


def test_speaker_disjoint_split_is_disjoint_deterministic_and_balanced(tmp_path):
    m = speakers_manifest(tmp_path)
    a = speaker_disjoint_split(m, seed=3)
    b = speaker_disjoint_split(m, seed=3)
    assert a.split == b.split and m.split == [""] * len(m)  # deterministic; input untouched
    by = speakers_by_split(a)
    assert set(by) == {"train", "dev", "test"}
    assert not (by["train"] & by["dev"]) and not (by["train"] & by["test"]) and not (by["dev"] & by["test"])
    assert [len(by[s]) for s in ("train", "dev", "test")] == [8, 1, 1]
    seeds = {tuple(speaker_disjoint_split(m, seed=s).split) for s in range(6)}
    assert len(seeds) > 1


def test_every_split_gets_a_speaker_when_few(tmp_path):
    m = speakers_manifest(tmp_path, n_speakers=3, per=4)
    by = speakers_by_split(speaker_disjoint_split(m))
    assert all(len(by[s]) == 1 for s in ("train", "dev", "test"))
    only_train = speaker_disjoint_split(m, fractions=(1.0, 0.0, 0.0))
    assert set(only_train.split) == {"train"}


def test_existing_splits_kept_unless_overwrite(tmp_path):
    split = ["test"] * 5 + [""] * 45
    m = speakers_manifest(tmp_path, split=split)
    out = speaker_disjoint_split(m, seed=1)
    assert out.split[:5] == ["test"] * 5 and "" not in out.split
    by = speakers_by_split(out)
    assert by["test"] >= {"s0"} and "s0" not in by.get("train", set()) | by.get("dev", set())
    # A speaker already placed pulls its unassigned rows into the same split.
    half = speakers_manifest(tmp_path, split=["dev"] * 2 + [""] * 48)
    assert speaker_disjoint_split(half).split[:5] == ["dev"] * 5
    full = speaker_disjoint_split(m, seed=1)
    assert speaker_disjoint_split(full, seed=9).split == full.split
    assert speaker_disjoint_split(full, seed=1, overwrite=True).split == speaker_disjoint_split(
        speakers_manifest(tmp_path), seed=1).split


def test_unknown_speakers_fall_back_to_utterance_level(tmp_path):
    m = speakers_manifest(tmp_path, n_speakers=1, per=20, speaker=[""] * 20)
    with pytest.warns(UserWarning, match="20 of 20 rows have no speaker id; they are split at utterance level"):
        out = speaker_disjoint_split(m, fractions=(0.5, 0.25, 0.25))
    counts = out.split_counts()
    assert counts == {"train": 10, "dev": 5, "test": 5}


def test_known_speakers_do_not_warn(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        speaker_disjoint_split(speakers_manifest(tmp_path))


@pytest.mark.parametrize("fractions", [(0.5, 0.5), (0.8, 0.3, 0.1), (1.2, -0.1, -0.1), (np.nan, 0.5, 0.5)])
def test_bad_fractions(tmp_path, fractions):
    with pytest.raises(ValueError, match="fractions must be three non-negative numbers"):
        speaker_disjoint_split(speakers_manifest(tmp_path), fractions=fractions)
