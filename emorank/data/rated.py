"""Corpora with dimensional ratings: MSP-Podcast and IEMOCAP.

* ``msp-podcast``: ``Labels/labels_consensus.csv`` + ``Audios/`` (EmoClass O and X dropped, as in the paper);
* ``iemocap``: ``Session*/dialog/EmoEvaluation/*.txt``, V-A-D rescaled linearly from 1..5 to 1..7.
"""
from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np

from emorank.data.manifest import (
    Manifest,
    ManifestError,
    _clean_unknown,
    _finish,
    _parse_float,
    _read_dict_csv,
    normalise_emotion,
    normalise_gender,
)

# ----------------------------------------------------------------------------------------------------------------
# MSP-Podcast

_MSP_CLASSES = {"A": "angry", "S": "sad", "H": "happy", "U": "surprise", "F": "fear", "D": "disgust",
                "C": "contempt", "N": "neutral"}
_MSP_COLUMNS = ("FileName", "EmoClass", "EmoAct", "EmoVal", "EmoDom", "SpkrID", "Gender", "Split_Set")


def load_msp_podcast(root: str | os.PathLike, labels_csv: str | os.PathLike | None = None,
                     test_set: str | None = "Test1", *, check_files: bool = True) -> Manifest:
    """MSP-Podcast from ``root/Labels/labels_consensus.csv`` and ``root/Audios/<FileName>``.

    Rows with EmoClass ``O`` (other) or ``X`` (no agreement) are dropped, as in the paper. Note the label columns
    come in the order EmoAct, EmoVal, EmoDom (annotator means on 1..7). ``Split_Set`` maps Train -> train,
    Development -> dev, ``test_set`` -> test; rows of the other test sets are dropped (``test_set=None`` keeps
    every test set as ``test``). ``SpkrID``/``Gender`` of ``Unknown`` become ``""``. Licence-gated: never ship it.
    """
    root = Path(root).expanduser().absolute()
    labels = Path(labels_csv) if labels_csv is not None else root / "Labels" / "labels_consensus.csv"
    rows = _read_dict_csv(labels, _MSP_COLUMNS)
    audio_dir = root / "Audios"
    keep_test = None if test_set is None else test_set.strip().lower()
    cols: dict[str, list] = {k: [] for k in ("path", "valence", "arousal", "dominance", "emotion", "speaker",
                                             "gender", "split")}
    for line_no, r in rows:
        emo = r["EmoClass"].strip().upper()
        split_raw = r["Split_Set"].strip().lower()
        if emo in ("O", "X") or (split_raw.startswith("test") and keep_test not in (None, split_raw)):
            continue
        where = f"{labels} line {line_no}"
        cols["path"].append(str(audio_dir / r["FileName"].strip()))
        cols["arousal"].append(_parse_float(r["EmoAct"], where, "EmoAct"))
        cols["valence"].append(_parse_float(r["EmoVal"], where, "EmoVal"))
        cols["dominance"].append(_parse_float(r["EmoDom"], where, "EmoDom"))
        cols["emotion"].append(_MSP_CLASSES.get(emo, emo.lower()))
        cols["speaker"].append(_clean_unknown(r["SpkrID"]))
        cols["gender"].append(normalise_gender(r["Gender"]))
        cols["split"].append(split_raw)
    return _finish(Manifest(root=str(root.absolute()), **cols), check_files, f"MSP-Podcast labels {labels}")


# ----------------------------------------------------------------------------------------------------------------
# IEMOCAP

_IEMOCAP_LINE = re.compile(r"^\[\s*([\d.]+)\s*-\s*([\d.]+)\s*\]\s+(\S+)\s+(\S+)\s+"
                           r"\[\s*([\d.]+)\s*,\s*([\d.]+)\s*,\s*([\d.]+)\s*\]")


def _iemocap_scale(x: float) -> float:
    """1..5 -> 1..7, linear: 1 -> 1, 3 -> 4, 5 -> 7."""
    return 1.0 + (x - 1.0) * 1.5


def load_iemocap(root: str | os.PathLike, *, check_files: bool = True) -> Manifest:
    """IEMOCAP from ``root/Session*/dialog/EmoEvaluation/*.txt`` and ``Session*/sentences/wav/<dialog>/<turn>.wav``.

    Each label line reads ``[start - end]  TURN  emotion  [V, A, D]`` with V, A, D on 1..5, rescaled linearly to
    1..7 (values outside 1..5 are clipped with a warning). The speaker is the session plus the gender letter that
    starts the last part of the turn name (``Ses01F_impro01_M003`` -> ``Ses01M``, male). Categories: neu, hap,
    exc, sad, ang, fru, fea, sur, dis, oth map to :data:`CATEGORIES`; ``xxx`` (no agreement) becomes ``""``.
    No split is assigned (use :func:`speaker_disjoint_split` or leave-one-session-out). Licence-gated.
    """
    root = Path(root).expanduser().absolute()
    files = sorted(root.glob("Session*/dialog/EmoEvaluation/*.txt"))
    if not files:
        raise ManifestError(f"no IEMOCAP label files under {root} (expected Session*/dialog/EmoEvaluation/*.txt)")
    cols: dict[str, list] = {k: [] for k in ("path", "valence", "arousal", "dominance", "emotion", "speaker",
                                             "gender")}
    clipped = 0
    for txt in files:
        session_dir = txt.parents[2]
        for line in txt.read_text(encoding="utf-8", errors="replace").splitlines():
            match = _IEMOCAP_LINE.match(line.strip())
            if not match:
                continue
            turn, emo = match.group(3), match.group(4)
            vad = np.array([float(match.group(k)) for k in (5, 6, 7)])
            clipped += int(np.count_nonzero((vad < 1) | (vad > 5)))
            v, a, d = (_iemocap_scale(x) for x in np.clip(vad, 1.0, 5.0))
            dialog, letter = turn.rsplit("_", 1)[0], turn.rsplit("_", 1)[-1][:1].upper()
            cols["path"].append(str(session_dir / "sentences" / "wav" / dialog / f"{turn}.wav"))
            cols["valence"].append(v)
            cols["arousal"].append(a)
            cols["dominance"].append(d)
            cols["emotion"].append(normalise_emotion(emo))
            cols["speaker"].append(turn[:5] + letter)
            cols["gender"].append(normalise_gender(letter))
    if clipped:
        warnings.warn(f"IEMOCAP: clipped {clipped} V/A/D value(s) outside 1..5 before rescaling", stacklevel=2)
    return _finish(Manifest(root=str(root.absolute()), **cols), check_files, f"IEMOCAP label files under {root}")
