"""Hugging Face audio datasets (the `datasets` library) -> manifests of cached 16 kHz mono WAVs.

The tests write tiny local datasets in the formats the Hub uses (parquet files with an Audio feature, an
audiofolder with metadata.csv, a save_to_disk folder); nothing is mocked."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import soundfile as sf

datasets = pytest.importorskip("datasets")
from datasets import Audio, ClassLabel, Dataset  # noqa: E402

from emorank.data.proxies import CATEGORY_VA, INTENSITY_FACTORS, category_va
from emorank.data.manifest import ManifestError
from emorank.data.hf import load_hf_dataset
from emorank.data.proxies import soft_category_va

EMOTIONS = ["angry", "sad", "neutral", "happy"]
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def wav_bytes(seed: int, sr: int = 22050, channels: int = 2, seconds: float = 0.2) -> bytes:
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    tone = 0.3 * np.sin(2 * np.pi * (120 + 15 * seed) * t)
    x = np.stack([tone + 0.01 * rng.standard_normal(t.size) for _ in range(channels)], axis=1)
    buf = io.BytesIO()
    sf.write(buf, x.astype(np.float32), sr, format="WAV")
    return buf.getvalue()


def write_parquet(root, n_per_split=(4, 2, 2), valence=None):
    """data/{train,validation,test}-00000-of-00001.parquet with an Audio feature; V-A on 1..5."""
    start = 0
    for name, n in zip(("train", "validation", "test"), n_per_split):
        idx = list(range(start, start + n))
        start += n
        ds = Dataset.from_dict({
            "audio": [{"bytes": wav_bytes(i), "path": f"clip{i}.wav"} for i in idx],
            "val": [valence[i] if valence else 1.0 + (i % 5) for i in idx],
            "aro": [5.0 - (i % 5) for i in idx],
            "emo": [i % len(EMOTIONS) for i in idx],
            "spk": [f"spk{i % 3}" for i in idx],
            "probs": [[0.5, 0.0, 0.5, 0.0] for _ in idx],
        }).cast_column("audio", Audio()).cast_column("emo", ClassLabel(names=EMOTIONS))
        (root / "data").mkdir(parents=True, exist_ok=True)
        ds.to_parquet(str(root / "data" / f"{name}-00000-of-00001.parquet"))
    return root


def write_audiofolder(root):
    """train/ and test/ folders of WAV files (48 kHz mono) with metadata.csv: category and per-emotion votes."""
    rows = {"train": [("a0.wav", "anger", "s1", 3, 0), ("a1.wav", "happiness", "s1", 0, 4),
                      ("a2.wav", "other", "s2", 1, 1)],
            "test": [("b0.wav", "neutral", "s3", 0, 2)]}
    for split, items in rows.items():
        (root / split).mkdir(parents=True)
        lines = ["file_name,label,speaker,angry,happy"]
        for k, (name, label, spk, angry, happy) in enumerate(items):
            (root / split / name).write_bytes(wav_bytes(k + 10, sr=48000, channels=1))
            lines.append(f"{name},{label},{spk},{angry},{happy}")
        (root / split / "metadata.csv").write_text("\n".join(lines) + "\n")
    return root


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def test_parquet_dataset_maps_labels_splits_and_decodes_to_16k_mono(tmp_path):
    src = write_parquet(tmp_path / "ds")
    m = load_hf_dataset(src, valence="val", arousal="aro", scale=(1, 5), category="emo", speaker="spk",
                        cache_dir=tmp_path / "cache", progress=False)
    assert len(m) == 8 and m.split_counts() == {"train": 4, "dev": 2, "test": 2}
    # 1..5 -> 1..7 linearly: 1 -> 1, 3 -> 4, 5 -> 7
    np.testing.assert_allclose(m.valence, [1 + 1.5 * (i % 5) for i in range(8)])
    np.testing.assert_allclose(m.arousal, [1 + 1.5 * (4 - i % 5) for i in range(8)])
    assert m.emotion == [EMOTIONS[i % 4] for i in range(8)] and m.speaker == [f"spk{i % 3}" for i in range(8)]
    for i, path in enumerate(m.path):
        assert path.startswith(str(tmp_path / "cache"))
        info = sf.info(path)
        assert (info.samplerate, info.channels) == (16000, 1)
        assert abs(info.duration - 0.2) < 1e-3
        x, _ = sf.read(path)
        f = np.argmax(np.abs(np.fft.rfft(x))) * 16000 / len(x)  # the clip's own tone survived resampling
        assert abs(f - (120 + 15 * i)) < 10


def test_cache_is_reused_without_decoding_again(tmp_path):
    src = write_parquet(tmp_path / "ds")
    kwargs = dict(valence="val", arousal="aro", scale=(1, 5), cache_dir=tmp_path / "cache", progress=False)
    first = load_hf_dataset(src, **kwargs)
    stamps = {p: (os.stat(p).st_ino, os.stat(p).st_mtime_ns) for p in first.path}
    os.remove(first.path[3])  # only the missing clip is decoded again
    second = load_hf_dataset(src, **kwargs)
    assert second.path == first.path
    for p in first.path:
        assert (os.stat(p).st_ino, os.stat(p).st_mtime_ns) == stamps[p] or p == first.path[3]
    assert os.path.isfile(first.path[3])
    assert not [f for f in (tmp_path / "cache").rglob("*.tmp")]


def test_scores_give_soft_points_and_bad_audio_is_dropped(tmp_path):
    src = tmp_path / "ds"
    (src / "data").mkdir(parents=True)
    Dataset.from_dict({
        "audio": [{"bytes": wav_bytes(0), "path": "a.wav"}, {"bytes": b"not audio", "path": "b.wav"},
                  {"bytes": wav_bytes(2), "path": "c.wav"}],
        "probs": [[0.5, 0.0, 0.5, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]],
    }).cast_column("audio", Audio()).to_parquet(str(src / "data" / "train-00000-of-00001.parquet"))
    with pytest.warns(UserWarning, match="dropped 1 row.* could not be decoded"):
        m = load_hf_dataset(src, scores="probs", score_names=EMOTIONS, intensity="strong",
                            cache_dir=tmp_path / "cache", progress=False)
    assert len(m) == 2 and m.split == ["", ""]  # one split only and no split column: unassigned
    np.testing.assert_allclose(m.va()[0], ((np.array(CATEGORY_VA["angry"]) + CATEGORY_VA["neutral"]) / 2)[:2])
    np.testing.assert_allclose(m.va()[1], CATEGORY_VA["happy"][:2])
    assert not [f for f in (tmp_path / "cache").rglob("*") if f.is_file() and not f.name.endswith(".wav")
                and "hf-datasets" not in f.parts]
    with pytest.raises(ManifestError, match="give score_names"):
        load_hf_dataset(src, scores="probs", cache_dir=tmp_path / "cache", progress=False)


def test_audiofolder_with_categories_and_vote_columns(tmp_path):
    src = write_audiofolder(tmp_path / "af")
    with pytest.warns(UserWarning, match="dropped 1 row.*'other' x1"):
        m = load_hf_dataset(src, category="label", speaker="speaker", cache_dir=tmp_path / "cache",
                            progress=False)
    assert m.emotion == ["angry", "happy", "neutral"] and m.split == ["train", "train", "test"]
    np.testing.assert_allclose(m.va()[0], category_va("angry", INTENSITY_FACTORS["normal"])[:2])
    assert {(sf.info(p).samplerate, sf.info(p).channels) for p in m.path} == {(16000, 1)}
    votes = quiet(load_hf_dataset, src, scores=["angry", "happy"], category="label",
                  cache_dir=tmp_path / "cache", progress=False, intensity="strong")
    assert len(votes) == 4  # with votes, the 'other' row keeps its place from the votes
    np.testing.assert_allclose(votes.va()[2], soft_category_va({"angry": 1, "happy": 1})[:2])
    np.testing.assert_allclose(votes.va()[0], CATEGORY_VA["angry"][:2])  # unanimous: the category point


def test_save_to_disk_folder_and_split_map(tmp_path):
    ds = Dataset.from_dict({"audio": [{"bytes": wav_bytes(i), "path": f"{i}.wav"} for i in range(3)],
                            "v": [0.1, 0.5, 0.9], "a": [0.9, 0.5, 0.1], "part": ["tr", "holdout", "tr"]})
    ds.cast_column("audio", Audio()).save_to_disk(str(tmp_path / "disk"))
    with pytest.raises(ManifestError, match="dataset split 'tr' is not train/dev/test; map it with split_map"):
        load_hf_dataset(tmp_path / "disk", valence="v", arousal="a", scale=(0, 1), split="part",
                        cache_dir=tmp_path / "cache", progress=False)
    m = load_hf_dataset(tmp_path / "disk", valence="v", arousal="a", scale=(0, 1), split="part",
                        split_map={"tr": "train", "holdout": "test"}, cache_dir=tmp_path / "cache", progress=False)
    assert m.split == ["train", "test", "train"]
    np.testing.assert_allclose(m.valence, [1.6, 4.0, 6.4])


def test_bad_columns_and_out_of_range_labels_are_clear_errors(tmp_path):
    src = write_parquet(tmp_path / "ds", valence=[1.0, 2.0, 3.0, 4.0, 5.0, 6.5, 2.0, 3.0])
    cache = tmp_path / "cache"
    with pytest.raises(ManifestError, match=r"no column 'valence' \(given for valence\).*the dataset's columns: "
                                            r"audio, val, aro, emo, spk, probs"):
        load_hf_dataset(src, valence="valence", arousal="aro", cache_dir=cache, progress=False)
    with pytest.raises(ManifestError, match="no column 'sound' .*given for audio"):
        load_hf_dataset(src, audio="sound", valence="val", arousal="aro", cache_dir=cache, progress=False)
    with pytest.raises(ManifestError, match=r"\[validation\] row 1: val = 6.5 is outside the declared scale 1..5"):
        load_hf_dataset(src, valence="val", arousal="aro", scale=(1, 5), cache_dir=cache, progress=False)
    with pytest.raises(ManifestError, match="both valence and arousal"):
        load_hf_dataset(src, valence="val", cache_dir=cache, progress=False)
    with pytest.raises(ManifestError, match="not a dataset folder"):
        load_hf_dataset(tmp_path / "cache", valence="val", arousal="aro", progress=False)


def test_hub_id_offline_says_so_in_one_sentence(tmp_path):
    code = ("from emorank.data import load_hf_dataset, ManifestError\n"
            "try:\n    load_hf_dataset('someone/emotional-speech', valence='v', arousal='a', cache_dir='c')\n"
            "except ManifestError as err:\n    print(err)\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": REPO}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert "cannot reach the Hugging Face Hub for dataset 'someone/emotional-speech'" in out.stdout, out.stderr
    assert "HF_HUB_OFFLINE=1" in out.stdout and "local copy" in out.stdout
