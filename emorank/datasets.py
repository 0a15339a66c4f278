"""Manifests (one row per utterance) and loaders for emotional-speech corpora.

A :class:`Manifest` holds absolute audio paths, labels on the paper's 1..7 scale (valence, arousal, optional
dominance), and optional emotion category, speaker, gender, split and caption. Loaders:

* ``load_hf_dataset`` (:mod:`emorank.data.hub`): any Hugging Face audio dataset, decoded once to 16 kHz WAVs;
* ``csv``: any CSV with the header ``path,valence,arousal,dominance,emotion,speaker,gender,split,caption`` (only
  ``path``, ``valence`` and ``arousal`` required; relative paths resolve against the CSV's folder);
* ``msp-podcast``: ``Labels/labels_consensus.csv`` + ``Audios/`` (EmoClass O and X dropped, as in the paper);
* ``iemocap``: ``Session*/dialog/EmoEvaluation/*.txt``, V-A-D rescaled linearly from 1..5 to 1..7;
* ``ravdess``, ``crema-d``, ``emodb``, ``tess``: categorical corpora labelled from their file names. Their
  valence-arousal labels are a **proxy**: the NRC VAD Lexicon norm of the category word (Mohammad, ACL 2018)
  mapped to 1..7 with ``1 + 6x``, moved towards neutral (:data:`NEUTRAL_VA`, the scale's centre) by an intensity
  factor (see :data:`INTENSITY_FACTORS`). Where a corpus gives per-emotion votes or scores (CREMA-D's crowd
  ratings), a clip sits at the vote-weighted mean of the category points instead (:func:`soft_category_va`).

Canonical values: split in ``train``/``dev``/``test`` or ``""`` (common aliases such as ``Development``,
``validation`` or ``Test1`` are normalised); gender ``female``/``male``/``""``; emotion names from
:data:`CATEGORIES` (aliases like ``anger`` or ``fearful`` are normalised; other names are kept, lower-cased).
"""
from __future__ import annotations

import csv
import io
import os
import re
import tempfile
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

LABEL_MIN, LABEL_MAX = 1.0, 7.0
SPLITS = ("train", "dev", "test")
CSV_COLUMNS = ("path", "valence", "arousal", "dominance", "emotion", "speaker", "gender", "split", "caption")
REQUIRED_COLUMNS = ("path", "valence", "arousal")
CATEGORIES = ("neutral", "calm", "happy", "sad", "angry", "fear", "disgust", "surprise", "boredom", "contempt",
              "frustration", "excited", "other")

_SPLIT_ALIASES = {
    "train": "train", "training": "train", "trn": "train",
    "dev": "dev", "development": "dev", "devel": "dev", "val": "dev", "valid": "dev", "validation": "dev",
    "test": "test", "testing": "test", "tst": "test", "test1": "test", "test2": "test", "test3": "test",
    "": "",
}
_EMOTION_ALIASES = {
    "neutrality": "neutral", "neu": "neutral", "calmness": "calm", "happiness": "happy", "joy": "happy",
    "hap": "happy", "sadness": "sad", "anger": "angry", "ang": "angry", "fearful": "fear", "fea": "fear",
    "anxiety": "fear", "disgusted": "disgust", "dis": "disgust", "surprised": "surprise", "sur": "surprise",
    "bored": "boredom", "contemptuous": "contempt", "frustrated": "frustration", "fru": "frustration",
    "excitement": "excited", "exc": "excited", "oth": "other",
}
_GENDER_ALIASES = {"f": "female", "female": "female", "woman": "female", "w": "female",
                   "m": "male", "male": "male", "man": "male"}
_UNKNOWN = {"", "unknown", "n/a", "na", "none", "nan", "-", "?"}

