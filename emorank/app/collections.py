"""Collections: the clips a visitor searches, from the demo corpus, a server folder (loopback only by default),
a labels CSV or a Hugging Face dataset; their definitions persist in ``collections.json`` under the data folder.
:class:`CollectionsMixin` gives the :class:`~emorank.app.workspace.Workspace` its collection methods.
"""
from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from emorank.data.manifest import Manifest, read_csv_manifest

from emorank.app.bounds import (
    ALL_LOCAL,
    AUDIO_SUFFIXES,
    COLLECTIONS_FILE,
    DEMO_ALL,
    DEMO_TEST,
    MAX_COLLECTIONS,
    MAX_FOLDER_FILES,
    MAX_NAME_CHARS,
    WorkspaceError,
    _inside,
    _shown,
    confine,
    text,
    visible_name,
)
from emorank.app.build import clip_folders
from emorank.app.bounds import _unique

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------- collections
@dataclass
class CollectionSource:
    """A named set of clips the app can search: a manifest (labelled) or a folder of audio (labels unknown)."""

    name: str
    manifest: Manifest
    labelled: bool
    origin: str  # where it came from (the manifest CSV or the folder)
    corpus: str = ""  # the corpus its clips belong to ("demo", "ravdess", ...; "" when unknown)

    @property
    def root(self) -> str:
        return self.manifest.root


MAX_SCAN_ENTRIES = 100_000  # files and folders one added folder may make the server look at
SCAN_SECONDS = 10.0  # and for how long


def scan_folder(folder: str | os.PathLike, max_entries: int | None = None,
                seconds: float | None = None) -> list[Path]:
    """Every file under `folder` (symbolic links to folders are not followed), looking at no more than
    `max_entries` files and folders (default MAX_SCAN_ENTRIES) and for no longer than `seconds` (SCAN_SECONDS):
    WorkspaceError past either, so a visitor who adds "/" gets an answer at once. Places that cannot be read
    (permissions, /proc) are skipped."""
    folder = Path(folder)
    max_entries = MAX_SCAN_ENTRIES if max_entries is None else max_entries
    seconds = SCAN_SECONDS if seconds is None else seconds
    files: list[Path] = []
    seen, deadline = 0, time.monotonic() + seconds

    def skip(err: OSError) -> None:
        log.debug("skipped while scanning %s: %s", folder, err)

    for root, dirs, names in os.walk(folder, onerror=skip):
        seen += len(dirs) + len(names)
        if seen > max_entries or time.monotonic() > deadline:
            raise WorkspaceError(f"{visible_name(folder)} holds too many files and folders to look through (more "
                                 f"than {max_entries:,}, or {seconds:g} s of scanning); choose the folder that "
                                 f"holds the audio files, or write a manifest CSV")
        dirs.sort()
        files += [Path(root) / n for n in names]
    return files


