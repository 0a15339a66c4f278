"""A labels table whose columns are not the generic manifest's: ``file,emotion`` (a category per clip) or a file
column with valence and arousal on another scale -> a :class:`~emorank.data.manifest.Manifest`.

Categories become valence-arousal the way every categorical corpus does here (a proxy,
:func:`~emorank.data.proxies.category_va` at ``normal`` intensity, as :func:`emorank.data.hf.load_hf_dataset`
does); rows whose category has no norm are dropped, and said so. The generic CSV (``path,valence,arousal,...``)
stays :func:`~emorank.data.manifest.read_csv_manifest`.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from emorank.data.manifest import Manifest, ManifestError, _finish, _open_text, _parse_float, normalise_emotion
from emorank.data.proxies import CATEGORY_VA, INTENSITY_FACTORS, category_va

FILE_COLUMNS = ("path", "file", "file_name", "filename", "file_path", "filepath", "audio", "wav", "clip")
CATEGORY_COLUMNS = ("emotion", "label", "category", "class")


def _find(columns: list[str], wanted: str | None, candidates: Sequence[str], what: str, src: Path) -> int | None:
    if wanted:
        key = wanted.strip().lower()
        if key not in columns:
            raise ManifestError(f"{src.name}: no column {wanted!r} for {what}; columns found: {', '.join(columns)}")
        return columns.index(key)
    return next((columns.index(c) for c in candidates if c in columns), None)


def read_labels_table(path: str | os.PathLike, *, category: str | None = None, valence: str | None = None,
                      arousal: str | None = None, scale: tuple[float, float] = (1.0, 7.0), file: str | None = None,
                      intensity: str = "normal", check_files: bool = True) -> tuple[Manifest, int]:
    """Read a CSV of audio files and labels: (manifest, rows dropped because their category has no norm).

    Args:
        category: the column holding an emotion category (default: the first of emotion, label, category, class
            when neither valence nor arousal is named).
        valence, arousal: columns on `scale` (mapped linearly onto 1..7), instead of a category.
        file: the column naming each clip (default: the first of path, file, file_name, ...); relative paths
            resolve against the CSV's folder.
        intensity: how far a category sits from neutral (:data:`~emorank.data.proxies.INTENSITY_FACTORS`).
    """
    src = Path(path)
    if not src.is_file():
        raise ManifestError(f"labels table not found: {src}")
    try:
        with _open_text(src) as f:
            rows = list(csv.reader(f))
    except csv.Error as err:
        raise ManifestError(f"{src}: not a readable CSV file ({err})") from None
    if not rows:
        raise ManifestError(f"{src}: empty file (no header row)")
    columns = [h.strip().lower() for h in rows[0]]
    fcol = _find(columns, file, FILE_COLUMNS, "the audio files", src)
    if fcol is None:
        raise ManifestError(f"{src.name}: no column naming the audio files ({', '.join(FILE_COLUMNS[:4])}, ...); "
                            f"columns found: {', '.join(columns)}")
    by_va = valence is not None or arousal is not None
    if by_va and (valence is None or arousal is None):
        raise ManifestError("name both the valence and the arousal column")
    vcol = _find(columns, valence, (), "valence", src) if by_va else None
    acol = _find(columns, arousal, (), "arousal", src) if by_va else None
    ccol = None if by_va else _find(columns, category, CATEGORY_COLUMNS, "the emotion category", src)
    if not by_va and ccol is None:
        raise ManifestError(f"{src.name}: no emotion column ({', '.join(CATEGORY_COLUMNS)}) and no valence and "
                            f"arousal columns; columns found: {', '.join(columns)}")
    lo, hi = (float(x) for x in scale)
    if not hi > lo:
        raise ManifestError(f"the label scale must rise, got {lo:g}-{hi:g}")
    factor = INTENSITY_FACTORS.get(intensity, INTENSITY_FACTORS["normal"])
    paths, vals, emotions, dropped = [], [], [], 0
    for line_no, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        row = row + [""] * (len(columns) - len(row))
        where = f"{src} line {line_no}"
        if not row[fcol].strip():
            raise ManifestError(f"{where}: empty file name")
        if by_va:
            v, a = (_parse_float(row[c], where, name) for c, name in ((vcol, "valence"), (acol, "arousal")))
            vals.append((1.0 + 6.0 * (v - lo) / (hi - lo), 1.0 + 6.0 * (a - lo) / (hi - lo)))
            emotions.append("")
        else:
            emotion = normalise_emotion(row[ccol])
            if emotion not in CATEGORY_VA:
                dropped += 1
                continue
            vals.append(category_va(emotion, factor)[:2])
            emotions.append(emotion)
        paths.append(row[fcol].strip())
    if not paths:
        raise ManifestError(f"{src.name}: no row with a category that has a valence-arousal norm (known: "
                            f"{', '.join(CATEGORY_VA)})" if not by_va else f"{src.name}: no labelled rows")
    va = np.asarray(vals, dtype=np.float64)  # [N, 2]
    m = Manifest(path=paths, valence=va[:, 0], arousal=va[:, 1], emotion=emotions, root=str(src.parent.absolute()))
    return _finish(m, check_files, f"labels table {src}"), dropped