# NRC VAD Lexicon v1 (Mohammad, ACL 2018; free for research and non-commercial use), noun forms, on 0..1.
_NRC_VAD = {
    "neutral": (0.469, 0.184, 0.357), "calm": (0.875, 0.100, 0.282), "happy": (0.960, 0.732, 0.850),
    "sad": (0.052, 0.288, 0.164), "angry": (0.167, 0.865, 0.657), "fear": (0.073, 0.840, 0.293),
    "disgust": (0.052, 0.775, 0.317), "surprise": (0.875, 0.875, 0.562), "boredom": (0.167, 0.139, 0.255),
}
# Our interpretation for categories without a norm at hand, derived from neighbouring norms (0..1 scale):
_DERIVED_VAD = {
    # contempt: placed near disgust (not looked up): disgust's valence, arousal a little lower, dominance higher
    # (contempt is a "looking down on" emotion).
    "contempt": (0.052, 0.675, 0.550),
    # frustration: midway between anger and sadness (negative, moderately aroused).
    "frustration": tuple(round((a + s) / 2, 4) for a, s in zip(_NRC_VAD["angry"], _NRC_VAD["sad"])),
    # excited: happiness with arousal raised halfway to the top of the scale.
    "excited": (0.960, round((0.732 + 1.0) / 2, 4), 0.850),
}
NEUTRAL_VA: tuple[float, float, float] = (4.0, 4.0, 4.0)
"""Where a neutral utterance sits on 1..7: the centre of the scale, for valence, arousal and dominance.

Our interpretation. The NRC word "neutral" has arousal .184 (2.10 on 1..7), below "sadness" (.288) and near
"calm" (.100): it rates the *word*, and a neutral utterance is ordinary speech, not a calm one. In the circumplex
neutral is the origin that every category moves away from, so it sits at the scale's midpoint; calm, boredom and
sadness then lie below it in arousal, as they should. Every proxy takes a ``neutral=`` override."""

CATEGORY_VA: Mapping[str, tuple[float, float, float]] = MappingProxyType({
    **{name: tuple(round(1.0 + 6.0 * x, 4) for x in vad) for name, vad in {**_NRC_VAD, **_DERIVED_VAD}.items()},
    "neutral": NEUTRAL_VA,
})
"""Read-only: category name -> (valence, arousal, dominance) on 1..7. A proxy for categorical corpora.

NRC VAD norms ``1 + 6x`` for calm, happy, sad, angry, fear, disgust, surprise, boredom; contempt, frustration and
excited are derived from neighbouring norms (our interpretation, see ``_DERIVED_VAD``); neutral is
:data:`NEUTRAL_VA` (the scale's centre, our interpretation). ``other`` has no coordinates and is absent."""

INTENSITY_FACTORS: Mapping[str, float] = MappingProxyType({"low": 0.5, "normal": 0.75, "strong": 1.0})
"""How far an acted category sits from neutral (1.0 = the full norm). Our interpretation: a normal-intensity
rendition lies three quarters of the way from neutral to the category norm, a strong one at the norm, a low one
half way."""


class ManifestError(ValueError):
    """A manifest, label file or corpus folder is malformed; the message says where and what."""


def normalise_split(value: str) -> str:
    """``Train``/``Development``/``validation``/``Test1``... -> ``train``/``dev``/``test``; unknown names kept."""
    key = str(value).strip().lower()
    return _SPLIT_ALIASES.get(key, key)


def normalise_emotion(value: str) -> str:
    """Map aliases (``anger``, ``fearful``, ``neu``...) to :data:`CATEGORIES` names; unknown names lower-cased."""
    key = str(value).strip().lower()
    if key in _UNKNOWN or key == "xxx":
        return ""
    return _EMOTION_ALIASES.get(key, key)


def normalise_gender(value: str) -> str:
    """``F``/``Female``/``woman`` -> ``female``, ``M``/``Male``/``man`` -> ``male``, unknown -> ``""``."""
    key = str(value).strip().lower()
    if key in _UNKNOWN:
        return ""
    return _GENDER_ALIASES.get(key, key)


def _clean_unknown(value: str) -> str:
    """Speaker ids such as ``Unknown`` or ``n/a`` become ``""`` so they are not taken for one real speaker."""
    value = str(value).strip()
    return "" if value.lower() in _UNKNOWN else value


def _text_column(values: Sequence[str] | None, n: int, name: str) -> list[str]:
    if values is None:
        return [""] * n
    values = ["" if v is None else str(v) for v in values]
    if len(values) != n:
        raise ManifestError(f"column '{name}' has {len(values)} rows but 'path' has {n}")
    return values


