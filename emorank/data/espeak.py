"""A small ctypes driver for eSpeak NG, as shipped by the ``espeakng-loader`` pip package.

No system package and no ``espeak`` binary is needed: ``espeakng-loader`` ships ``libespeak-ng.so`` and its
``espeak-ng-data`` folder, and this module drives the C library directly in synchronous mode
(``AUDIO_OUTPUT_SYNCHRONOUS``), collecting the 16-bit samples (22.05 kHz) that eSpeak hands to a callback.

Determinism. eSpeak NG keeps process-global state (the wave generator's phases, the flutter counter, the echo
buffer, its noise generator) that carries over from one utterance to the next and is *not* reset by
``espeak_Terminate``/``espeak_Initialize``: synthesising the same text twice in one process gives different
samples. :class:`Espeak` therefore, by default (``isolate=True``), initialises the library once and never
synthesises in the calling process; each call forks a child that synthesises from that pristine state and sends
the samples back through a pipe. :meth:`Espeak.synthesize` is then a pure function of ``(text, params)``, whatever
was synthesised before and in whichever process; :meth:`Espeak.synthesize_many` forks once for a list (cheaper:
a fork costs ~10 ms in a process that has numpy and scipy loaded) and is a pure function of the whole list.
Where ``os.fork`` does not exist (Windows), or with ``isolate=False``, synthesis runs in-process and is
deterministic only for the same sequence of calls since the library was loaded.

Only one :class:`Espeak` per process: the library is a process-wide singleton in C.
"""
from __future__ import annotations

import ctypes
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

AUDIO_OUTPUT_SYNCHRONOUS = 2
ESPEAK_INITIALIZE_DONT_EXIT = 0x8000  # return an error instead of calling exit() when the data is missing
POS_CHARACTER = 1
ESPEAK_CHARS_UTF8 = 1
EE_OK = 0
PARAM_IDS = {"rate": 1, "volume": 2, "pitch": 3, "pitch_range": 4, "word_gap": 7}  # espeak_PARAMETER enum

_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class EspeakError(RuntimeError):
    """eSpeak NG failed while synthesising."""


class EspeakUnavailableError(EspeakError):
    """The eSpeak NG library or its data could not be found or initialised."""


class SpeechParamsError(ValueError):
    """A speech parameter (voice, rate, pitch, ...) is out of range or unknown."""


@dataclass(frozen=True)
class SpeechParams:
    """What eSpeak NG itself controls for one utterance.

    Attributes:
        voice: ``language[+variant]``, e.g. ``"en-us+f3"``; variants are the files in ``espeak-ng-data/voices/!v``.
        rate: speaking rate in words per minute (eSpeak accepts 80..450; default 175).
        pitch: base pitch, 0..100 relative to the voice (default 50).
        pitch_range: pitch range (intonation excursion), 0 (monotone) .. 100 (default 50).
        volume: amplitude, 0..200 (default 100; above ~150 eSpeak may clip).
        word_gap: extra pause between words in units of 10 ms (default 0).
        seed: seed of eSpeak's internal noise generator (aspiration, breathy variants).
    """

    voice: str = "en-us"
    rate: int = 175
    pitch: int = 50
    pitch_range: int = 50
    volume: int = 100
    word_gap: int = 0
    seed: int = 1

    def validate(self) -> None:
        """Raise :class:`SpeechParamsError` naming the first field that is out of range."""
        bounds = {"rate": (80, 450), "pitch": (0, 100), "pitch_range": (0, 100), "volume": (0, 200),
                  "word_gap": (0, 100)}
        for name, (lo, hi) in bounds.items():
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
                raise SpeechParamsError(f"SpeechParams.{name}={value!r} must be an integer in [{lo}, {hi}]")
        if not self.voice or not self.voice.isascii() or any(c.isspace() for c in self.voice):
            raise SpeechParamsError(f"SpeechParams.voice={self.voice!r} must look like 'en-us' or 'en-us+f3'")


