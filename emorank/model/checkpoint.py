"""The checkpoint folder: file names, the format version, :class:`CheckpointError`, reading and checking
``config.json`` (every field emorank reads has the JSON type it expects, or the error names the field), listing the
checkpoints of some folders (a bad folder is skipped with one warning line), and recovering a save that was killed.

A checkpoint is a folder with ``heads.safetensors`` (the trainable heads and the temperature) and ``config.json``
(encoder names, dims and fingerprints, normalisation statistics, the system, training config, git revision,
metrics); :meth:`emorank.model.core.EmotionRankCLAP.from_checkpoint` rebuilds the model from it alone.
"""

import dataclasses
import json
import logging
import os
import re
import subprocess
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from emorank.model import atomic

CHECKPOINT_FORMAT = "emorank-checkpoint"
# Fingerprint entries that only record a package version: a checkpoint stays usable across such upgrades (the
# feature cache, keyed by the full fingerprint, still recomputes); every other entry (model, weights hash, layer,
# pooling, sample rate, ...) must match for the heads to make sense of the features.
VERSION_ONLY_KEYS = ("opensmile", "transformers")
CHECKPOINT_VERSION = 1
HEADS_FILE = "heads.safetensors"
CONFIG_FILE = "config.json"
# Bounds on the sizes a checkpoint's config may ask for, checked before anything is allocated: frozen-encoder
# feature widths (eGeMAPS 88, MiniLM 384, WavLM 1024, ...) and the joint space (paper: 512).
MAX_FEATURE_DIM = 1 << 16
MAX_EMBED_DIM = 1 << 13
MAX_CONFIG_BYTES = 16 << 20  # emorank writes a few kB (normaliser statistics, training history)

log = logging.getLogger(__name__)


class CheckpointError(ValueError):
    """A checkpoint folder is missing, corrupt, or does not match the configuration it is used with."""


NORMALISER_MODES = ("speaker", "global", "utterance", "none")  # see emorank.model.core.FeatureNormaliser


@dataclass
class ModelConfig:
    """Everything needed to rebuild the model; saved inside every checkpoint."""

    audio_encoder: str = "egemaps"
    text_encoder: str = "minilm"
    audio_encoder_kwargs: dict = field(default_factory=dict)
    text_encoder_kwargs: dict = field(default_factory=dict)
    audio_dim: int = 88
    text_dim: int = 384
    embed_dim: int = 512  # paper: D = 512
    temperature_init: float = 1.0  # paper: learnable temperature initialised at 1.0
    max_logit_scale: float = 100.0  # CLIP practice: the scale 1/tau is clamped to at most 100
    audio_fingerprint: str = ""  # encoder fingerprints, checked against feature caches
    text_fingerprint: str = ""

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise CheckpointError(f"unknown model config keys {unknown}; this checkpoint comes from another version")
        return cls(**data)


def fingerprint_identity(fingerprint: str) -> str:
    """An encoder fingerprint without the entries that only record a package version (VERSION_ONLY_KEYS)."""
    return "|".join(part for part in fingerprint.split("|") if part.split("=", 1)[0] not in VERSION_ONLY_KEYS)


def read_checkpoint_config(path: str | os.PathLike) -> dict:
    """The parsed config.json of a checkpoint folder, after format and shape checks.

    Any config.json that is not what emorank writes (not UTF-8 JSON, not an object, a field of the wrong JSON type,
    too large) raises :class:`CheckpointError` naming the problem, never another exception."""
    path = Path(path)
    recover_checkpoint(path)
    cfg_file = path / CONFIG_FILE
    if not path.is_dir():
        raise CheckpointError(f"checkpoint {path} not found (expected a folder with {HEADS_FILE} and {CONFIG_FILE})")
    if not cfg_file.is_file():
        raise CheckpointError(f"{path} is not an emorank checkpoint: {CONFIG_FILE} is missing")
    try:
        if cfg_file.stat().st_size > MAX_CONFIG_BYTES:
            raise CheckpointError(f"{cfg_file} is larger than {MAX_CONFIG_BYTES >> 20} MiB; emorank writes a few "
                                  "kilobytes there, so it is not an emorank checkpoint config")
        config = json.loads(cfg_file.read_bytes().decode("utf-8"))
    except OSError as err:
        raise CheckpointError(f"cannot read {cfg_file}: {err.strerror or err}") from err
    except (ValueError, RecursionError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise CheckpointError(f"{cfg_file} is corrupt: {str(err)[:200]}") from err
    if not isinstance(config, dict):
        raise CheckpointError(f"{cfg_file} holds a JSON {_json_kind(config)}, not an object; it is not an emorank "
                              "checkpoint config")
    if config.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not an emorank checkpoint (format {_short(config.get('format'))})")
    if config.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path} has checkpoint version {_short(config.get('version'))}, this emorank reads "
                              f"version {CHECKPOINT_VERSION}")
    problem = _config_shape_problem(config)
    if problem:
        raise CheckpointError(f"checkpoint {path} has an invalid config.json: {problem}")
    return config