def _float_column(values, n: int, name: str) -> np.ndarray:
    if values is None:
        return np.full(n, np.nan)
    arr = np.asarray(values, dtype=np.float64).reshape(-1)  # [N]
    if arr.shape[0] != n:
        raise ManifestError(f"column '{name}' has {arr.shape[0]} rows but 'path' has {n}")
    return arr


@dataclass(eq=False)
class Manifest:
    """One row per utterance. Labels on 1..7; text fields are ``""`` when unknown.

    ``path`` entries are made absolute (relative ones resolve against ``root``); ``root`` defaults to the common
    folder of the paths and anchors :attr:`ids`. Known aliases of split, emotion and gender are normalised.
    """

    path: list[str]
    valence: np.ndarray  # [N]
    arousal: np.ndarray  # [N]
    dominance: np.ndarray | None = None  # [N], NaN when unknown
    emotion: list[str] | None = None
    speaker: list[str] | None = None
    gender: list[str] | None = None
    split: list[str] | None = None
    caption: list[str] | None = None
    root: str = ""

    def __post_init__(self):
        self._ids_cache: tuple | None = None
        n = len(self.path)
        root = self.root or _common_folder(self.path)
        self.root = os.path.abspath(root)
        self.path = _resolve_paths(self.path, self.root)
        self.valence = _float_column(self.valence, n, "valence")
        self.arousal = _float_column(self.arousal, n, "arousal")
        self.dominance = _float_column(self.dominance, n, "dominance")
        self.emotion = [normalise_emotion(e) for e in _text_column(self.emotion, n, "emotion")]
        self.speaker = [s.strip() for s in _text_column(self.speaker, n, "speaker")]
        self.gender = [normalise_gender(g) for g in _text_column(self.gender, n, "gender")]
        self.split = [normalise_split(s) for s in _text_column(self.split, n, "split")]
        self.caption = _text_column(self.caption, n, "caption")

    def __len__(self) -> int:
        return len(self.path)

    def __repr__(self) -> str:
        counts = ", ".join(f"{k or '(none)'}={v}" for k, v in sorted(self.split_counts().items()))
        return f"Manifest({len(self)} rows, root={self.root!r}, splits: {counts or 'none'})"

    @property
    def ids(self) -> list[str]:
        """Stable per-row ids: the path relative to ``root``, with forward slashes.

        Cached (computing them for 100k rows takes a while): treat the returned list as read-only.
        """
        key = (self.root, id(self.path), len(self.path))
        if self._ids_cache is None or self._ids_cache[0] != key:
            self._ids_cache = (key, _relative_to(self.path, self.root))
        return self._ids_cache[1]

    def va(self) -> np.ndarray:
        """``[N, 2]`` float array of (valence, arousal)."""
        return np.stack([self.valence, self.arousal], axis=1)

    def subset(self, index) -> Manifest:
        """Rows selected by integer indices, a boolean mask or a slice (same root, so ids are unchanged)."""
        rows = np.atleast_1d(np.arange(len(self))[index])  # [M]
        # The fields are already normalised: copy them without running __post_init__ again (fast on 100k rows).
        out = object.__new__(Manifest)
        for name in ("valence", "arousal", "dominance"):
            setattr(out, name, getattr(self, name)[rows].copy())
        for name in ("path", "emotion", "speaker", "gender", "split", "caption"):
            values = getattr(self, name)
            setattr(out, name, [values[i] for i in rows])
        out.root, out._ids_cache = self.root, None
        return out

    def split_of(self, name: str) -> Manifest:
        """The rows of split ``name`` (aliases accepted); may be empty. Unknown names raise ManifestError."""
        key = normalise_split(name)
        if key not in SPLITS:
            raise ManifestError(f"unknown split {name!r}; valid: {', '.join(SPLITS)}")
        return self.subset(np.array([s == key for s in self.split], dtype=bool))

    def split_counts(self) -> dict[str, int]:
        """Rows per split value (``""`` for unassigned rows)."""
        return dict(Counter(self.split))

    def emotion_ids(self, categories: Sequence[str] | None = None) -> tuple[np.ndarray, list[str]]:
        """Category index per row (int64 ``[N]``, -1 when unknown or not in ``categories``) and the category list.

        Without ``categories``: the :data:`CATEGORIES` present, in that order, then other names present, sorted.
        """
        if categories is None:
            present = {e for e in self.emotion if e}
            categories = [c for c in CATEGORIES if c in present] + sorted(present - set(CATEGORIES))
        categories = [normalise_emotion(c) for c in categories]
        index = {c: i for i, c in enumerate(categories)}
        ids = np.array([index.get(e, -1) if e else -1 for e in self.emotion], dtype=np.int64)  # [N]
        return ids, list(categories)

    def drop_missing_files(self) -> Manifest:
        """The rows whose audio file exists; warns with the number dropped."""
        keep = np.array([os.path.isfile(p) for p in self.path], dtype=bool)
        if not keep.all():
            warnings.warn(f"dropped {int((~keep).sum())} of {len(self)} rows whose audio file is missing",
                          stacklevel=2)
        return self.subset(keep)

    def validate(self, check_files: bool = True) -> None:
        """Raise :class:`ManifestError` listing every problem found (labels, splits, duplicates, files)."""
        problems = _label_problems(self) + _split_problems(self) + _duplicate_problems(self)
        if check_files:
            problems += _missing_file_problems(self)
        if problems:
            raise ManifestError(f"invalid manifest (root {self.root}):\n  - " + "\n  - ".join(problems))

    def to_csv(self, path: str | os.PathLike) -> None:
        """Write the generic CSV format, atomically; paths under the CSV's folder are written relative to it."""
        out = Path(path).absolute()
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
                writer = csv.writer(f)
                writer.writerow(CSV_COLUMNS)
                prefix = os.path.join(str(out.parent), "")
                for i in range(len(self)):
                    writer.writerow(_csv_row(self, i, prefix))
            os.chmod(tmp, 0o644)
            os.replace(tmp, out)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    @classmethod
    def from_csv(cls, path: str | os.PathLike, *, check_files: bool = True) -> Manifest:
        """Same as :func:`read_csv_manifest`."""
        return read_csv_manifest(path, check_files=check_files)


