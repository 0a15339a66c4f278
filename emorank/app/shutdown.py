"""Background threads that run torch (a training job, the demo's build and warm-up) end before Python does.

A daemon thread still inside torch's C++ when the interpreter finalises is stopped mid-frame, and the process
aborts ("terminate called without an active exception", "FATAL: exception not rethrown", exit status 134) instead
of exiting on Ctrl-C. So a front end registers each such thread with a way to stop it; at exit (after the main
thread has finished, before finalisation) each is asked to stop and joined, within a bound:

    finish_before_exit(thread, stop=jobs.stop, timeout=60)   # the job saves its best checkpoint, then ends

Nothing happens at import; the exit hook is installed by the first registration.
"""
from __future__ import annotations

import atexit
import logging
import threading
import time
from typing import Callable

log = logging.getLogger(__name__)

_lock = threading.Lock()
_threads: list[tuple[threading.Thread, Callable[[], object] | None, float]] = []
_installed = False


def finish_before_exit(thread: threading.Thread, stop: Callable[[], object] | None = None,
                       timeout: float = 30.0) -> None:
    """At interpreter exit, call `stop()` and join `thread` for at most `timeout` seconds (threads that ended
    before are forgotten)."""
    global _installed
    with _lock:
        _threads[:] = [t for t in _threads if t[0].is_alive()]
        _threads.append((thread, stop, timeout))
        if not _installed:
            atexit.register(_finish)
            _installed = True


def _finish() -> None:
    with _lock:
        pending = [t for t in _threads if t[0].is_alive()]
        _threads.clear()
    for _, stop, _ in pending:  # ask every thread first, so they wind down together
        if stop is not None:
            try:
                stop()
            except Exception as err:  # noqa: BLE001 - exiting anyway
                log.warning("stopping a background thread at exit failed: %s", err)
    for thread, _, timeout in pending:
        deadline = time.monotonic() + timeout
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            log.warning("background thread %s did not end within %.0f s of exit", thread.name, timeout)
