"""What one request may ask for, and where its paths may point: the bounds every handler's arguments pass
through (numbers, names, text, choices), path confinement, and who may add server folders (loopback only, by default).

Every handler is public (Gradio runs any of them by ``fn_index``), so the checks live here, in the library the
handlers call, not in the UI. Messages never contain absolute server paths or file contents.
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np

log = logging.getLogger(__name__)


REPO_DIR = Path(__file__).resolve().parents[2]  # emorank/app/bounds.py -> the repository
DEMO_N, DEMO_SEED = 1000, 0
DEMO_TEST, DEMO_ALL = "demo corpus · test split", "demo corpus · all splits"
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".au")
ANALYSE_MAX_SECONDS = 30.0  # uploads longer than this are refused (the encoders see 10 s anyway)
ANALYSE_MIN_SECONDS = 0.3
MAX_FOLDER_FILES = 5000
STRIP_VALUES = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0)  # the ordinal strip: one clip per step (paper, Figure 3)
ALL_LOCAL = (os.path.abspath(os.sep),)
SHIPPED_TEXT_FEATURES = REPO_DIR / "assets" / "caption-features.npz"  # see export_text_features  # `local_roots` for a private app: every folder the server's user can read

# What one request may ask for (a public app's visitors must not be able to make the server work for minutes).
MAX_HITS = 50  # clips returned by one search
MAX_ANALYSE_HITS = 20
MAX_QUERY_CHARS = 500  # a caption; longer text is truncated by the text encoders anyway
MAX_NAME_CHARS = 200  # a checkpoint, collection or run name
MAP_POINTS = (10, 2000)  # clips drawn in an embedding map
EVAL_TRIALS, EVAL_LISTS, MAX_EVAL_CHECKPOINTS = (2, 30), (10, 100), 4  # the paper's protocol: 30 trials, 100 lists
VA_RANGE = (1.0, 7.0)
MAX_COLLECTIONS = 64  # collections a workspace holds (each keeps its manifest and, once searched, an index)
MAX_RUNS = 200  # training runs kept in the runs folder; beyond that new runs are refused
MAX_SESSIONS = 128  # visitor sessions whose state Gradio keeps (about 0.7 MB each: every component's last value)
COLLECTIONS_FILE = "collections.json"  # under the data folder: the collections visitors added (definitions only)


class WorkspaceError(ValueError):
    """A checkpoint or collection name, path or request the workspace cannot serve; the message says why.

    Messages never contain absolute server paths or file contents: they are shown to the app's visitors."""


# ------------------------------------------------------------------------------------------- argument bounds
def _shown(value) -> str:
    """A caller's value as a message may quote it: short (at most 40 characters; numbers in a short form)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10 ** 15:
        return _short_int(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    try:
        text = repr(value)
    except ValueError:  # e.g. an int past Python's digit limit inside a container
        return f"a {type(value).__name__}"
    return text if len(text) <= 40 else text[:37] + "..."


def _short_int(value: int) -> str:
    """A large int in a short form: 1.23e+308, or "a 5000-digit number" past float's range."""
    try:
        return f"{float(value):.3g}"
    except OverflowError:
        digits = int(abs(value).bit_length() * 0.30103) + 1  # log10(2): about right, never a huge str()
        return f"a {'negative ' if value < 0 else ''}{digits}-digit number"


def _control_character(text_: str) -> str | None:
    """The first control character of `text_` as U+XXXX (tab, newline and carriage return are text), or None."""
    for c in text_:
        if (ord(c) < 32 and c not in "\t\n\r") or 127 <= ord(c) < 160:
            return f"U+{ord(c):04X}"
    return None


def whole(value, name: str, lo: int, hi: int) -> int:
    """`value` as an int in [lo, hi] (whole floats and numeric strings accepted), else WorkspaceError."""
    try:
        if isinstance(value, bool) or value is None:
            raise TypeError
        number_ = float(value)
        if not number_.is_integer():
            raise ValueError
        out = int(number_)
    except (TypeError, ValueError, OverflowError):
        raise WorkspaceError(f"{name} must be a whole number from {lo} to {hi} (got {_shown(value)})") from None
    if not lo <= out <= hi:
        raise WorkspaceError(f"{name} must be a whole number from {lo} to {hi} (got {_shown(out)})")
    return out


def number(value, name: str, lo: float, hi: float, *, open_low: bool = False) -> float:
    """`value` as a finite float in [lo, hi] ((lo, hi] with open_low), else WorkspaceError."""
    bounds = f"{'above' if open_low else 'from'} {lo:g} {'and up' if open_low else ''} to {hi:g}".replace("  ", " ")
    try:
        if isinstance(value, bool) or value is None:
            raise TypeError
        out = float(value)
    except (TypeError, ValueError, OverflowError):
        raise WorkspaceError(f"{name} must be a number {bounds} (got {_shown(value)})") from None
    if not (np.isfinite(out) and (lo < out if open_low else lo <= out) and out <= hi):
        raise WorkspaceError(f"{name} must be a number {bounds} (got {_shown(value)})")
    return out