def _common_folder(paths: Sequence[str]) -> str:
    if not paths:
        return os.getcwd()
    folders = {os.path.dirname(str(p)) for p in paths}
    return os.path.commonpath([os.path.abspath(f) for f in folders])


def _resolve_paths(paths: Sequence[str], root: str) -> list[str]:
    """Absolute, normalised paths; folders are normalised once each (corpora have few folders, many files)."""
    folders: dict[str, str] = {}
    out = []
    for p in map(os.fspath, paths):
        head, _, tail = p.replace("/", os.sep).rpartition(os.sep)
        if tail in ("", ".", ".."):
            out.append(os.path.abspath(os.path.join(root, p)))
            continue
        if not head and p.startswith(os.sep):
            head = os.sep  # "/a.wav": the filesystem root, not ``root``
        if head not in folders:
            folders[head] = os.path.join(os.path.abspath(os.path.join(root, head)), "")  # trailing separator
        out.append(folders[head] + tail)
    return out


def _relative_to(paths: Sequence[str], folder: str) -> list[str]:
    """POSIX-style paths relative to ``folder`` (``..`` where needed); a string cut for paths inside it."""
    prefix = os.path.join(folder, "")  # folder + separator
    rel = [p[len(prefix):] if p.startswith(prefix) else os.path.relpath(p, folder) for p in paths]
    return rel if os.sep == "/" else [r.replace(os.sep, "/") for r in rel]


def _fmt_float(x: float) -> str:
    return "" if np.isnan(x) else repr(float(x))  # repr round-trips exactly


def _csv_row(m: Manifest, i: int, prefix: str) -> list[str]:
    p = m.path[i]
    p = p[len(prefix):].replace(os.sep, "/") if p.startswith(prefix) else p  # relative inside the CSV's folder
    return [p, _fmt_float(m.valence[i]), _fmt_float(m.arousal[i]), _fmt_float(m.dominance[i]), m.emotion[i],
            m.speaker[i], m.gender[i], m.split[i], m.caption[i]]


