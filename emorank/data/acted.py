"""Acted categorical corpora labelled from their file names: RAVDESS, CREMA-D, EmoDB, TESS.

Their valence-arousal labels are a **proxy** (:mod:`emorank.data.proxies`): the category norm moved towards
neutral by the rendition's intensity; CREMA-D clips sit at the vote-weighted mean of the categories its crowd
heard (``tabulatedVotes.csv``) when that file is present.
"""
from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from types import MappingProxyType
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from emorank.data.manifest import (
    Manifest,
    ManifestError,
    _finish,
    _parse_float,
    _read_dict_csv,
    normalise_gender,
)
from emorank.data.proxies import _intensity, category_va, soft_category_va
from emorank.data.splits import split_by_speakers

# ----------------------------------------------------------------------------------------------------------------
# Categorical corpora (labels from file names; V-A is a category-norm proxy)

NAME_PATTERNS: Mapping[str, str] = MappingProxyType({
    "ravdess": r"(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)\.wav",
    "crema-d": r"(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})\.wav",
    "emodb": r"(\d\d)([a-z]\d\d)([A-Za-z])([a-z])\.wav",
    "tess": r"(OAF|YAF)_([A-Za-z]+)_([A-Za-z_]+)\.wav",
})
"""Corpus name -> the file-name pattern (a full match, case-insensitive) its loader reads."""


def recognise_corpus(paths: Iterable[str | os.PathLike], share: float = 0.9) -> str | None:
    """The acted corpus (a key of :data:`NAME_PATTERNS`) whose file-name pattern at least ``share`` of ``paths``
    match, or None: a folder of RAVDESS files is read with RAVDESS's labels, not as unlabelled audio."""
    names = [Path(p).name for p in paths]
    if not names:
        return None
    for corpus, pattern in NAME_PATTERNS.items():
        regex = re.compile(pattern, re.IGNORECASE)
        if sum(regex.fullmatch(n) is not None for n in names) >= share * len(names):
            return corpus
    return None


def _from_file_names(root: str | os.PathLike, pattern: str, parse: Callable[[re.Match, Path], dict | None],
                     corpus: str, check_files: bool) -> Manifest:
    """Shared walk: every ``*.wav`` under ``root`` whose name matches ``pattern`` becomes a row via
    ``parse(match, path)``, which returns None to skip the file."""
    root = Path(root).expanduser().absolute()
    if not root.is_dir():
        raise ManifestError(f"{corpus}: corpus folder not found: {root}")
    regex = re.compile(pattern, re.IGNORECASE)
    rows = []
    for wav in sorted(root.rglob("*")):
        match = regex.fullmatch(wav.name)
        if match and wav.is_file():
            row = parse(match, wav)
            if row is not None:
                rows.append({"path": str(wav), **row})
    if not rows:
        raise ManifestError(f"{corpus}: no audio files named like the corpus under {root} "
                            f"(expected names matching {pattern})")
    cols = {k: [r.get(k, "") for r in rows] for k in ("path", "emotion", "speaker", "gender")}
    vad = np.array([r["vad"] for r in rows], dtype=np.float64)  # [N, 3]
    m = Manifest(valence=vad[:, 0], arousal=vad[:, 1], dominance=vad[:, 2], root=str(root.absolute()), **cols)
    return _finish(m, check_files, f"{corpus} folder {root}")


_RAVDESS_EMOTIONS = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry", "06": "fear",
                     "07": "disgust", "08": "surprise"}


RAVDESS_SPLIT: Mapping[str, tuple[int, ...]] = MappingProxyType({
    "train": tuple(range(1, 17)), "dev": (17, 18, 19), "test": (20, 21, 22, 23, 24)})
"""The fixed RAVDESS speaker split (actor numbers): 01-16 train, 17-19 dev, 20-24 test. Our interpretation
(RAVDESS ships no split): fixed so that results compare across runs; each part mixes male (odd) and female
(even) actors."""


