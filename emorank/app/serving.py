"""How files reach the browser: audio players for clips (only from folders the server was launched to serve),
opaque links to those clips for the JSON API (:class:`ClipLinks`), progress callbacks, ZeroGPU's optional
decorator, and the per-process output folders for figures and reports (swept when their owner process is gone).
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import mimetypes
import os
import secrets
import tempfile
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Callable

import gradio as gr
from emorank.app.bounds import AUDIO_SUFFIXES
from emorank.app.workspace import Workspace
from emorank.model.atomic import pid_alive

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


CLIP_ROUTE = "/gradio_api/emorank-clip"  # under /gradio_api: Gradio's Node front (SSR, Spaces) forwards it to Python
MAX_CLIP_LINKS = 65536  # links a process remembers (least recently handed out dropped first; ~10 MB)


class ClipLinks:
    """Opaque, per-process links to the clips a server serves, for answers that leave the server (the JSON API,
    MCP): `url(path)` gives "/gradio_api/emorank-clip/<token>.wav", where the token is a keyed hash (HMAC-SHA256
    with a key drawn at start) of the clip's real path, so no answer names a server folder and tokens cannot be
    guessed or carried to another process. `mount(app)` serves the links on a launched app.

    Only files under `roots` (resolved folders, the ones the server was launched to serve) get a link, and a link
    is checked against them again when it is fetched. At most `max_links` links are remembered."""

    def __init__(self, roots: list[str], max_links: int = MAX_CLIP_LINKS) -> None:
        self.roots = roots
        self.max_links = max_links
        self._key = secrets.token_bytes(32)
        self._links: OrderedDict[str, str] = OrderedDict()  # token -> real path
        self._lock = threading.Lock()

    def url(self, path: str | os.PathLike) -> str | None:
        """The app-relative URL of a clip under the served roots (None for any other file)."""
        real = os.path.realpath(path)
        if not _under(real, self.roots):
            return None
        suffix = Path(real).suffix.lower()
        digest = hmac.new(self._key, os.fsencode(real), hashlib.sha256).hexdigest()[:32]
        token = digest + (suffix if suffix in AUDIO_SUFFIXES else "")
        with self._lock:
            self._links[token] = real
            self._links.move_to_end(token)
            while len(self._links) > self.max_links:
                self._links.popitem(last=False)
        return f"{CLIP_ROUTE}/{token}"

    def path(self, token: str) -> str | None:
        """The file behind a token, when it is still under the served roots and exists; else None."""
        with self._lock:
            real = self._links.get(token)
        if real is None or not _under(real, self.roots) or not os.path.isfile(real):
            return None
        return real

    def __len__(self) -> int:
        return len(self._links)

    def mount(self, app) -> None:
        """Serve `CLIP_ROUTE/<token>` (GET and HEAD, byte ranges) on a launched app (a FastAPI app)."""
        from starlette.responses import FileResponse, Response

        def clip(token: str):
            real = self.path(token)
            if real is None:
                return Response("no such clip", status_code=404, media_type="text/plain")
            media = mimetypes.guess_type(token)[0] or "application/octet-stream"
            return FileResponse(real, media_type=media, filename=token, content_disposition_type="inline",
                                headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=3600"})

        app.add_api_route(f"{CLIP_ROUTE}/{{token}}", clip, methods=["GET", "HEAD"], include_in_schema=False)


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
                stale = not pid_alive(int(owner.read_text().strip() or 0))
            else:
                stale = time.time() - folder.stat().st_mtime > STALE_SECONDS
        except (OSError, ValueError):
            continue
        if stale and folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


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