def recover_checkpoint(path: str | os.PathLike) -> None:
    """Finish or clean up what a killed :meth:`EmotionRankCLAP.save` of ``path`` left beside it.

    Killed between the two renames of a save without atomic swap (``path`` missing): the new checkpoint, complete
    in its temporary folder, is moved into place (it was complete before the old one was moved away), else the
    old one is put back. Then every temporary folder of a dead save is removed. Saves still running (in this
    process or another live one) are left alone; so is everything when the folder cannot be written to."""
    path = Path(path)
    found = atomic.leftovers(path)
    legacy_old, legacy_tmp = _legacy_leftovers(path)
    if not found and not legacy_old:
        return
    try:
        if not os.path.lexists(path):
            olds = {x.tag for x in found if x.kind == "old"}
            candidates = [x.path for x in found if x.kind == "tmp" and x.tag in olds]  # complete new checkpoints
            candidates += [x.path for x in found if x.kind == "old"] + legacy_tmp[:1] + legacy_old
            if candidates:
                os.replace(candidates[0], path)
                log.warning("checkpoint %s: finished a save that was interrupted", path.name)
        for leftover in [*(x.path for x in found), *legacy_old, *legacy_tmp]:
            if os.path.lexists(leftover):
                atomic.remove(leftover)
    except OSError as err:  # a read-only folder, or another process got there first: nothing to do here
        log.debug("checkpoint %s: leftovers of an interrupted save not cleaned (%s)", path, err)


def _legacy_leftovers(path: Path) -> tuple[list[Path], list[Path]]:
    """The folders of a save interrupted under emorank 0.x's naming: ``.name.old-PID`` of a dead process, and the
    complete ``.name.XXXXXXXX`` temporary folder it left (there were no others once the old one was moved away);
    ``([], [])`` when there is no such old folder."""
    try:
        names = sorted(e.name for e in os.scandir(path.parent) if e.name.startswith(f".{path.name}."))
    except OSError:
        return [], []
    prefix = re.escape(f".{path.name}.")
    olds = [path.parent / n for n in names if (m := re.fullmatch(prefix + r"old-(\d+)", n))
            and not atomic.pid_alive(int(m[1]))]
    if not olds:
        return [], []
    tmps = [path.parent / n for n in names if re.fullmatch(prefix + r"[a-z0-9_]{8}", n)
            and (path.parent / n / HEADS_FILE).is_file() and (path.parent / n / CONFIG_FILE).is_file()]
    return olds, tmps


# JSON type of each field emorank reads from a checkpoint config (top level, "model", "normaliser", "system",
# "captions"); None among the types means the field may be null. A field not listed is saved and read back as is.
_NUMBER = (int, float)
_MODEL_FIELDS = {f.name: (dict,) if f.default_factory is not dataclasses.MISSING else
                 _NUMBER if isinstance(f.default, float) else (type(f.default),) for f in fields(ModelConfig)}
_NORMALISER_FIELDS = {"mode": (str,), "mean": (list, None), "std": (list, None), "min_speaker_rows": (int,)}
_TOP_FIELDS = {"model": (dict,), "normaliser": (dict,), "git_revision": (str, None), "system": (dict,),
               "captions": (dict,), "train": (dict,), "metrics": (dict,), "history": (list,), "stopped": (bool,),
               "dataset": (str, None), "data": (dict,), "license": (str, None), "licence": (str, None)}
_SYSTEM_FIELDS = {k: (str, None) for k in ("name", "title", "captions", "loss", "paper", "interpretation",
                                           "teacher")} | {"loss_kwargs": (dict,), "va_captions": (bool,)}