def load_ravdess(root: str | os.PathLike, *, include_song: bool = False,
                 intensity_factors: Mapping[str, float] | None = None,
                 split: Mapping[str, Iterable[int]] | None = RAVDESS_SPLIT, neutral: Sequence[float] | None = None,
                 check_files: bool = True) -> Manifest:
    """RAVDESS audio files ``MM-VC-EE-II-SS-RR-AA.wav`` anywhere under ``root`` (e.g. ``Actor_01/``).

    Emotion from EE, intensity from II (01 normal, 02 strong), actor AA (odd = male). V-A-D are a proxy:
    :func:`category_va` with ``intensity_factors`` (default :data:`INTENSITY_FACTORS`). Only audio-only files
    (modality 03) are read; song (vocal channel 02) only with ``include_song``. ``neutral`` overrides
    :data:`NEUTRAL_VA`. CC BY-NC-SA 4.0.

    ``split`` maps split names to actor numbers; the default :data:`RAVDESS_SPLIT` (actors 01-16 train, 17-19
    dev, 20-24 test) is our interpretation, fixed so that every run sees the same speakers. Actors not listed get
    no split; ``split=None`` leaves every row unassigned (e.g. for :func:`speaker_disjoint_split`).
    """
    def parse(m: re.Match, _: Path) -> dict | None:
        modality, channel, emo, level, _, _, actor = m.groups()
        if modality != "03" or (channel == "02" and not include_song) or emo not in _RAVDESS_EMOTIONS:
            return None
        emotion = _RAVDESS_EMOTIONS[emo]
        factor = _intensity(intensity_factors, "strong" if level == "02" else "normal")
        return {"emotion": emotion, "speaker": f"ravdess-{actor}", "gender": "male" if int(actor) % 2 else "female",
                "vad": category_va(emotion, factor, neutral=neutral)}

    m = _from_file_names(root, NAME_PATTERNS["ravdess"], parse, "RAVDESS",
                         check_files)
    if split is None:
        return m
    return split_by_speakers(m, {name: [f"ravdess-{int(a):02d}" for a in actors] for name, actors in split.items()})


