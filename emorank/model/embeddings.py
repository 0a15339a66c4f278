"""Audio files -> joint-space embeddings file: what ``python -m emorank encode`` writes.

    result = encode_files(model, ["a.wav", "b.wav"])           # EncodedFiles: embeddings [N, D], files, skipped
    write_embeddings("emb.npz", result.embeddings, result.files, checkpoint="emotionrankclap")
    emb, files, meta = read_embeddings("emb.npz")

Two formats, chosen by the file name, neither of which can run code when read:

* ``.npz``: arrays ``embeddings`` [N, D] float32 and ``files`` [N] (unicode strings), ``meta`` (a JSON string);
  written and read with ``allow_pickle=False`` (``np.load(path, allow_pickle=False)`` works too);
* ``.safetensors``: the tensor ``embeddings``; ``files`` and the rest in the header's metadata (JSON strings).

Each embedding is ``model.encode_audio`` of one file: L2-normalised, with the checkpoint's global normalisation
statistics (no per-speaker statistics, so a file's embedding does not depend on the other files listed, beyond
float32 rounding). Files that cannot be encoded (unreadable, silent, too long, ...) are skipped, each with its
reason. The file is written atomically (a temporary file beside it, then renamed), so an interrupted run never
leaves half a file.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

FORMATS = (".npz", ".safetensors")


class EmbeddingsFileError(ValueError):
    """An embeddings file that cannot be written or read as asked; the message says why."""


@dataclass
class EncodedFiles:
    """Embeddings [N, D] of the files that could be encoded, in the order given, and the others with reasons."""

    embeddings: np.ndarray  # [N, D] float32, L2-normalised
    files: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)


def check_format(path: str | os.PathLike) -> str:
    """The format of an embeddings file name (".npz" or ".safetensors"), else EmbeddingsFileError."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise EmbeddingsFileError(f"an embeddings file ends in {' or '.join(FORMATS)} (got {Path(path).name!r})")
    return suffix


def encode_files(model, files: Sequence[str | os.PathLike], batch_size: int = 32,
                 max_seconds: float | None = 60.0, progress: Callable[[int, int], None] | None = None
                 ) -> EncodedFiles:
    """`model.encode_audio` of each file, `batch_size` files at a time; unreadable files skipped with reasons.

    `progress(done, total)` is called after each batch."""
    from emorank.data.audio import AudioError

    files = [str(f) for f in files]
    kept: list[str] = []
    parts: list[np.ndarray] = []
    skipped: list[tuple[str, str]] = []
    for start in range(0, len(files), batch_size):
        batch = files[start:start + batch_size]
        try:
            parts.append(model.encode_audio(batch, max_seconds=max_seconds))
            kept += batch
        except AudioError:  # find which files: one at a time
            for f in batch:
                try:
                    parts.append(model.encode_audio([f], max_seconds=max_seconds))
                    kept.append(f)
                except AudioError as err:
                    skipped.append((f, err.reason))
        if progress is not None:
            progress(min(start + batch_size, len(files)), len(files))
    dim = int(getattr(getattr(model, "config", None), "embed_dim", 0) or 0)
    emb = np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, dim), np.float32)
    return EncodedFiles(emb, kept, skipped)


def write_embeddings(path: str | os.PathLike, embeddings: np.ndarray, files: Sequence[str], **meta) -> Path:
    """Write embeddings [N, D] and their N file names to `path` (.npz or .safetensors) atomically.

    `meta`: JSON-serialisable facts stored beside them (e.g. the checkpoint's name)."""
    path = Path(path)
    fmt = check_format(path)
    emb = np.ascontiguousarray(embeddings, dtype=np.float32)
    files = [str(f) for f in files]
    if emb.ndim != 2 or emb.shape[0] != len(files):
        raise EmbeddingsFileError(f"need embeddings [N, D] for N files, got shape {emb.shape} for {len(files)} files")
    info = json.dumps(meta, sort_keys=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if fmt == ".npz":
                np.savez(f, embeddings=emb, files=np.asarray(files, dtype=str).reshape(len(files)),
                         meta=np.asarray(info))
            else:
                from safetensors.numpy import save

                f.write(save({"embeddings": emb}, metadata={"files": json.dumps(files), "meta": info}))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would make the file private
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_embeddings(path: str | os.PathLike) -> tuple[np.ndarray, list[str], dict]:
    """(embeddings [N, D] float32, file names, meta) from a file `write_embeddings` wrote; never unpickles."""
    path = Path(path)
    fmt = check_format(path)
    if fmt == ".npz":
        with np.load(path, allow_pickle=False) as data:
            return data["embeddings"], data["files"].tolist(), json.loads(str(data["meta"]))
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        header = f.metadata() or {}
        return f.get_tensor("embeddings"), json.loads(header.get("files", "[]")), json.loads(header.get("meta", "{}"))