def default_paths() -> tuple[str, str]:
    """(library path, data path) from the ``espeakng-loader`` package, or :class:`EspeakUnavailableError`."""
    try:
        import espeakng_loader
    except ImportError as exc:
        raise EspeakUnavailableError("eSpeak NG is unavailable: the pip package 'espeakng-loader' is not "
                                     "installed (pip install espeakng-loader)") from exc
    try:
        return espeakng_loader.get_library_path(), espeakng_loader.get_data_path()
    except RuntimeError as exc:
        raise EspeakUnavailableError(f"eSpeak NG data not found in espeakng-loader: {exc}") from exc


def _declare_signatures(lib: ctypes.CDLL) -> None:
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    lib.espeak_ng_SetRandSeed.restype = None
    lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                 ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    lib.espeak_Synth.restype = ctypes.c_int


class Espeak:
    """eSpeak NG speech synthesis to int16 samples at :attr:`sample_rate` (22050 Hz).

    Args:
        isolate: synthesise in forked children so results never depend on earlier calls (see the module
            docstring). ``None`` = whenever ``os.fork`` exists.
        library_path, data_path: override the ``espeakng-loader`` locations.

    Example:
        >>> tts = Espeak()
        >>> samples = tts.synthesize("The meeting starts at noon.", SpeechParams(voice="en-us+f2", rate=150))
    """

    def __init__(self, *, isolate: bool | None = None, library_path: str | None = None,
                 data_path: str | None = None) -> None:
        if library_path is None or data_path is None:
            default_library, default_data = default_paths()
            library_path, data_path = library_path or default_library, data_path or default_data
        self.library_path, self.data_path = str(library_path), str(data_path)
        self.isolate = hasattr(os, "fork") if isolate is None else bool(isolate)
        if self.isolate and not hasattr(os, "fork"):
            raise EspeakError("isolate=True needs os.fork, which this platform lacks; pass isolate=False")
        try:
            self._lib = ctypes.CDLL(self.library_path)
        except OSError as exc:
            raise EspeakUnavailableError(f"cannot load eSpeak NG library {self.library_path}: {exc}") from exc
        _declare_signatures(self._lib)
        self.sample_rate = self._lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, self.data_path.encode(),
                                                       ESPEAK_INITIALIZE_DONT_EXIT)
        if self.sample_rate <= 0:
            raise EspeakUnavailableError(f"espeak_Initialize failed (code {self.sample_rate}) with data path "
                                         f"{self.data_path}")
        self._chunks: list[bytes] = []
        self._callback = _SYNTH_CALLBACK(self._collect)  # kept on self: C holds only a raw pointer to it
        self._lib.espeak_SetSynthCallback(self._callback)
        variant_dir = Path(self.data_path) / "voices" / "!v"
        self._variants = frozenset(p.name for p in variant_dir.iterdir()) if variant_dir.is_dir() else frozenset()

    @property
    def variants(self) -> list[str]:
        """Names of the voice variants available after ``+`` (e.g. ``m1``, ``f3``, ``klatt``)."""
        return sorted(self._variants)

    def _collect(self, wav: ctypes.POINTER(ctypes.c_short), n_samples: int, events: ctypes.c_void_p) -> int:
        if n_samples > 0:
            self._chunks.append(ctypes.string_at(wav, 2 * n_samples))
        return 0  # 0 = continue synthesis

    def _check(self, text: str, params: SpeechParams) -> None:
        if not isinstance(text, str) or not text.strip():
            raise SpeechParamsError(f"text to synthesise must be a non-empty string, got {text!r}")
        if "\x00" in text:
            raise SpeechParamsError(f"text to synthesise contains a NUL character: {text!r}")
        params.validate()
        _, _, variant = params.voice.partition("+")
        if variant and variant not in self._variants:
            raise SpeechParamsError(f"unknown eSpeak voice variant {variant!r} in {params.voice!r}; "
                                    f"available: {', '.join(self.variants)}")

    def _synthesize_here(self, text: str, params: SpeechParams) -> bytes:
        """Synthesise in this process (mutates eSpeak's global state)."""
        self._chunks = []
        if self._lib.espeak_SetVoiceByName(params.voice.encode()) != EE_OK:
            raise SpeechParamsError(f"eSpeak does not know the voice {params.voice!r}")
        for name, param_id in PARAM_IDS.items():
            self._lib.espeak_SetParameter(param_id, int(getattr(params, name)), 0)
        self._lib.espeak_ng_SetRandSeed(int(params.seed))
        data = text.encode("utf-8") + b"\x00"
        code = self._lib.espeak_Synth(data, len(data), 0, POS_CHARACTER, 0, ESPEAK_CHARS_UTF8, None, None)
        if code != EE_OK:
            raise EspeakError(f"espeak_Synth failed with code {code} for text {text!r}")
        out, self._chunks = b"".join(self._chunks), []
        return out

    def _synthesize_forked(self, items: Sequence[tuple[str, SpeechParams]]) -> list[bytes]:
        """Synthesise ``items`` in order in one forked child, so this process's eSpeak state stays pristine.

        The child streams, per item, ``b"K"`` + 8-byte length + samples, or ``b"E"`` + a message and stops."""
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: never returns to the caller
            status = 1
            try:
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
                os.close(read_fd)
                for text, params in items:
                    try:
                        samples = self._synthesize_here(text, params)
                        payload = b"K" + len(samples).to_bytes(8, "little") + samples
                    except Exception as exc:  # noqa: BLE001 - reported to the parent, which re-raises
                        payload = b"E" + f"{type(exc).__name__}: {exc}".encode("utf-8", "replace")
                    view = memoryview(payload)
                    while view:
                        view = view[os.write(write_fd, view):]
                    if payload[:1] == b"E":
                        break
                status = 0
            finally:
                os._exit(status)
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as pipe:
            payload = pipe.read()
        _, wait_status = os.waitpid(pid, 0)
        return _parse_child_payload(payload, os.waitstatus_to_exitcode(wait_status), len(items))

    def synthesize(self, text: str, params: SpeechParams | None = None) -> np.ndarray:
        """Speak ``text``; returns int16 samples [T] at :attr:`sample_rate` (may be empty for pure punctuation).

        With isolation, a pure function of ``(text, params)``."""
        return self.synthesize_many([(text, SpeechParams() if params is None else params)])[0]

    def synthesize_many(self, items: Sequence[tuple[str, SpeechParams]]) -> list[np.ndarray]:
        """Speak several utterances in order; returns one int16 array [T_i] per item.

        With isolation this forks once for the whole list (cheaper than one fork per utterance): the result is a
        deterministic function of the whole list, and utterance ``i`` may depend on the utterances before it
        (eSpeak's carried-over state), never on anything synthesised earlier in this process."""
        items = list(items)
        for text, params in items:
            self._check(text, params)
        if not items:
            return []
        if self.isolate:
            raw = self._synthesize_forked(items)
        else:
            raw = [self._synthesize_here(text, params) for text, params in items]
        return [np.frombuffer(r, dtype="<i2").astype(np.int16) for r in raw]


def _parse_child_payload(payload: bytes, exit_code: int, n_items: int) -> list[bytes]:
    """Split the child's stream into per-item sample bytes; re-raise a reported error in the parent."""
    out, pos = [], 0
    while pos < len(payload):
        tag = payload[pos:pos + 1]
        if tag == b"E":
            message = payload[pos + 1:].decode("utf-8", "replace")
            kind, _, text = message.partition(": ")
            raise (SpeechParamsError if kind == "SpeechParamsError" else EspeakError)(text)
        size = int.from_bytes(payload[pos + 1:pos + 9], "little")
        out.append(payload[pos + 9:pos + 9 + size])
        pos += 9 + size
    if exit_code != 0 or len(out) != n_items:
        raise EspeakError(f"the eSpeak child process failed (exit code {exit_code}) after {len(out)} of "
                          f"{n_items} utterances")
    return out