_CREMA_EMOTIONS = {"ANG": "angry", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
_CREMA_LEVELS = {"LO": "low", "MD": "normal", "HI": "strong", "XX": "normal"}


def load_crema_d(root: str | os.PathLike, *, intensity_factors: Mapping[str, float] | None = None,
                 votes: bool = True, neutral: Sequence[float] | None = None, check_files: bool = True) -> Manifest:
    """CREMA-D files ``AAAA_SSS_EEE_LL.wav`` anywhere under ``root`` (e.g. ``AudioWAV/``).

    ``emotion`` is the acted category (EEE). V-A-D are a proxy, from the crowd when it can be:

    * with ``votes`` (default) and ``processedResults/tabulatedVotes.csv`` found under ``root``: the audio-only
      ratings of each clip (rows whose first column // 100000 == 1) place it at the vote-weighted mean of the
      category points (:func:`soft_category_va`), each category moved from neutral by the mean intensity its
      voters gave (0..100, mapped linearly onto the ``low``..``strong`` factors, so a rating of 0 sits at
      ``low`` and 100 at ``strong``; the median rating, about 58, lands near ``normal``: our interpretation);
    * otherwise (no file, ``votes=False``, or a clip without a row): category x acted level, LO/MD/HI mapping to
      ``low``/``normal``/``strong`` and XX (unspecified) to ``normal`` (our interpretation).

    Listeners often hear less than was acted (audio-only votes agree with the acted category for about 42% of
    clips, most others going to neutral), so the vote-based points sit closer to neutral. Gender comes from
    ``VideoDemographics.csv`` (ActorID, Sex) when found under ``root``, else ``""``. ``neutral`` overrides
    :data:`NEUTRAL_VA`. ODbL 1.0 + DbCL 1.0.
    """
    root = Path(root).expanduser().absolute()
    sexes = _crema_demographics(root)
    crowd = _crema_votes(root) if votes else {}
    low, strong = _intensity(intensity_factors, "low"), _intensity(intensity_factors, "strong")

    def parse(m: re.Match, _: Path) -> dict | None:
        actor, _, emo, level = (g.upper() for g in m.groups())
        if emo not in _CREMA_EMOTIONS or level not in _CREMA_LEVELS:
            return None
        emotion = _CREMA_EMOTIONS[emo]
        stem = m.group(0).rsplit(".", 1)[0]
        if stem in crowd:
            counts, ratings = crowd[stem]
            factors = {k: low + (strong - low) * min(max(r, 0.0), 100.0) / 100.0 for k, r in ratings.items()}
            vad = soft_category_va(counts, factors, neutral=neutral)
        else:
            vad = category_va(emotion, _intensity(intensity_factors, _CREMA_LEVELS[level]), neutral=neutral)
        return {"emotion": emotion, "speaker": f"crema-d-{actor}", "gender": sexes.get(actor, ""), "vad": vad}

    return _from_file_names(root, NAME_PATTERNS["crema-d"], parse, "CREMA-D", check_files)


# tabulatedVotes.csv: vote-count column, and the column with the mean intensity its voters gave (-1 = no voter).
_CREMA_VOTE_COLUMNS = {"A": ("angry", "meanAngerResp"), "D": ("disgust", "meanDisgustResp"),
                       "F": ("fear", "meanFearResp"), "H": ("happy", "meanHappyResp"),
                       "N": ("neutral", "meanNeutralResp"), "S": ("sad", "meanSadResp")}


def _crema_votes(root: Path) -> dict[str, tuple[dict[str, float], dict[str, float]]]:
    """fileName -> ({emotion: votes}, {emotion: mean rated intensity 0..100}) for the audio-only presentation."""
    found = sorted(root.rglob("tabulatedVotes.csv")) if root.is_dir() else []
    if not found:
        return {}
    required = ("fileName", "meanEmoResp") + tuple(c for pair in _CREMA_VOTE_COLUMNS.items() for c in
                                                   (pair[0], pair[1][1]))
    out = {}
    for line_no, r in _read_dict_csv(found[0], required):
        first = r.get("", "") or next(iter(r.values()), "")
        if not first.strip().isdigit() or int(first) // 100000 != 1:
            continue
        where = f"{found[0]} line {line_no}"
        counts = {emo: _parse_float(r[col], where, col) for col, (emo, _) in _CREMA_VOTE_COLUMNS.items()}
        overall = _parse_float(r["meanEmoResp"], where, "meanEmoResp")
        ratings = {}
        for col, (emo, resp) in _CREMA_VOTE_COLUMNS.items():
            value = _parse_float(r[resp], where, resp)
            ratings[emo] = value if value >= 0 else overall
        if sum(counts.values()) > 0:
            out[r["fileName"].strip()] = (counts, ratings)
    return out


def _crema_demographics(root: Path) -> dict[str, str]:
    found = sorted(root.rglob("VideoDemographics.csv")) if root.is_dir() else []
    if not found:
        return {}
    return {r["ActorID"].strip(): normalise_gender(r["Sex"]) for _, r in _read_dict_csv(found[0], ("ActorID", "Sex"))}


_EMODB_EMOTIONS = {"W": "angry", "L": "boredom", "E": "disgust", "A": "fear", "F": "happy", "T": "sad",
                   "N": "neutral"}
# Speaker sex from the EmoDB documentation (speaker codes 03..16).
_EMODB_GENDER = {"03": "male", "08": "female", "09": "female", "10": "male", "11": "male", "12": "male",
                 "13": "female", "14": "female", "15": "male", "16": "female"}


def load_emodb(root: str | os.PathLike, *, intensity: str = "normal",
               intensity_factors: Mapping[str, float] | None = None, neutral: Sequence[float] | None = None,
               check_files: bool = True) -> Manifest:
    """EmoDB (Berlin, German) files ``SSTTTEv.wav`` (e.g. ``03a01Fa.wav``) anywhere under ``root`` (``wav/``).

    Speaker SS, emotion letter E (W anger, L boredom, E disgust, A fear/anxiety -> fear, F happiness, T sadness,
    N neutral). EmoDB has no intensity levels; all rows use ``intensity`` (default ``normal``, our
    interpretation). V-A-D are a proxy (:func:`category_va`; ``neutral`` overrides :data:`NEUTRAL_VA`).
    """
    factor = _intensity(intensity_factors, intensity)

    def parse(m: re.Match, _: Path) -> dict | None:
        speaker, _, emo, _ = m.groups()
        emotion = _EMODB_EMOTIONS.get(emo.upper())
        if emotion is None:
            return None
        return {"emotion": emotion, "speaker": f"emodb-{speaker}", "gender": _EMODB_GENDER.get(speaker, ""),
                "vad": category_va(emotion, factor, neutral=neutral)}

    return _from_file_names(root, NAME_PATTERNS["emodb"], parse, "EmoDB", check_files)


_TESS_EMOTIONS = {"angry": "angry", "anger": "angry", "disgust": "disgust", "fear": "fear", "happy": "happy",
                  "neutral": "neutral", "sad": "sad", "ps": "surprise", "pleasant_surprise": "surprise",
                  "pleasant_surprised": "surprise", "surprise": "surprise", "surprised": "surprise"}


def _tess_emotion(text: str) -> str | None:
    return _TESS_EMOTIONS.get(re.sub(r"[^a-z]+", "_", text.lower()).strip("_"))


def load_tess(root: str | os.PathLike, *, intensity: str = "normal",
              intensity_factors: Mapping[str, float] | None = None, neutral: Sequence[float] | None = None,
              check_files: bool = True) -> Manifest:
    """TESS (Toronto emotional speech set) files ``OAF_back_angry.wav`` / ``YAF_youth_ps.wav`` under ``root``.

    Folders ``OAF_*``/``YAF_*`` (e.g. ``OAF_angry``, ``OAF_Pleasant_surprise``, ``YAF_pleasant_surprised``; case
    varies). Two speakers, both female: ``tess-OAF`` (older, aged 64) and ``tess-YAF`` (younger, aged 26). The
    emotion is the last part of the file name (``ps`` = pleasant surprise -> ``surprise``, whose norm is positive),
    else the folder's. A file name seen twice (copies that nest the whole set a second time) is read once, with a
    warning. TESS has no intensity levels: every row uses ``intensity`` (default ``normal``, our
    interpretation); V-A-D are a proxy (:func:`category_va`). No split is assigned: with two speakers a
    speaker-disjoint train/dev/test split is impossible (use it as a test set, or split by word). CC BY-NC-ND 4.0.
    """
    factor = _intensity(intensity_factors, intensity)
    seen: set[str] = set()
    repeats = []

    def parse(m: re.Match, path: Path) -> dict | None:
        speaker, _, emo = m.groups()
        speaker = speaker.upper()
        emotion = _tess_emotion(emo)
        if emotion is None:
            folder = path.parent.name
            head, _, tail = folder.partition("_")
            emotion = _tess_emotion(tail) if head.upper() == speaker else None
        if emotion is None:
            return None
        key = path.name.lower()
        if key in seen:
            repeats.append(str(path))
            return None
        seen.add(key)
        return {"emotion": emotion, "speaker": f"tess-{speaker}", "gender": "female",
                "vad": category_va(emotion, factor, neutral=neutral)}

    m = _from_file_names(root, NAME_PATTERNS["tess"], parse, "TESS", check_files)
    if repeats:
        warnings.warn(f"TESS: {len(repeats)} file name(s) found twice were read once (first repeat: {repeats[0]})",
                      stacklevel=2)
    return m
