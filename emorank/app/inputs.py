"""A voice clip as clients send it -> a local file the workspace reads: what the browser, ``gradio_client`` and
MCP clients put in the ``audio`` argument of ``/analyse`` and ``/estimate_va``.

Accepted, each within stated bounds:

* a path Gradio stored an upload under (the browser; ``gradio_client.handle_file`` of a local file, which the
  client uploads first), as a string or as the ``FileData`` dict ``{"path": ..., "meta": {"_type":
  "gradio.FileData"}}``; the workspace then confines it to the upload folders;
* base64 data, ``data:audio/wav;base64,...`` (what MCP clients inline), at most ``MAX_CLIP_BYTES`` once decoded;
* an ``http(s)://`` URL (what MCP clients and ``handle_file(url)`` send), fetched with at most
  ``MAX_CLIP_BYTES``, ``FETCH_SECONDS`` in all, at most ``MAX_REDIRECTS`` redirects, an audio content type, and
  only from public addresses (each host resolved once, the connection pinned to the address checked, so a name
  cannot be re-resolved to a private one between the check and the request). ``private_urls=True`` lifts the
  address check, for an app on a private network or tests on loopback.

Nothing here imports gradio. Refusals are :class:`ClipInputError` (a ``WorkspaceError``): one sentence, no server
path.
"""
from __future__ import annotations

import base64
import binascii
import contextlib
import ipaddress
import os
import re
import socket
import tempfile
import time
from pathlib import Path
from typing import Iterator
from urllib.parse import urljoin, urlsplit

from emorank.app.bounds import AUDIO_SUFFIXES, WorkspaceError

MAX_CLIP_BYTES = 12 * 1024 * 1024  # a 30 s clip of 48 kHz stereo 16-bit PCM is 5.8 MB; MP3/OGG far less
FETCH_SECONDS = 20.0  # a URL's whole fetch (connect, redirects, body)
MAX_REDIRECTS = 3
AUDIO_TYPES = ("audio/", "application/octet-stream", "application/ogg", "video/ogg", "binary/octet-stream")
_SUFFIX_OF_TYPE = {"audio/wav": ".wav", "audio/x-wav": ".wav", "audio/wave": ".wav", "audio/vnd.wave": ".wav",
                   "audio/flac": ".flac", "audio/x-flac": ".flac", "audio/ogg": ".ogg", "application/ogg": ".ogg",
                   "video/ogg": ".ogg", "audio/mpeg": ".mp3", "audio/mp3": ".mp3", "audio/aiff": ".aiff",
                   "audio/x-aiff": ".aiff", "audio/basic": ".au"}
_DATA_URI = re.compile(r"data:(?P<type>[\w.+-]+/[\w.+-]+)?(?P<params>(?:;[\w.+-]+=[\w.+-]+)*)(?P<b64>;base64)?,",
                       re.IGNORECASE)


class ClipInputError(WorkspaceError):
    """The clip a client sent cannot be used; the message says what to send instead."""


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:.0f} MB"


