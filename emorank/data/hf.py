"""Hugging Face audio datasets -> a :class:`~emorank.data.manifest.Manifest` of cached 16 kHz mono WAV files.

``load_hf_dataset(source, ...)`` takes a Hub id (needs a network) or a local folder: parquet files with an
``Audio`` feature (e.g. ``data/train-00000-of-00001.parquet``), a ``save_to_disk`` folder, or an *audiofolder*
(``metadata.csv``/``metadata.jsonl`` with a ``file_name`` column, optionally in split sub-folders). Label columns
are named by options; the audio column is decoded ONCE into ``cache_dir`` (written atomically, so an interrupted
run leaves no broken file, and reused on the next call).

Audio is never decoded by ``datasets`` (which needs ``torchcodec`` since 4.0): the column is cast to
``Audio(decode=False)`` and the bytes or file are read with soundfile. For the same reason an audiofolder is read
here directly (``datasets``' audiofolder builder re-encodes every file through torchcodec).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from emorank.data.proxies import CATEGORY_VA, _intensity, category_va, soft_category_va
from emorank.data.manifest import (LABEL_MAX, LABEL_MIN, SPLITS, Manifest, ManifestError, _clean_unknown,
                                   normalise_emotion, normalise_gender, normalise_split)

_METADATA = ("metadata.csv", "metadata.jsonl")


def default_cache_dir(source: str) -> Path:
    """``$EMORANK_HF_CACHE`` (or ``~/.cache/emorank/hf``) / a folder named after ``source``."""
    base = Path(os.environ.get("EMORANK_HF_CACHE") or Path.home() / ".cache" / "emorank" / "hf")
    if os.path.exists(source):
        path = os.path.abspath(source)
        slug = f"{Path(path).name or 'root'}-{hashlib.sha1(path.encode()).hexdigest()[:8]}"
    else:
        slug = source.replace("/", "--")
    return base / re.sub(r"[^A-Za-z0-9._-]+", "_", slug)


def load_hf_dataset(source: str | os.PathLike, *, audio: str = "audio", valence: str | None = None,
                    arousal: str | None = None, dominance: str | None = None,
                    scale: tuple[float, float] = (1.0, 7.0), category: str | None = None,
                    category_map: Mapping[str, str] | None = None,
                    scores: str | Sequence[str] | Mapping[str, str] | None = None,
                    score_names: Sequence[str] | None = None, speaker: str | None = None,
                    gender: str | None = None, split: str | None = None,
                    split_map: Mapping[str, str] | None = None, name: str | None = None,
                    revision: str | None = None, cache_dir: str | os.PathLike | None = None,
                    intensity: str = "normal", neutral: Sequence[float] | None = None,
                    progress: bool = True) -> Manifest:
    """Load a Hugging Face audio dataset as a manifest; decode its audio once to 16 kHz mono WAVs in ``cache_dir``.

    Labels, in this order of preference:

    * ``valence`` + ``arousal`` (+ ``dominance``) columns on ``scale`` (lo, hi), mapped linearly to 1..7; a value
      outside ``scale`` is refused (ManifestError naming the column and the first rows);
    * ``scores``: per-emotion votes or probabilities: a list of columns named after emotions, a mapping
      column -> emotion, or one column holding a dict (emotion -> score) or a list (names from ``score_names``);
      each clip sits at the vote-weighted mean of the category points (:func:`~emorank.data.proxies.soft_category_va`);
    * ``category``: category norm x ``intensity`` (default ``normal``) from
      :func:`~emorank.data.proxies.category_va`; a ``ClassLabel`` column gives its names. Rows whose category has no
      norm (e.g. ``other``) are dropped with a warning (``category_map`` renames the dataset's labels first).

    All three are proxies except the first. ``speaker``/``gender``/``split`` name optional columns. The dataset's
    own splits (``train``, ``validation``, ``test``...) map through ``split_map`` (name -> train/dev/test or ""),
    else through the usual aliases; a dataset with a single split and no split column leaves rows unassigned (one
    split cannot serve as train, dev and test: our interpretation). ``name``/``revision`` select a Hub config and
    revision. Rows whose audio cannot be decoded are dropped with a warning.
    """
    source = os.fspath(source)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir(source)
    parts = _open(source, name, revision, cache / "hf-datasets")
    label_cols = _label_columns(valence, arousal, dominance, category, scores, score_names)
    optional = {"speaker": speaker, "gender": gender, "split": split}
    used = {"audio": [audio], **_columns_used(label_cols), **{k: [v] for k, v in optional.items() if v}}
    _check_columns(source, parts, used)
    lo, hi = _check_scale(scale)
    _intensity(None, intensity)  # an unknown level fails before any decoding
    rows: dict[str, list] = {k: [] for k in ("path", "valence", "arousal", "dominance", "emotion", "speaker",
                                             "gender", "split")}
    no_norm: dict[str, int] = {}
    failed: list[tuple[str, str]] = []
    for part_name, ds, fingerprint, base in parts:
        part_split = _map_split(part_name, split_map, single=len(parts) == 1, column=bool(split))
        folder = cache / "audio" / f"{_slug(part_name)}-{fingerprint[:12]}"
        targets = [folder / f"{i:06d}.wav" for i in range(len(ds))]
        failed += _decode_missing(ds, audio, targets, base, f"{source} [{part_name}]", progress)
        wanted = sorted({c for option, cols in used.items() if option != "audio" for c in cols})
        records = iter(ds.select_columns(wanted)) if wanted else iter(lambda: {}, None)
        features = ds.features
        for i, record in zip(range(len(ds)), records):
            if not targets[i].is_file():
                continue
            labels = _labels(record, features, label_cols, lo, hi, category_map, intensity, neutral,
                             where=f"{source} [{part_name}] row {i}")
            if labels is None:
                emo = _category_name(record, features, category, category_map)
                no_norm[emo] = no_norm.get(emo, 0) + 1
                continue
            rows["path"].append(str(targets[i]))
            for key in ("valence", "arousal", "dominance", "emotion"):
                rows[key].append(labels[key])
            rows["speaker"].append(_clean_unknown(_text(record.get(speaker))) if speaker else "")
            rows["gender"].append(normalise_gender(_text(record.get(gender))) if gender else "")
            rows["split"].append(_map_split(_text(record.get(split)), split_map, single=False, column=True)
                                 if split else part_split)
    if failed:
        warnings.warn(f"{source}: dropped {len(failed)} row(s) whose audio could not be decoded; first: "
                      f"{failed[0][0]}: {failed[0][1]}", stacklevel=2)
    if no_norm:
        warnings.warn(f"{source}: dropped {sum(no_norm.values())} row(s) whose category has no valence-arousal "
                      f"norm ({', '.join(f'{k!r} x{v}' for k, v in sorted(no_norm.items()))}); rename them with "
                      f"category_map (known: {', '.join(CATEGORY_VA)})", stacklevel=2)
    if not rows["path"]:
        raise ManifestError(f"{source}: no usable rows")
    m = Manifest(root=str(cache.absolute()), **rows)
    m.validate(check_files=True)
    return m


# ---------------------------------------------------------------------------------------------------- opening


def _open(source: str, name: str | None, revision: str | None, hf_cache: Path) -> list[tuple[str, Any, str, Path]]:
    """(split name, datasets.Dataset, stable fingerprint, folder that relative audio paths resolve against)."""
    import datasets

    local = Path(source)
    if local.is_dir():
        if (local / "dataset_dict.json").is_file() or (local / "state.json").is_file():
            loaded = datasets.load_from_disk(str(local))
            return _parts(loaded, local)
        if any(local.rglob("*.parquet")):
            try:
                loaded = datasets.load_dataset("parquet", data_dir=str(local), cache_dir=str(hf_cache))
            except datasets.exceptions.DatasetGenerationError as err:
                cause = err.__cause__ or err
                raise ManifestError(f"{source}: the datasets library cannot read these parquet files "
                                    f"({type(cause).__name__}: {cause})") from None
            return _parts(loaded, local)
        if any(p.name in _METADATA for p in local.rglob("metadata.*")):
            return _audiofolder(local)
        raise ManifestError(f"{source}: not a dataset folder: expected parquet files with an Audio column, a "
                            f"save_to_disk folder (dataset_dict.json or state.json), or an audiofolder "
                            f"({' or '.join(_METADATA)} with a file_name column)")
    if local.exists() or source.startswith((".", "/", "~")) or source.count("/") > 1:
        raise ManifestError(f"{source}: no such dataset folder")
    try:
        loaded = datasets.load_dataset(source, name=name, revision=revision, cache_dir=str(hf_cache))
    except ConnectionError as err:
        raise ManifestError(f"cannot reach the Hugging Face Hub for dataset {source!r} ({err}); on a machine "
                            f"without network (or with HF_HUB_OFFLINE=1) pass a local copy instead: a folder of "
                            f"its parquet files, a save_to_disk folder or an audiofolder") from None
    return _parts(loaded, local)


def _parts(loaded, base: Path) -> list[tuple[str, Any, str, Path]]:
    items = loaded.items() if hasattr(loaded, "keys") else [("train", loaded)]
    return [(str(k), ds, ds._fingerprint, base) for k, ds in items]


def _audiofolder(root: Path) -> list[tuple[str, Any, str, Path]]:
    """An audiofolder read directly: each metadata file's rows, ``file_name`` resolved against its folder; the
    split is the first sub-folder under ``root`` (``train/metadata.csv`` -> train), else ``train``."""
    import datasets
    import pandas as pd

    groups: dict[str, list] = {}
    for meta in sorted(p for p in root.rglob("metadata.*") if p.name in _METADATA):
        if meta.suffix == ".csv":
            frame = pd.read_csv(meta, dtype=str, keep_default_na=False)
        else:
            frame = pd.read_json(meta, lines=True, dtype=False)
        if "file_name" not in frame.columns:
            raise ManifestError(f"{meta}: an audiofolder's metadata needs a file_name column; columns: "
                                f"{', '.join(map(str, frame.columns))}")
        rel = meta.parent.relative_to(root).parts
        part = rel[0] if rel else "train"
        frame = frame.rename(columns={"file_name": "audio"})
        frame["audio"] = [str(meta.parent / f) for f in frame["audio"]]
        groups.setdefault(part, []).append((meta, frame))
    out = []
    order = {name: i for i, name in enumerate(SPLITS)}
    for part, items in sorted(groups.items(), key=lambda kv: (order.get(normalise_split(kv[0]), 3), kv[0])):
        frame = pd.concat([f for _, f in items], ignore_index=True)
        digest = hashlib.sha1()
        for meta, _ in items:
            digest.update(str(meta).encode() + meta.read_bytes())
        out.append((part, datasets.Dataset.from_pandas(frame, preserve_index=False), digest.hexdigest(), root))
    return out


def _columns_used(cols: Mapping[str, Any]) -> dict[str, list[str]]:
    """Option name -> the dataset columns it reads."""
    out = {k: [cols[k]] for k in ("valence", "arousal", "dominance", "category", "scores") if k in cols}
    if "score_columns" in cols:
        out["scores"] = list(cols["score_columns"])
    return out


def _check_columns(source: str, parts, named: Mapping[str, list[str]]) -> None:
    columns = list(parts[0][1].column_names)
    for option, cols in named.items():
        for c in cols:
            missing = [p for p, ds, _, _ in parts if c not in ds.column_names]
            if missing:
                raise ManifestError(f"{source}: no column {c!r} (given for {option}) in split(s) "
                                    f"{', '.join(missing)}; the dataset's columns: {', '.join(columns)}")


def _label_columns(valence, arousal, dominance, category, scores, score_names) -> dict[str, Any]:
    if (valence is None) != (arousal is None):
        raise ManifestError("give both valence and arousal columns, or neither")
    if valence is None and scores is None and category is None:
        raise ManifestError("name the label columns: valence + arousal, per-emotion scores, or a category")
    cols: dict[str, Any] = {}
    for key, value in (("valence", valence), ("arousal", arousal), ("dominance", dominance),
                       ("category", category)):
        if value is not None:
            cols[key] = value
    if scores is not None:
        if isinstance(scores, str):
            cols["scores"] = scores
            if score_names is not None:
                cols["score_names"] = tuple(score_names)
        elif isinstance(scores, Mapping):
            cols["score_columns"] = dict(scores)
        else:
            cols["score_columns"] = {c: c for c in scores}
    return cols


def _check_scale(scale) -> tuple[float, float]:
    lo, hi = (float(x) for x in scale)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ManifestError(f"label scale must be (low, high) with low < high, got {tuple(scale)}")
    return lo, hi


def _map_split(value: str, split_map: Mapping[str, str] | None, *, single: bool, column: bool) -> str:
    if split_map and value in split_map:
        key = normalise_split(split_map[value])
    elif single and not column:
        return ""
    else:
        key = normalise_split(value)
    if key not in SPLITS and key != "":
        raise ManifestError(f"dataset split {value!r} is not train/dev/test; map it with split_map "
                            f"(e.g. {{{value!r}: 'dev'}}, or '' to leave it unassigned)")
    return key


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text) or "split"


def _text(value) -> str:
    return "" if value is None else str(value)


# ---------------------------------------------------------------------------------------------------- labels


def _category_name(record, features, column, category_map) -> str:
    value = record.get(column)
    feature = features.get(column) if column else None
    if feature is not None and hasattr(feature, "int2str") and isinstance(value, (int, np.integer)):
        value = feature.int2str(int(value))
    value = _text(value)
    return (category_map or {}).get(value, value)


def _scaled(value, column: str, lo: float, hi: float, where: str) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ManifestError(f"{where}: {column} {value!r} is not a number") from None
    if not np.isfinite(x) or x < lo or x > hi:
        raise ManifestError(f"{where}: {column} = {value!r} is outside the declared scale {lo:g}..{hi:g} "
                            f"(set the scale to the dataset's own)")
    return LABEL_MIN + (LABEL_MAX - LABEL_MIN) * (x - lo) / (hi - lo)


def _score_dict(record, cols, where: str) -> dict[str, float]:
    if "score_columns" in cols:
        return {emo: record[col] for col, emo in cols["score_columns"].items()}
    value = record[cols["scores"]]
    if isinstance(value, str):
        value = json.loads(value)
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items() if v is not None}
    names = cols.get("score_names")
    if names is None or len(names) != len(value):
        raise ManifestError(f"{where}: scores column {cols['scores']!r} holds a list of {len(value)}; give "
                            f"score_names with one emotion name per entry")
    return dict(zip(names, value))


def _labels(record, features, cols, lo, hi, category_map, intensity, neutral, where) -> dict | None:
    emotion = normalise_emotion(_category_name(record, features, cols["category"], category_map)) \
        if "category" in cols else ""
    if "valence" in cols:
        v, a = (_scaled(record[cols[k]], cols[k], lo, hi, where) for k in ("valence", "arousal"))
        d = _scaled(record[cols["dominance"]], cols["dominance"], lo, hi, where) if "dominance" in cols \
            else float("nan")
    elif "scores" in cols or "score_columns" in cols:
        scores = {k: (0.0 if s is None else s) for k, s in _score_dict(record, cols, where).items()}
        try:
            v, a, d = soft_category_va(scores, _intensity(None, intensity), neutral=neutral)
        except ManifestError as err:
            raise ManifestError(f"{where}: {err}") from None
    else:
        if emotion not in CATEGORY_VA:
            return None
        v, a, d = category_va(emotion, _intensity(None, intensity), neutral=neutral)
    return {"valence": v, "arousal": a, "dominance": d, "emotion": emotion}


# ---------------------------------------------------------------------------------------------------- audio


def _decode_missing(ds, column: str, targets: list[Path], base: Path, label: str,
                    progress: bool) -> list[tuple[str, str]]:
    """Decode the rows whose WAV is not cached yet; returns (row, reason) for rows that fail."""
    todo = [i for i, t in enumerate(targets) if not t.is_file()]
    if not todo:
        return []
    from datasets import Audio
    from tqdm.auto import tqdm

    sub = ds.select(todo).select_columns([column])
    if isinstance(sub.features[column], Audio):
        sub = sub.cast_column(column, Audio(decode=False))
    failed = []
    for i, record in zip(todo, tqdm(sub, total=len(todo), desc=f"decoding {label}", unit="clip",
                                    disable=not progress)):
        try:
            _write_clip(record[column], base, targets[i], f"{label} row {i}")
        except (ValueError, OSError, RuntimeError) as err:
            failed.append((f"row {i}", str(err)))
    return failed


def _write_clip(value, base: Path, target: Path, name: str) -> None:
    import soundfile as sf

    from emorank.data.audio import TARGET_SR, prepare_waveform, write_audio

    if isinstance(value, Mapping) and value.get("bytes"):
        data, sr = sf.read(io.BytesIO(value["bytes"]), always_2d=True, dtype="float32")
    else:
        path = value.get("path") if isinstance(value, Mapping) else value
        if not path:
            raise ValueError("no audio bytes and no path")
        path = Path(path) if os.path.isabs(path) else base / path
        data, sr = sf.read(str(path), always_2d=True, dtype="float32")
    wav = prepare_waveform(data, sr, name=name, max_seconds=None)  # [T] at 16 kHz, mono
    write_audio(target, wav, TARGET_SR)  # temp file + rename: an interrupted run leaves no broken file
