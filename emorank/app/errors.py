"""Library errors -> messages a visitor can read: :func:`friendly` turns every exception a handler raises into a
``gr.Error`` whose text names no server path and shows no file contents (:func:`scrub`); unexpected errors are
logged with their traceback on the server and shown as one short sentence.
"""
from __future__ import annotations

import functools
import logging
import re
import traceback
from typing import Callable

import gradio as gr
from emorank.app.bounds import ANALYSE_MAX_SECONDS, ANALYSE_MIN_SECONDS, visible_name

from emorank.app.jobs import JobBusyError

log = logging.getLogger(__name__)


def public_message(err: Exception) -> str:
    """One sentence a visitor can act on, for a library error: no server paths (a file is named by its last
    component), no file contents, no parameter names of the Python API."""
    from emorank.data.audio import (AudioError, AudioLengthError, SampleRateError, SilentAudioError,
                                    TruncatedAudioError)
    from emorank.data.manifest import ManifestError
    from emorank.model.checkpoint import CheckpointError

    if isinstance(err, AudioError):
        name = visible_name(err.path)
        if isinstance(err, SilentAudioError):
            return f"{name}: silent audio, there is no speech to analyse; record or upload a clip with speech"
        if isinstance(err, AudioLengthError) and "too long" in err.reason:
            return f"{name}: too long; upload a clip of at most {ANALYSE_MAX_SECONDS:g} s (trim it first)"
        if isinstance(err, AudioLengthError):
            return f"{name}: too short; upload a clip of at least {ANALYSE_MIN_SECONDS:g} s of speech"
        reason = scrub(" ".join(str(err.reason).split()))[:300]  # the library's own sentence: rate, truncation, NaN
        if isinstance(err, SampleRateError):  # it says what to do (convert to a usual rate)
            return f"{name}: {reason}"
        if isinstance(err, TruncatedAudioError):
            return f"{name}: {reason}; upload the complete file"
        if reason.startswith(("not a readable audio file", "could not decode")):
            return f"{name}: {reason}; upload a WAV, FLAC, OGG or MP3 file"
        return f"{name}: {reason}; upload another recording"  # NaN samples, a broken header: a bad file
    if isinstance(err, CheckpointError):
        return "this checkpoint cannot be used here (its files are incomplete or do not match the encoders); " \
               "choose another one"
    if isinstance(err, ManifestError):
        return "the collection's manifest is not valid; check it with `python -m emorank` before adding it"
    return scrub(str(err))


_ABSOLUTE_PATH = re.compile(r"(?<![\w.:])(?:/[^\s/'\"`,;:()\[\]]+)+/?")


def scrub(message: str) -> str:
    """`message` with every absolute path replaced by its last component (the server's layout stays private)."""
    return _ABSOLUTE_PATH.sub(lambda m: visible_name(m.group(0).rstrip("/")), message)


def friendly(fn: Callable) -> Callable:
    """Show known failures as a readable gr.Error (no traceback); log anything unexpected with its traceback.

    Raising leaves every output as it was, so nothing the user did is lost."""
    def convert(err: Exception) -> gr.Error:
        if isinstance(err, gr.Error):
            return err
        if isinstance(err, (ValueError, JobBusyError, FileNotFoundError)):
            return gr.Error(public_message(err), print_exception=False)
        log.error("unexpected error in %s:\n%s", fn.__name__, traceback.format_exc())
        return gr.Error(f"unexpected error ({type(err).__name__}); the server log has the details",
                        print_exception=False)

    if _is_generator(fn):
        @functools.wraps(fn)
        def gen(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as err:  # noqa: BLE001
                raise convert(err) from None
        return gen

    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as err:  # noqa: BLE001
            raise convert(err) from None
    return call


def _is_generator(fn: Callable) -> bool:
    import inspect
    return inspect.isgeneratorfunction(fn)