def folder_manifest(folder: str | os.PathLike, max_files: int = MAX_FOLDER_FILES,
                    roots: Sequence[str] = ALL_LOCAL, files: Sequence[Path] | None = None) -> Manifest:
    """Every audio file under `folder` (recursively, sorted; `files`: a `scan_folder` of it already made) as an
    unlabelled manifest (V-A = NaN); files whose real path (symbolic links resolved) leaves `roots` are skipped.
    At most `max_files` are listed; the scan itself is bounded (`scan_folder`)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise WorkspaceError(f"{visible_name(folder)} is not a folder")
    found: list[str] = []
    for p in (scan_folder(folder) if files is None else files):
        if p.suffix.lower() in AUDIO_SUFFIXES and os.path.isfile(p):
            real = os.path.realpath(p)
            if any(_inside(real, root) for root in roots):
                found.append(real)
            if len(found) > max_files:
                raise WorkspaceError(f"{visible_name(folder)} holds more audio files than a folder collection takes "
                                     f"(at most {max_files}); write a manifest CSV for larger corpora")
    found.sort()
    if not found:
        raise WorkspaceError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) found under {visible_name(folder)}")
    nan = np.full(len(found), np.nan)
    return Manifest(path=found, valence=nan, arousal=nan.copy(), root=str(folder.resolve()))


def _hub_offline(environ=os.environ) -> bool:
    return any(environ.get(k, "").strip().lower() in ("1", "true", "yes", "on")
               for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
DATASET_MARKERS = ("dataset_dict.json", "state.json", "metadata.csv", "metadata.jsonl")


def parse_label_columns(spec: str | None) -> dict:
    """The label options of `load_hf_dataset` from one line a visitor types: "valence, arousal" (1..7),
    "valence, arousal, 1-5" (another scale) or one name (a category column); empty means "valence, arousal"."""
    spec = text(spec, "the label columns", MAX_NAME_CHARS, required=False)
    parts = [part.strip() for part in spec.split(",") if part.strip()] or ["valence", "arousal"]
    if len(parts) == 1:
        return {"category": parts[0]}
    if len(parts) in (2, 3):
        out = {"valence": parts[0], "arousal": parts[1]}
        if len(parts) == 3:
            bounds = re.fullmatch(r"\s*(-?[\d.]+)\s*(?:-|to|\.\.)\s*(-?[\d.]+)\s*", parts[2])
            if not bounds:
                raise WorkspaceError("write the label scale as low-high, for example 1-5")
            out["scale"] = (float(bounds.group(1)), float(bounds.group(2)))
        return out
    raise WorkspaceError("give the label columns as: valence, arousal (optionally a scale such as 1-5), or one "
                         "category column")


def _corpus_folder(folder: Path, listed: Manifest) -> CollectionSource:
    """A folder of audio as a collection: read with its corpus's labels (category proxies, see
    `emorank.data.proxies`) when its file names are those of a corpus the command line reads (RAVDESS, CREMA-D,
    EmoDB, TESS), else unlabelled. Only the files `listed` (bounded, confined) are kept."""
    from emorank.data.acted import recognise_corpus
    from emorank.data.corpora import load_corpus
    from emorank.data.manifest import ManifestError

    corpus = recognise_corpus(listed.path)
    if corpus is not None:
        try:
            labelled = load_corpus(corpus, folder, check_files=False)
        except ManifestError as err:
            log.info("%s looked like %s but could not be read as it: %s", visible_name(folder), corpus, err)
        else:
            keep = set(listed.path)
            labelled = labelled.subset([i for i, f in enumerate(labelled.path) if os.path.realpath(f) in keep])
            if len(labelled):
                return CollectionSource("", labelled, True, f"{corpus_title(corpus)} folder {visible_name(folder)}",
                                        corpus)
    return CollectionSource("", listed, False, f"folder {visible_name(folder)}")


def _read_table(p: Path, labels: str | None) -> tuple[Manifest, str]:
    """A CSV as (manifest, origin): the generic manifest (path, valence, arousal, ...) when no label columns are
    named, else (or when it is not one) a labels table (`emorank.data.tables`): a file column with an emotion
    category (made valence-arousal by the corpus proxies) or with valence and arousal on a stated scale."""
    from emorank.data.manifest import ManifestError
    from emorank.data.tables import read_labels_table

    if not (labels or "").strip():
        try:
            return read_csv_manifest(p, check_files=False), f"manifest {p.name}"
        except (ManifestError, UnicodeDecodeError, OSError):
            pass  # not the generic format: read it as a labels table with the usual column names
    options = parse_label_columns(labels) if (labels or "").strip() else {}
    try:
        manifest, dropped = read_labels_table(p, check_files=False, **options)
    except (ManifestError, UnicodeDecodeError, OSError) as err:
        reason = str(err).split(": ", 1)[-1] if str(err).startswith(str(p)) else str(err)
        raise WorkspaceError(f"{p.name} could not be read as a manifest (path, valence, arousal) or as a labels "
                             f"table (a file column and an emotion column, or valence and arousal): {reason}"
                             ) from None
    how = ("emotion categories as valence-arousal proxies" if any(manifest.emotion) else
           "valence and arousal" + (f" rescaled from {options['scale'][0]:g}-{options['scale'][1]:g}"
                                    if "scale" in options else ""))
    skipped = f"; {dropped} row(s) whose category has no valence-arousal norm left out" if dropped else ""
    return manifest, f"labels table {p.name} ({how}{skipped})"


def corpus_title(corpus: str) -> str:
    """A corpus name as people write it (RAVDESS, CREMA-D, EmoDB, TESS; the demo corpus)."""
    return {"ravdess": "RAVDESS", "crema-d": "CREMA-D", "emodb": "EmoDB", "tess": "TESS", "iemocap": "IEMOCAP",
            "msp-podcast": "MSP-Podcast", "demo": "synthetic demo"}.get(corpus, corpus)


class CollectionsMixin:
    """The workspace's collections by name (used through :class:`~emorank.app.workspace.Workspace`)."""

    def collections(self) -> dict[str, CollectionSource]:
        with self._lock:
            return dict(self._collections)

    def source(self, name: str) -> CollectionSource:
        if not isinstance(name, str) or not name.strip():
            raise WorkspaceError(f"choose a collection (got {_shown(name)})")
        with self._lock:
            if name in self._collections:
                return self._collections[name]
        if name in (DEMO_TEST, DEMO_ALL) and not self.build.ready.is_set():
            state = self.build.snapshot()
            if state["error"]:
                raise WorkspaceError("the demo corpus could not be built on this server; add a collection instead")
            raise WorkspaceError(f"the demo corpus is still being prepared ({100 * state['fraction']:.0f}% done); "
                                 f"results appear here as soon as it is ready")
        raise WorkspaceError(f"there is no collection called {_shown(name)}; choose one from the list")

    def add_collection(self, path: str | os.PathLike, name: str | None = None, labels: str | None = None, *,
                       save: bool = True) -> CollectionSource:
        """Add a collection under `name` (default: its file or dataset name) and remember it (`save`) so that it
        comes back after a restart. `path` is one of:

        * a manifest CSV (labelled) or a folder of audio (unlabelled) on the server;
        * a Hugging Face dataset folder on the server (parquet files with an Audio column, a `save_to_disk`
          folder or an audiofolder), or a Hub dataset id ("owner/name", when the server has a network);
          `labels` names its label columns (see `parse_label_columns`).

        Server paths, and every clip they name, must lie inside `local_roots` (symbolic links resolved); refusals
        and errors name the file, never the folders above it, and never quote the file's contents."""
        if name is not None and not isinstance(name, str):
            raise WorkspaceError("the collection name must be text")
        raw = str(path).strip() if isinstance(path, (str, os.PathLike)) else ""
        if not raw:
            raise WorkspaceError("give a manifest CSV, a folder of audio or a Hugging Face dataset")
        hub_id = bool(_HUB_ID.match(raw)) and not raw.startswith(".")
        p = None
        if self.allow_local_paths:
            try:  # confinement first: nothing is said about what exists outside the allowed folders
                p = confine(raw, self.local_roots, "path of a manifest CSV or of a folder of audio files")
            except WorkspaceError:
                if not hub_id:
                    raise
        if p is not None and (p.exists() or not hub_id):
            source = self._local_source(p, labels)
            label, definition = str(name or p.stem or p.name), {"path": str(p)}
        elif hub_id and self.hub_datasets:
            source = self._dataset_source(raw, labels, f"Hugging Face dataset {raw}")
            label, definition = str(name or raw), {"hub": raw}
        elif hub_id:
            raise WorkspaceError("this server cannot reach the Hugging Face Hub; ask its operator to add the dataset")
        elif self.hub_datasets:
            raise WorkspaceError("adding collections from server paths is disabled on this server; give a Hugging "
                                 "Face dataset id (owner/name) instead")
        else:
            raise WorkspaceError("adding collections from server paths is disabled on this server")
        label = " ".join(label.split())[:60]
        with self._lock:
            if len(self._collections) >= MAX_COLLECTIONS:
                raise WorkspaceError(f"this app holds at most {MAX_COLLECTIONS} collections; remove one first (choose "
                                     f"it and press Remove under Add a collection, or call remove_collection)")
            source.name = _unique(label, self._collections)
            self._collections[source.name] = source
            if save:
                self._definitions = [d for d in self._definitions if d["name"] != source.name]
                self._definitions.append({"name": source.name, "labels": labels or "", **definition})
                self._save_definitions()
        return source

    def remove_collection(self, name: str) -> None:
        """Forget a collection added by `add_collection` (the demo collections stay): it leaves the lists, its
        indexes leave memory and its definition leaves the saved file, so it does not come back after a restart.
        No file is touched. Allowed where adding is (server paths or Hub datasets)."""
        if not (self.allow_local_paths or self.hub_datasets):
            raise WorkspaceError("collections cannot be added or removed on this server")
        if not isinstance(name, str) or not name.strip():
            raise WorkspaceError(f"choose the collection to remove (got {_shown(name)})")
        if name in (DEMO_TEST, DEMO_ALL):
            raise WorkspaceError("the demo collections cannot be removed; choose one that was added")
        with self._lock:
            if name not in self._collections:
                raise WorkspaceError(f"there is no collection called {_shown(name)}; choose one from the list")
            del self._collections[name]
            for key in [k for k in self._indexes if k[-1] == name]:
                del self._indexes[key]
            self._definitions = [d for d in self._definitions if d.get("name") != name]
            self._save_definitions()

    def _local_source(self, p: Path, labels: str | None) -> "CollectionSource":

        files = scan_folder(p) if p.is_dir() else []  # bounded in entries and time: "/" is answered at once
        dataset = any((p / m).is_file() for m in DATASET_MARKERS) or any(f.suffix == ".parquet" for f in files)
        if p.is_dir() and dataset:
            for meta in [f for f in files if f.name in ("metadata.csv", "metadata.jsonl")]:
                self._confine_metadata(meta)
            return self._dataset_source(str(p), labels, f"dataset folder {p.name}")
        if p.is_dir():
            return _corpus_folder(p, folder_manifest(p, roots=self.local_roots, files=files))
        if p.is_file() and p.suffix.lower() == ".csv":
            manifest, origin = _read_table(p, labels)
            outside = sum(not any(_inside(os.path.realpath(f), r) for r in self.local_roots) for f in manifest.path)
            if outside:
                raise WorkspaceError(f"{p.name} names {outside} clip(s) outside the folders this server allows")
            missing = sum(not os.path.isfile(f) for f in manifest.path)
            if missing:
                raise WorkspaceError(f"{p.name}: {missing} of its {len(manifest)} audio files are missing")
            return CollectionSource("", manifest, True, origin)
        if p.exists():
            raise WorkspaceError(f"{p.name} is neither a folder of audio, a dataset folder nor a manifest .csv file")
        raise WorkspaceError(f"{p.name} does not exist")

    def _confine_metadata(self, meta: Path) -> None:
        """An audiofolder's metadata may name files anywhere: every one must lie inside the allowed folders."""
        import pandas as pd

        try:
            frame = (pd.read_csv(meta, dtype=str, keep_default_na=False) if meta.suffix == ".csv"
                     else pd.read_json(meta, lines=True, dtype=False))
        except (ValueError, OSError):
            raise WorkspaceError(f"{meta.name} cannot be read as a dataset's metadata table") from None
        files = [os.path.realpath(meta.parent / str(f)) for f in frame.get("file_name", [])]
        if any(not any(_inside(f, r) for r in self.local_roots) for f in files):
            raise WorkspaceError(f"{meta.name} names audio files outside the folders this server allows")

    def _dataset_source(self, source: str, labels: str | None, origin: str) -> "CollectionSource":
        """A Hugging Face dataset (Hub id or local folder), its audio decoded once under the data folder."""
        from emorank.data.hf import load_hf_dataset
        from emorank.data.manifest import ManifestError

        options = parse_label_columns(labels)
        try:
            manifest = load_hf_dataset(source, cache_dir=self.assets.data_dir / "datasets", progress=False, **options)
        except ManifestError as err:
            log.warning("dataset %s refused: %s", source, err)
            cols = " and ".join(v for k, v in options.items() if k != "scale")
            raise WorkspaceError(f"that dataset could not be read with the label column(s) {cols}; check the column "
                                 f"names (for example: valence, arousal, 1-5, or one emotion column)") from None
        except (OSError, ValueError) as err:
            log.warning("dataset %s could not be loaded: %s", source, err)
            raise WorkspaceError("that dataset could not be loaded; check its name, or that it has an audio "
                                 "column") from None
        if len(manifest) == 0:
            raise WorkspaceError("that dataset has no clip that could be decoded")
        return CollectionSource("", manifest, True, origin)

    # ----------------------------------------------------------------------------- persistence
    @property
    def definitions_path(self) -> Path:
        return self.assets.data_dir / COLLECTIONS_FILE

    def _save_definitions(self) -> None:
        import json

        path = self.definitions_path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._definitions, indent=2))
        os.replace(tmp, path)

    def restore_collections(self) -> list[str]:
        """Re-add the collections saved by `add_collection` (their definitions, never copies), each checked again
        against today's rules (server paths only when allowed and inside `local_roots`, Hub ids only with a
        network); those refused are logged and kept in the file for a later start. Returns the names restored."""
        import json

        try:
            saved = json.loads(self.definitions_path.read_text()) if self.definitions_path.is_file() else []
        except (OSError, ValueError):
            log.warning("%s is unreadable; no saved collections restored", COLLECTIONS_FILE)
            return []
        restored = []
        for item in saved if isinstance(saved, list) else []:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                continue
            with self._lock:
                self._definitions = [d for d in self._definitions if d["name"] != item["name"]] + [item]
                if item["name"] in self._collections:
                    continue
            try:
                source = self.add_collection(item.get("path") or item.get("hub") or "", item["name"],
                                             item.get("labels") or None, save=False)
            except (WorkspaceError, ValueError, OSError) as err:
                log.warning("saved collection %r not restored: %s", item["name"], err)
                continue
            restored.append(source.name)
        return restored

    def allowed_roots(self) -> list[str]:
        """Folders whose files the server may serve: those holding the collections' clips (and nothing else)."""
        return sorted({f for s in self.collections().values() for f in clip_folders(s.manifest)})