_CAPTION_FIELDS = {"builder": (str,), "seed": (int,)}
_REQUIRED = ("model", "normaliser")


def _config_shape_problem(config: dict) -> str | None:
    """What is wrong with the JSON types of a checkpoint config, or None."""
    for key in _REQUIRED:
        if key not in config:
            return f"the {key!r} section is missing"
    for where, node, spec in (("", config, _TOP_FIELDS), ("model.", config["model"], _MODEL_FIELDS),
                              ("normaliser.", config["normaliser"], _NORMALISER_FIELDS),
                              ("system.", config.get("system", {}), _SYSTEM_FIELDS),
                              ("captions.", config.get("captions", {}), _CAPTION_FIELDS)):
        if not isinstance(node, dict):
            continue  # reported at its parent
        for key, types in spec.items():
            if key in node and not _json_is(node[key], types):
                wanted = " or ".join(_JSON_NAMES[t] for t in types)
                return f"{where}{key} must be {wanted}, got a JSON {_json_kind(node[key])}"
    norm = config["normaliser"]
    if norm.get("mode") not in NORMALISER_MODES:
        return f"normaliser.mode must be one of {', '.join(NORMALISER_MODES)}, got {_short(norm.get('mode'))}"
    for key in ("mean", "std"):
        if isinstance(norm.get(key), list) and not all(_json_is(v, _NUMBER) for v in norm[key]):
            return f"normaliser.{key} must be a list of numbers"
    return None


_JSON_NAMES = {dict: "an object", list: "a list", str: "a string", int: "an integer", float: "a number",
               bool: "true or false", None: "null"}


def _json_is(value, types: tuple) -> bool:
    """Whether a parsed JSON value has one of these types (a bool is not a number; an int is a float)."""
    if value is None:
        return None in types
    if isinstance(value, bool):
        return bool in types
    return any(t is not None and isinstance(value, t) for t in types)


def _json_kind(value) -> str:
    for t, name in (((type(None),), "null"), ((bool,), "boolean"), ((dict,), "object"), ((list,), "list"),
                    ((str,), "string"), ((int, float), "number")):
        if isinstance(value, t):
            return name
    return type(value).__name__


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_warned: set[tuple[str, str]] = set()


def list_checkpoints(checkpoint_dirs: Sequence[str | os.PathLike] = (),
                     runs_dir: str | os.PathLike | None = None,
                     on_skip: Callable[[str, Path, str], None] | None = None) -> dict[str, Path]:
    """The valid checkpoints under some folders, by name: ``<dir>/<name>/`` for each of ``checkpoint_dirs`` (the
    first folder wins a name), then ``<runs_dir>/<run>/checkpoint/`` as ``"runs/<run>"``; sorted within each.

    A folder that holds a config.json but is no valid checkpoint (corrupt, wrong shape, another version) is
    left out with a one-line warning (logged once per folder and reason; or ``on_skip(name, folder, reason)``
    instead), so one bad folder never breaks a list. Hidden folders (a save's temporary folders) are never listed."""
    for d in checkpoint_dirs:  # a save killed between its renames leaves no config.json at the path: finish it
        for target in atomic.targets_with_leftovers(Path(d)):
            recover_checkpoint(target)
    if runs_dir is not None:
        for run in sorted(Path(runs_dir).glob("*/")):
            for target in atomic.targets_with_leftovers(run):
                recover_checkpoint(target)
    candidates = [(cfg.parent.name, cfg.parent) for d in checkpoint_dirs
                  for cfg in sorted(Path(d).glob(f"*/{CONFIG_FILE}"))]
    if runs_dir is not None:
        candidates += [(f"runs/{cfg.parent.parent.name}", cfg.parent)
                       for cfg in sorted(Path(runs_dir).glob(f"*/checkpoint/{CONFIG_FILE}"))]
    found: dict[str, Path] = {}
    for name, folder in candidates:
        if name in found or name.removeprefix("runs/").startswith("."):
            continue
        try:
            read_checkpoint_config(folder)
        except CheckpointError as err:
            if on_skip is not None:
                on_skip(name, folder, str(err))
            elif (str(folder), str(err)) not in _warned:
                _warned.add((str(folder), str(err)))
                log.warning("skipping checkpoint %s: %s", name, err)
            continue
        found[name] = folder.resolve()
    return found


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