@contextlib.contextmanager
def local_clip(value, folder: str | os.PathLike, *, private_urls: bool = False, max_bytes: int = MAX_CLIP_BYTES,
               timeout: float = FETCH_SECONDS) -> Iterator[str]:
    """Yield a local path for `value` (see the module docstring); a clip written here (base64 or fetched) lives
    in `folder` and is removed when the block ends. A plain path is yielded as it is (the caller confines it)."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, dict):
        value = _from_file_data(value)
    if not isinstance(value, str) or not value.strip():
        raise ClipInputError("send the clip as an uploaded file, a FileData object, base64 data "
                             "(data:audio/wav;base64,...) or an http(s) URL")
    value = value.strip()
    if value[:5].lower() == "data:":
        written = _decode(value, Path(folder), max_bytes)
    elif value[:7].lower() == "http://" or value[:8].lower() == "https://":
        written = fetch_clip(value, Path(folder), private_urls=private_urls, max_bytes=max_bytes, timeout=timeout)
    else:
        yield value
        return
    try:
        yield str(written)
    finally:
        written.unlink(missing_ok=True)


def _from_file_data(data: dict) -> str:
    """The reference in a Gradio FileData dict: its path (an upload Gradio stored, or the URL `handle_file(url)`
    put there), else its URL when that is remote or inline data (never a URL back to this server's own file)."""
    path, url = data.get("path"), data.get("url")
    if isinstance(path, str) and path.strip():
        return path
    if isinstance(url, str) and url[:5].lower() in ("http:", "https", "data:"):
        return url
    raise ClipInputError("the file object has no 'path' or 'url'; upload the clip first (gradio_client's "
                         "handle_file does) or send an http(s) URL")


def _new_file(folder: Path, suffix: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="clip-", suffix=suffix if suffix in AUDIO_SUFFIXES else ".audio",
                                dir=folder)
    os.close(fd)
    return Path(name)


def _decode(uri: str, folder: Path, max_bytes: int) -> Path:
    """A data: URI of base64 audio -> a file in `folder`; the size is checked before decoding."""
    head = _DATA_URI.match(uri)
    if head is None or not head.group("b64"):
        raise ClipInputError("inline data must be base64: data:audio/wav;base64,...")
    kind = (head.group("type") or "application/octet-stream").lower()
    if not kind.startswith(AUDIO_TYPES):
        raise ClipInputError(f"inline data of type {kind} is not audio; send data:audio/wav;base64,... (or another "
                             f"audio type)")
    payload = uri[head.end():]
    if len(payload) * 3 // 4 > max_bytes:
        raise ClipInputError(f"the inline clip is larger than {_mb(max_bytes)}; send a shorter clip (at most 30 s "
                             f"is analysed) or a URL")
    try:
        data = base64.b64decode(re.sub(r"\s+", "", payload), validate=True)
    except (binascii.Error, ValueError):
        raise ClipInputError("the inline clip is not valid base64") from None
    path = _new_file(folder, _SUFFIX_OF_TYPE.get(kind, ".audio"))
    path.write_bytes(data)
    return path


def _public_address(host: str, port: int, private_urls: bool) -> str:
    """The address to connect to for `host` (resolved once); refused when any address is not public."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise ClipInputError(f"the clip's host {host!r} cannot be resolved; check the URL") from None
    addresses = [info[4][0] for info in infos]
    if not private_urls:
        for a in addresses:
            ip = ipaddress.ip_address(a.split("%", 1)[0])
            if not ip.is_global or ip.is_multicast:
                raise ClipInputError("that URL points to a private or local address, which this server does not "
                                     "fetch; give a public URL or upload the file")
    return addresses[0]


def fetch_clip(url: str, folder: Path, *, private_urls: bool = False, max_bytes: int = MAX_CLIP_BYTES,
               timeout: float = FETCH_SECONDS) -> Path:
    """GET an audio clip from `url` into a new file in `folder`, within the module's bounds; ClipInputError
    otherwise."""
    import httpx

    deadline = time.monotonic() + timeout
    for _ in range(MAX_REDIRECTS + 1):
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ClipInputError("the clip's URL must be an http(s) URL with a host")
        if parts.username or parts.password:
            raise ClipInputError("the clip's URL must not carry a user name or password")
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
        address = _public_address(parts.hostname, port, private_urls)
        pinned = parts._replace(netloc=(f"[{address}]" if ":" in address else address) + f":{port}").geturl()
        headers = {"Host": parts.netloc.rsplit("@", 1)[-1], "Accept": "audio/*"}
        remaining = max(0.1, deadline - time.monotonic())
        try:
            with httpx.Client(timeout=httpx.Timeout(remaining), follow_redirects=False) as client, \
                    client.stream("GET", pinned, headers=headers,
                                  extensions={"sni_hostname": parts.hostname}) as response:
                if response.is_redirect and "location" in response.headers:
                    url = urljoin(url, response.headers["location"])
                    continue
                return _receive(response, parts.path, folder, max_bytes, deadline)
        except httpx.TimeoutException:
            raise ClipInputError(f"the clip's URL did not answer within {timeout:g} s") from None
        except httpx.HTTPError as err:
            raise ClipInputError(f"the clip could not be fetched ({type(err).__name__}); check the URL") from None
    raise ClipInputError(f"the clip's URL redirects more than {MAX_REDIRECTS} times")


def _receive(response, url_path: str, folder: Path, max_bytes: int, deadline: float) -> Path:
    if response.status_code != 200:
        raise ClipInputError(f"the clip's URL answered HTTP {response.status_code}, not the audio file")
    kind = response.headers.get("content-type", "application/octet-stream").split(";")[0].strip().lower()
    if not kind.startswith(AUDIO_TYPES):
        raise ClipInputError(f"the clip's URL returned {kind}, not audio; give the URL of the audio file itself")
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise ClipInputError(f"the clip at that URL is larger than {_mb(max_bytes)}; give a shorter clip")
    suffix = Path(url_path).suffix.lower()
    path = _new_file(folder, suffix if suffix in AUDIO_SUFFIXES else _SUFFIX_OF_TYPE.get(kind, ".audio"))
    size = 0
    try:
        with path.open("wb") as out:
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise ClipInputError(f"the clip at that URL is larger than {_mb(max_bytes)}; give a shorter "
                                         f"clip")
                if time.monotonic() > deadline:
                    raise ClipInputError("the clip's URL sent its file too slowly; upload the file instead")
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path
