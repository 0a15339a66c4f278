"""The :class:`Manifest` (one row per utterance) and the generic CSV loader.

A :class:`Manifest` holds absolute audio paths, labels on the paper's 1..7 scale (valence, arousal, optional
dominance), and optional emotion category, speaker, gender, split and caption. ``read_csv_manifest`` reads any CSV
with the header ``path,valence,arousal,dominance,emotion,speaker,gender,split,caption`` (only ``path``,
``valence`` and ``arousal`` required; relative paths resolve against the CSV's folder).

Canonical values: split in ``train``/``dev``/``test`` or ``""`` (common aliases such as ``Development``,
``validation`` or ``Test1`` are normalised); gender ``female``/``male``/``""``; emotion names from
:data:`CATEGORIES` (aliases like ``anger`` or ``fearful`` are normalised; other names are kept, lower-cased).
"""
from __future__ import annotations

import csv
import io
import os
import tempfile
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

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
