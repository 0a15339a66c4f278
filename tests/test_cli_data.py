"""The data options of the command line: manifests without splits, --hf-dataset."""
from __future__ import annotations

import numpy as np

from emorank.cli.checks import _with_splits
from emorank.data.manifest import Manifest


def no_split_manifest(tmp_path, speakers):
    paths = [str(tmp_path / f"{i}.wav") for i in range(len(speakers))]
    return Manifest(path=paths, valence=np.full(len(paths), 4.0), arousal=np.full(len(paths), 4.0),
                    speaker=speakers, root=str(tmp_path))


def test_training_commands_split_a_manifest_without_splits_by_speaker(tmp_path, capsys):
    m = no_split_manifest(tmp_path, [f"s{i // 4}" for i in range(40)])
    out = _with_splits(m, "train")
    assert set(out.split) == {"train", "dev", "test"}
    by_speaker = {}
    for spk, split in zip(out.speaker, out.split):
        by_speaker.setdefault(spk, set()).add(split)
    assert all(len(s) == 1 for s in by_speaker.values())
    assert _with_splits(m, "evaluate").split == out.split  # same split for train and evaluate
    assert "assigned a speaker-disjoint 80/10/10 split" in capsys.readouterr().err
    assert _with_splits(m, "search").split == [""] * 40  # only commands that need splits get one
    given = out.subset(slice(None))
    given.split = ["train"] * 39 + [""]
    assert _with_splits(given, "train").split == given.split  # a manifest with splits is left alone


def test_train_command_reads_a_local_hf_dataset(tmp_path):
    """`python -m emorank train --hf-dataset <parquet folder>` end to end, in a subprocess, on 40 tiny clips."""
    import io
    import os
    import subprocess
    import sys

    import soundfile as sf
    from datasets import Audio, Dataset

    rng = np.random.default_rng(0)
    sr = 22050
    t = np.arange(int(sr * 0.5)) / sr
    for name, idx in (("train", range(0, 28)), ("validation", range(28, 34)), ("test", range(34, 40))):
        clips, val, aro = [], [], []
        for i in idx:
            v, a = rng.uniform(0, 1, size=2)
            x = (0.05 + 0.4 * a) * np.sin(2 * np.pi * (100 + 150 * v) * t) + 0.01 * rng.standard_normal(t.size)
            buf = io.BytesIO()
            sf.write(buf, x.astype(np.float32), sr, format="WAV")
            clips.append({"bytes": buf.getvalue(), "path": f"{i}.wav"})
            val.append(float(v))
            aro.append(float(a))
        ds = Dataset.from_dict({"audio": clips, "v": val, "a": aro, "who": [f"s{i % 8}" for i in idx]})
        (tmp_path / "ds" / "data").mkdir(parents=True, exist_ok=True)
        ds.cast_column("audio", Audio()).to_parquet(str(tmp_path / "ds" / "data" / f"{name}-00000-of-00001.parquet"))
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # tests/ -> the repository
    cmd = [sys.executable, "-m", "emorank", "train", "--hf-dataset", str(tmp_path / "ds"), "--hf-valence", "v",
           "--hf-arousal", "a", "--hf-scale", "0,1", "--hf-speaker", "who", "--hf-split-map", "validation=dev",
           "--hf-cache", str(tmp_path / "hf"), "--cache", str(tmp_path / "features.sqlite"), "--out",
           str(tmp_path / "run"), "--epochs", "2", "--batch-size", "16", "--workers", "1"]
    out = subprocess.run(cmd, cwd=tmp_path, env={**os.environ, "PYTHONPATH": repo}, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "epoch 2:" in out.stdout and (tmp_path / "run" / "checkpoint" / "config.json").is_file()
    assert len(list((tmp_path / "hf" / "audio").rglob("*.wav"))) == 40
    neither = subprocess.run([sys.executable, "-m", "emorank", "train", "--out", str(tmp_path / "x")], cwd=tmp_path,
                             env={**os.environ, "PYTHONPATH": repo}, capture_output=True, text=True, timeout=120)
    assert neither.returncode != 0 and "--manifest CSV" in neither.stderr and "--hf-dataset" in neither.stderr