def text(value, name: str, max_chars: int = MAX_QUERY_CHARS, required: bool = True) -> str:
    """`value` as a stripped string of at most `max_chars` characters (empty allowed unless required)."""
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise WorkspaceError(f"{name} must be text (got {_shown(value)})")
    out = value.strip()
    if required and not out:
        raise WorkspaceError(f"{name} is empty")
    control = _control_character(out)
    if control:
        raise WorkspaceError(f"{name} contains a control character ({control}); type plain text")
    if len(out) > max_chars:
        raise WorkspaceError(f"{name} must be at most {max_chars} characters of text (got {len(out)})")
    return out


def flag(value, name: str) -> bool:
    """`value` when it is a boolean (true or false); anything else ("yes", 1, None) is refused, never guessed."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise WorkspaceError(f"{name} must be true or false (got {_shown(value)})")


def choice(value, name: str, options) -> str:
    """`value` when it is one of `options` (strings), else WorkspaceError listing them."""
    options = list(options)
    if not isinstance(value, str) or value not in options:
        raise WorkspaceError(f"{name} must be one of {', '.join(options)} (got {_shown(value)})")
    return value


def names(value, name: str, max_items: int) -> list[str]:
    """A list of 1..max_items distinct names (strings); a single string counts as a list of one."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise WorkspaceError(f"{name} must be a list of names (got {_shown(value)})")
    out = list(dict.fromkeys(v for v in value if v.strip()))
    if not out:
        raise WorkspaceError(f"choose at least one of the {name}")
    if len(out) > max_items:
        raise WorkspaceError(f"choose at most {max_items} {name} at a time (got {len(out)})")
    return out


def confine(path, roots: Sequence[str], what: str = "path") -> Path:
    """The absolute path of `path`, symbolic links resolved, when it lies inside one of `roots` (resolved folders);
    WorkspaceError otherwise. Confinement is checked before existence, so a refusal says nothing about what exists
    outside the roots; messages name the file only (never the folders above it)."""
    if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
        raise WorkspaceError(f"give the {what}")
    raw = str(path).strip()
    if "\x00" in raw or len(raw) > 4096:
        raise WorkspaceError(f"that {what} is not allowed on this server")
    real = os.path.realpath(os.path.expanduser(raw))
    if not any(_inside(real, root) for root in roots):
        raise WorkspaceError(f"that {what} is outside the folders this server allows")
    return Path(real)


def _inside(real: str, root: str) -> bool:
    return real == root or real.startswith(os.path.join(root, ""))


def is_loopback(host: str | None) -> bool:
    """Whether a server bound to `host` can only be reached from this machine (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    if host is None or str(host).strip().lower() == "localhost":
        return host is not None
    try:
        return ipaddress.ip_address(str(host).strip().strip("[]")).is_loopback
    except ValueError:
        return False


def local_paths_policy(host: str | None, *, share: bool = False, opt_in: bool = False, opt_out: bool = False,
                       environ=os.environ) -> bool:
    """Whether an app may add collections from server paths: only when asked explicitly (`opt_in`), or by default
    when it listens on loopback only, is not shared through a tunnel and is not a Hugging Face Space."""
    if opt_out:
        return False
    if opt_in:
        return True
    public = share or environ.get("SPACE_ID") or environ.get("GRADIO_SHARE", "").lower() in ("1", "true")
    return is_loopback(host) and not public


def visible_name(path) -> str:
    """What a message may show of a server path: its last component."""
    return Path(str(path)).name or "(root)"


def _clean_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(name).strip()).strip(".-")[:60]


def _unique(name: str, taken) -> str:
    out, i = name, 2
    while out in taken:
        out, i = f"{name}-{i}", i + 1
    return out


# The app's own limits for visitors (the Gradio tabs).
MAX_K = 8  # audio players in the Explore tab
ANALYSE_K = 5
NONE = "(none)"
# Analyse's default, first found first: the Whisper head (docs/results-whisper.md; skipped where its weight wheels
# are not installed), then the eGeMAPS heads (the small option).
REAL_SPEECH_DEFAULTS = ("emotionrankclap-plus-ravdess-whisper", "emotionrankclap-plus-ravdess", "emotionrankclap-ravdess")
MAP_METHODS, MAP_COLOURS, SPLITS = ("pca", "umap"), ("modality", "valence", "arousal"), ("test", "dev", "train")
# The Train tab's limits for visitors (tighter than the trainer's own: a public app shares one machine).
MAX_EPOCHS, MAX_BATCH_SIZE = 500, 4096