def _first_rows(m: Manifest, rows: np.ndarray, values, limit: int = 5) -> str:
    shown = ", ".join(f"row {int(r)} ({_relative_to([m.path[int(r)]], m.root)[0]}) = {values[int(r)]!r}"
                      for r in rows[:limit])
    return shown + (", ..." if len(rows) > limit else "")


def _label_problems(m: Manifest) -> list[str]:
    problems = []
    for name, allow_nan in (("valence", False), ("arousal", False), ("dominance", True)):
        x = getattr(m, name)
        bad_nan = np.isnan(x) & (not allow_nan)
        bad = bad_nan | (~np.isnan(x) & ((x < LABEL_MIN) | (x > LABEL_MAX)))
        rows = np.flatnonzero(bad)
        if rows.size:
            what = "outside 1..7" + ("" if allow_nan else " or missing/NaN")
            problems.append(f"{name}: {rows.size} value(s) {what}; first: {_first_rows(m, rows, x.tolist())}")
    return problems


def _split_problems(m: Manifest) -> list[str]:
    bad = sorted({s for s in m.split if s not in SPLITS and s != ""})
    if not bad:
        return []
    rows = np.flatnonzero([s in bad for s in m.split])
    return [f"unknown split name(s) {', '.join(map(repr, bad))} in {rows.size} row(s) "
            f"(first: {_first_rows(m, rows, m.split)}); valid: {', '.join(SPLITS)} or empty"]


def _duplicate_problems(m: Manifest) -> list[str]:
    dup = [p for p, c in Counter(m.path).items() if c > 1]
    if not dup:
        return []
    return [f"{len(dup)} duplicate path(s), first: {', '.join(dup[:5])}"]


def _missing_file_problems(m: Manifest, limit: int = 5) -> list[str]:
    missing = [p for p in m.path if not os.path.isfile(p)]
    if not missing:
        return []
    more = f" (first {limit} shown)" if len(missing) > limit else ""
    return [f"{len(missing)} audio file(s) missing{more}: {', '.join(missing[:limit])}"]


# ----------------------------------------------------------------------------------------------------------------
# Generic CSV


def _parse_float(text: str, where: str, column: str) -> float:
    text = (text or "").strip()
    if text == "" or text.lower() == "nan":
        return float("nan")
    try:
        return float(text)
    except ValueError:
        raise ManifestError(f"{where}: {column} {text!r} is not a number") from None


def read_csv_manifest(path: str | os.PathLike, *, check_files: bool = True) -> Manifest:
    """Read the generic CSV format (``path,valence,arousal,dominance,emotion,speaker,gender,split,caption``).

    Header names are matched case-insensitively; only ``path``, ``valence`` and ``arousal`` are required; extra
    columns are ignored. Relative paths resolve against the CSV's folder, which becomes the manifest root.
    The result is validated (labels, splits, duplicates and, with ``check_files``, that each audio file exists).
    """
    src = Path(path)
    if not src.is_file():
        raise ManifestError(f"manifest CSV not found: {src}")
    try:
        return _read_csv_manifest(src, check_files)
    except csv.Error as err:
        raise ManifestError(f"{src}: not a readable CSV file ({err})") from None


def _read_csv_manifest(src: Path, check_files: bool) -> Manifest:
    with _open_text(src) as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise ManifestError(f"{src}: empty file (no header row)")
        columns = [h.strip().lower() for h in header]
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise ManifestError(f"{src}: missing required column(s) {', '.join(missing)}; columns found: "
                                f"{', '.join(h.strip() for h in header) or '(none)'}")
        pos = {c: columns.index(c) for c in CSV_COLUMNS if c in columns}
        data: dict[str, list] = {c: [] for c in pos}
        for row in reader:
            line_no = reader.line_num  # the physical line where the row ends (quoted fields may span lines)
            if not any(cell.strip() for cell in row):
                continue
            if len(row) < len(header):
                row = row + [""] * (len(header) - len(row))
            where = f"{src} line {line_no}"
            for c, j in pos.items():
                cell = row[j]
                data[c].append(_parse_float(cell, where, c) if c in ("valence", "arousal", "dominance")
                               else cell.strip() if c != "caption" else cell)
    if any(not p for p in data["path"]):
        raise ManifestError(f"{src}: {data['path'].count('')} row(s) have an empty path")
    if "speaker" in data:
        data["speaker"] = [_clean_unknown(s) for s in data["speaker"]]
    m = Manifest(root=str(src.parent.absolute()), **data)
    m.validate(check_files=check_files)
    return m


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


