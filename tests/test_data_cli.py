"""The data options of the command line: manifests without splits, --hf-dataset."""
from __future__ import annotations

import numpy as np

from emorank.cli import _with_splits
from emorank.datasets import Manifest


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
