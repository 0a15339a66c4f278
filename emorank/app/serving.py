"""How files reach the browser: audio players for clips (only from folders the server was launched to serve),
progress callbacks, ZeroGPU's optional decorator, and the per-process output folders for figures and reports
(swept when their owner process is gone).
"""
from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Callable

import gradio as gr
from emorank.app.workspace import Workspace

log = logging.getLogger(__name__)


def gpu(fn: Callable | None = None, **kwargs) -> Callable:
    """`spaces.GPU` on a Hugging Face ZeroGPU Space, a no-op everywhere else."""
    try:
        import spaces  # type: ignore[import-not-found]
    except ImportError:
        spaces = None

    def wrap(f: Callable) -> Callable:
        return spaces.GPU(**kwargs)(f) if spaces is not None else f
    return wrap(fn) if fn is not None else wrap


def _progress_fn(progress: gr.Progress | None, desc: str) -> Callable[[int, int], None] | bool:
    if progress is None:
        return False
    return lambda done, total: progress(done / max(total, 1), desc=f"{desc} {done}/{total}")


def _player(path: str | None, label: str, served: list[str]) -> dict:
    """An audio player update: a file under a served root is played from there; others are decoded and sent as
    a waveform (so the server never has to serve a folder it was not launched with)."""
    if path is None:
        return gr.update(value=None, visible=False)
    if _under(path, served):
        return gr.update(value=path, label=label, visible=True)
    from emorank.data.audio import load_audio
    return gr.update(value=(16000, load_audio(path, max_seconds=None)), label=label, visible=True)


def _under(path: str, roots: list[str]) -> bool:
    """Whether `path` (symbolic links resolved) lies inside one of `roots` (already resolved)."""
    real = os.path.realpath(path)
    return any(os.path.commonpath([real, root]) == root for root in roots)


OUTPUT_PREFIX = "emorank-app-"
MAX_OUTPUTS = 32  # request folders (maps, evaluation reports) kept in a Handlers' output folder
OWNER_FILE = "owner.pid"
STALE_SECONDS = 24 * 3600  # a folder without an owner file (older versions) is stale after a day


def app_output_dir(parent: str | os.PathLike | None = None) -> Path:
    """A fresh `emorank-app-*` folder for this process's figures and downloads: stale ones (left by processes that
    died, see `sweep_output_dirs`) are removed first, and this one is removed when the process exits."""
    import atexit
    import shutil

    sweep_output_dirs(parent)
    out = Path(tempfile.mkdtemp(prefix=OUTPUT_PREFIX, dir=parent))
    (out / OWNER_FILE).write_text(str(os.getpid()))
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    return out


def sweep_output_dirs(parent: str | os.PathLike | None = None) -> list[Path]:
    """Remove the `emorank-app-*` folders in `parent` (default: the temp dir) whose owner process is gone (or,
    without an owner file, that are older than a day); returns them. Folders of running apps are kept."""
    import shutil

    removed = []
    for folder in Path(parent or tempfile.gettempdir()).glob(f"{OUTPUT_PREFIX}*"):
        try:
            owner = folder / OWNER_FILE
            if owner.is_file():
                stale = not _alive(int(owner.read_text().strip() or 0))
            else:
                stale = time.time() - folder.stat().st_mtime > STALE_SECONDS
        except (OSError, ValueError):
            continue
        if stale and folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name)


class _private_cache:
    """A FeatureCache connection of its own for a long job (evaluation), closed afterwards."""

    def __init__(self, ws: Workspace) -> None:
        self.path = ws.assets.cache_path

    def __enter__(self):
        from emorank.encoders.cache import FeatureCache
        self.cache = FeatureCache(self.path)
        return self.cache

    def __exit__(self, *exc) -> None:
        self.cache.close()