def _open_text(path: Path) -> io.StringIO:
    """The file decoded as UTF-8 (a BOM is dropped), for ``csv``; a non-UTF-8 file is a clear ManifestError."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise ManifestError(f"{path} line {line}: not UTF-8 text (byte 0x{data[err.start]:02x} at offset "
                            f"{err.start}); re-save the file as UTF-8 (e.g. in a spreadsheet: Save As, CSV UTF-8; "
                            f"or: iconv -f latin1 -t utf-8 IN > OUT)") from None
    return io.StringIO(text, newline="")


def _read_dict_csv(path: Path, required: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    if not path.is_file():
        raise ManifestError(f"label file not found: {path}")
    with _open_text(path) as f:
        reader = csv.DictReader(f)
        found = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in required if c not in found]
        if missing:
            raise ManifestError(f"{path}: missing required column(s) {', '.join(missing)}; columns found: "
                                f"{', '.join(found) or '(none)'}")
        try:
            return [(reader.line_num, {k.strip(): (v or "") for k, v in r.items() if k is not None})
                    for r in reader]
        except csv.Error as err:
            raise ManifestError(f"{path} line {reader.line_num}: not a readable CSV file ({err})") from None


def _finish(m: Manifest, check_files: bool, source: str) -> Manifest:
    if len(m) == 0:
        raise ManifestError(f"no usable rows found in {source}")
    m.validate(check_files=check_files)
    return m


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


# ----------------------------------------------------------------------------------------------------------------
# Categorical corpora (labels from file names; V-A is a category-norm proxy)


def _neutral_point(neutral: Sequence[float] | None) -> np.ndarray:
    point = np.asarray(NEUTRAL_VA if neutral is None else neutral, dtype=np.float64).reshape(-1)  # [3]
    if point.shape != (3,) or not np.all((point >= LABEL_MIN) & (point <= LABEL_MAX)):
        raise ManifestError(f"neutral point must be (valence, arousal, dominance) within 1..7, got {neutral!r}")
    return point


def _norm(emotion: str, neutral: np.ndarray) -> np.ndarray:
    key = normalise_emotion(emotion)
    if key not in CATEGORY_VA:
        raise ManifestError(f"no valence-arousal norm for emotion {emotion!r}; known: {', '.join(CATEGORY_VA)}")
    return neutral if key == "neutral" else np.array(CATEGORY_VA[key])


def category_va(emotion: str, intensity: float = 1.0, *,
                neutral: Sequence[float] | None = None) -> tuple[float, float, float]:
    """(valence, arousal, dominance) proxy on 1..7: neutral + intensity * (norm(emotion) - neutral).

    ``intensity`` 1.0 gives the category norm itself, 0.0 gives neutral; see :data:`INTENSITY_FACTORS`.
    ``neutral`` defaults to :data:`NEUTRAL_VA`.
    """
    n = _neutral_point(neutral)
    v, a, d = n + float(intensity) * (_norm(emotion, n) - n)
    return float(v), float(a), float(d)


def soft_category_va(scores: Mapping[str, float], intensity: float | Mapping[str, float] = 1.0, *,
                     neutral: Sequence[float] | None = None) -> tuple[float, float, float]:
    """Vote-weighted proxy: neutral + sum_k w_k * f_k * (norm(k) - neutral), with w_k = s_k / sum(s).

    ``scores`` maps emotion names to vote counts or probabilities (non-negative). The point is the weighted mean
    of the category points :func:`category_va` (k, f_k): unanimous votes give that category's point, votes split
    between two categories land on the segment between them, neutral votes pull towards neutral. ``intensity``
    is one factor for every category or one per category (missing ones count 1.0). Emotions without a norm
    (e.g. ``other``) are left out and the rest re-weighted; our interpretation.
    """
    n = _neutral_point(neutral)
    point, total = np.zeros(3), 0.0  # [3]
    for emotion, score in scores.items():
        score = float(score)
        if not np.isfinite(score) or score < 0:
            raise ManifestError(f"emotion score for {emotion!r} must be a non-negative number, got {score!r}")
        if score == 0 or normalise_emotion(emotion) not in CATEGORY_VA:
            continue
        f = float(intensity.get(emotion, 1.0) if isinstance(intensity, Mapping) else intensity)
        point += score * f * (_norm(emotion, n) - n)
        total += score
    if total == 0:
        raise ManifestError(f"no votes for any emotion with a norm in {dict(scores)!r}")
    v, a, d = n + point / total
    return float(v), float(a), float(d)


def _intensity(factors: Mapping[str, float] | None, level: str) -> float:
    table = {**INTENSITY_FACTORS, **(factors or {})}
    if level not in table:
        raise ManifestError(f"unknown intensity level {level!r}; valid: {', '.join(table)}")
    return float(table[level])


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

    m = _from_file_names(root, r"(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)\.wav", parse, "RAVDESS",
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

    return _from_file_names(root, r"(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})\.wav", parse, "CREMA-D", check_files)


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

    return _from_file_names(root, r"(\d\d)([a-z]\d\d)([A-Za-z])([a-z])\.wav", parse, "EmoDB", check_files)


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

    m = _from_file_names(root, r"(OAF|YAF)_([A-Za-z]+)_([A-Za-z_]+)\.wav", parse, "TESS", check_files)
    if repeats:
        warnings.warn(f"TESS: {len(repeats)} file name(s) found twice were read once (first repeat: {repeats[0]})",
                      stacklevel=2)
    return m


# ----------------------------------------------------------------------------------------------------------------
# Registry


CORPORA: dict[str, Callable[..., Manifest]] = {
    "csv": read_csv_manifest,
    "msp-podcast": load_msp_podcast,
    "iemocap": load_iemocap,
    "ravdess": load_ravdess,
    "crema-d": load_crema_d,
    "emodb": load_emodb,
    "tess": load_tess,
}
"""Corpus name -> loader(root, **kwargs). For ``csv`` the root is the CSV file itself."""


def load_corpus(name: str, root: str | os.PathLike, **kwargs) -> Manifest:
    """Load corpus ``name`` (see :data:`CORPORA`; case and ``_`` vs ``-`` do not matter) from ``root``."""
    key = str(name).strip().lower().replace("_", "-")
    key = {"msp": "msp-podcast", "msppodcast": "msp-podcast", "cremad": "crema-d", "emo-db": "emodb"}.get(key, key)
    if key not in CORPORA:
        raise ManifestError(f"unknown corpus {name!r}; valid: {', '.join(CORPORA)}")
    return CORPORA[key](root, **kwargs)


# ----------------------------------------------------------------------------------------------------------------
# Speaker-disjoint splits


def _check_fractions(fractions: Sequence[float]) -> np.ndarray:
    f = np.asarray(fractions, dtype=np.float64)
    if f.shape != (3,) or np.any(~np.isfinite(f)) or np.any(f < 0) or abs(f.sum() - 1.0) > 1e-6:
        raise ValueError(f"fractions must be three non-negative numbers (train, dev, test) summing to 1, "
                         f"got {tuple(fractions)}")
    return f


def _groups_to_assign(m: Manifest, rows: np.ndarray) -> dict[str, list[int]]:
    """Rows grouped by speaker; rows without a speaker form one group each (utterance level)."""
    groups: dict[str, list[int]] = {}
    for i in rows:
        key = f"spk:{m.speaker[i]}" if m.speaker[i] else f"row:{m.path[i]}"
        groups.setdefault(key, []).append(int(i))
    return groups


def _fill_splits(groups: Iterable[list[int]], targets: np.ndarray, seed: int) -> dict[int, str]:
    """Greedy: each group (in a seeded random order) goes to the split furthest below its target share.

    "Furthest below" = the smallest ratio filled/target, so every split with a non-zero fraction receives a
    group before any split receives a second one.
    """
    groups = sorted(groups, key=lambda g: min(g))  # canonical order before shuffling: deterministic for a seed
    order = np.random.default_rng(seed).permutation(len(groups))
    filled = np.zeros(3)
    out: dict[int, str] = {}
    active = np.flatnonzero(targets > 0)
    for gi in order:
        ratios = filled[active] / targets[active]
        best = active[np.lexsort((np.arange(active.size), -targets[active], ratios))[0]]
        filled[best] += len(groups[gi])
        for row in groups[gi]:
            out[row] = SPLITS[best]
    return out


def speaker_disjoint_split(manifest: Manifest, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0, *,
                           overwrite: bool = False) -> Manifest:
    """Assign train/dev/test so that no speaker appears in two splits; deterministic for a ``seed``.

    Rows that already have a split keep it unless ``overwrite``; unassigned rows of a speaker who already has a
    split join that split (its most common one). Remaining speakers are shuffled with ``seed`` and each goes to the
    split furthest below its target share of the utterances being assigned (smallest filled/target ratio, so each
    split with a non-zero fraction gets a speaker while speakers last; shares are met up to speaker sizes). Rows
    without a speaker are split at utterance level, with a warning. Returns a new manifest.
    """
    targets = _check_fractions(fractions)
    n = len(manifest)
    split = ["" for _ in range(n)] if overwrite else list(manifest.split)
    todo = np.array([i for i in range(n) if not split[i]], dtype=np.int64)
    if todo.size == 0:
        return manifest.subset(slice(None))
    known: dict[str, Counter] = {}
    for i in range(n):
        if split[i] and manifest.speaker[i]:
            known.setdefault(manifest.speaker[i], Counter())[split[i]] += 1
    fresh = []
    for i in todo:
        spk = manifest.speaker[i]
        if spk in known:
            split[i] = known[spk].most_common(1)[0][0]
        else:
            fresh.append(i)
    n_anon = sum(1 for i in fresh if not manifest.speaker[i])
    if n_anon:
        warnings.warn(f"{n_anon} of {n} rows have no speaker id; they are split at utterance level, so the "
                      "splits are not guaranteed speaker-disjoint", stacklevel=2)
    groups = _groups_to_assign(manifest, np.asarray(fresh, dtype=np.int64))
    for row, name in _fill_splits(groups.values(), targets * len(fresh), seed).items():
        split[row] = name
    out = manifest.subset(slice(None))
    out.split = split
    return out


def split_by_speakers(manifest: Manifest, assignment: Mapping[str, Iterable[str]], *,
                      overwrite: bool = True) -> Manifest:
    """Assign splits from a fixed speaker list: ``{"train": [...], "dev": [...], "test": [...]}``.

    Rows of a listed speaker take that speaker's split (with ``overwrite=False`` only rows without a split do);
    rows of unlisted speakers keep their split (``""`` when none). Split names accept the usual aliases. A speaker
    listed under two splits, or an unknown split name, raises :class:`ManifestError`. Returns a new manifest.
    """
    owner: dict[str, str] = {}
    for name, speakers in assignment.items():
        key = normalise_split(name)
        if key not in SPLITS:
            raise ManifestError(f"unknown split {name!r} in the speaker assignment; valid: {', '.join(SPLITS)}")
        for spk in speakers:
            spk = str(spk).strip()
            if owner.get(spk, key) != key:
                raise ManifestError(f"speaker {spk!r} is assigned to both {owner[spk]!r} and {key!r}")
            owner[spk] = key
    out = manifest.subset(slice(None))
    out.split = [owner.get(spk, old) if (overwrite or not old) else old
                 for spk, old in zip(manifest.speaker, manifest.split)]
    return out


def __getattr__(name: str):
    # Lazy: emorank.data.hub imports `datasets` (slow) and this module; importing it here would be a cycle.
    if name == "load_hf_dataset":
        from emorank.data.hub import load_hf_dataset
        return load_hf_dataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
