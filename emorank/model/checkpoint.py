"""The checkpoint folder: file names, the format version, :class:`CheckpointError` and reading ``config.json``.

A checkpoint is a folder with ``heads.safetensors`` (the trainable heads and the temperature) and ``config.json``
(encoder names, dims and fingerprints, normalisation statistics, the system, training config, git revision,
metrics); :meth:`emorank.model.core.EmotionRankCLAP.from_checkpoint` rebuilds the model from it alone.
"""

import json
import os
import subprocess
from pathlib import Path

import numpy as np

CHECKPOINT_FORMAT = "emorank-checkpoint"
# Fingerprint entries that only record a package version: a checkpoint stays usable across such upgrades (the
# feature cache, keyed by the full fingerprint, still recomputes); every other entry (model, weights hash, layer,
# pooling, sample rate, ...) must match for the heads to make sense of the features.
VERSION_ONLY_KEYS = ("opensmile", "transformers")
CHECKPOINT_VERSION = 1
HEADS_FILE = "heads.safetensors"
CONFIG_FILE = "config.json"


class CheckpointError(ValueError):
    """A checkpoint folder is missing, corrupt, or does not match the configuration it is used with."""

def fingerprint_identity(fingerprint: str) -> str:
    """An encoder fingerprint without the entries that only record a package version (VERSION_ONLY_KEYS)."""
    return "|".join(part for part in fingerprint.split("|") if part.split("=", 1)[0] not in VERSION_ONLY_KEYS)


def read_checkpoint_config(path: str | os.PathLike) -> dict:
    """The parsed config.json of a checkpoint folder, after format checks."""
    path = Path(path)
    cfg_file = path / CONFIG_FILE
    if not path.is_dir():
        raise CheckpointError(f"checkpoint {path} not found (expected a folder with {HEADS_FILE} and {CONFIG_FILE})")
    if not cfg_file.is_file():
        raise CheckpointError(f"{path} is not an emorank checkpoint: {CONFIG_FILE} is missing")
    try:
        config = json.loads(cfg_file.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{cfg_file} is corrupt: {err}") from err
    if config.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not an emorank checkpoint (format {config.get('format')!r})")
    if config.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path} has checkpoint version {config.get('version')}, this emorank reads "
                              f"version {CHECKPOINT_VERSION}")
    return config


def git_revision() -> str:
    """The current git commit of the emorank source tree, or "" outside a repository."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def _as_list(x) -> list:
    if isinstance(x, (str, os.PathLike)) or (isinstance(x, np.ndarray) and x.ndim == 1):
        return [x]
    return list(x)


def _json_default(obj):
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} into a checkpoint config")
