"""emorank.app.inputs: the clip a client sends (path, FileData, base64, URL) -> a local file, within bounds."""
import base64
import contextlib
import http.server
import threading
import time

import pytest

from emorank.app.inputs import ClipInputError, fetch_clip, local_clip

WAV = b"RIFF" + b"\0" * 2000  # content is not parsed here: the workspace reads the audio


class Handler(http.server.BaseHTTPRequestHandler):
    routes = {}

    def do_GET(self):  # noqa: N802 (http.server's name)
        status, headers, body, delay = self.routes[self.path]
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        for i in range(0, len(body), 4096):
            time.sleep(delay)
            self.wfile.write(body[i:i + 4096])

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serving(routes):
    Handler.routes = routes
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_url_is_fetched_within_size_type_time_and_redirect_bounds(tmp_path):
    audio = {"Content-Type": "audio/wav"}
    routes = {"/a.wav": (200, audio, WAV, 0), "/big": (200, {"Content-Type": "audio/wav"}, b"x" * 50_000, 0),
              "/page": (200, {"Content-Type": "text/html"}, b"<html>", 0), "/gone": (404, {}, b"", 0),
              "/slow": (200, audio, b"x" * 40_000, 0.2)}
    with serving(routes) as base:
        routes["/moved"] = (302, {"Location": f"{base}/a.wav"}, b"", 0)
        routes["/loop"] = (302, {"Location": "/loop"}, b"", 0)
        path = fetch_clip(f"{base}/a.wav", tmp_path, private_urls=True)
        assert path.read_bytes() == WAV and path.suffix == ".wav" and path.parent == tmp_path
        assert fetch_clip(f"{base}/moved", tmp_path, private_urls=True).read_bytes() == WAV
        for url, says in (("/big", "larger than"), ("/page", "returned text/html, not audio"),
                          ("/gone", "HTTP 404"), ("/loop", "redirects more than"), ("/slow", "too slowly|within")):
            with pytest.raises(ClipInputError, match=says):
                fetch_clip(base + url, tmp_path, private_urls=True, max_bytes=30_000, timeout=1.0)
        with pytest.raises(ClipInputError, match="private or local address"):  # the default: public hosts only
            fetch_clip(f"{base}/a.wav", tmp_path)
    with pytest.raises(ClipInputError, match="http"):
        fetch_clip("ftp://example.org/a.wav", tmp_path)
    assert len(list(tmp_path.iterdir())) == 2  # the two good fetches; refused ones leave nothing behind


def test_base64_file_data_and_paths(tmp_path):
    data = "data:audio/wav;base64," + base64.b64encode(WAV).decode()
    with local_clip(data, tmp_path) as path:
        assert open(path, "rb").read() == WAV and path.endswith(".wav")
    assert not list(tmp_path.iterdir())  # removed once used
    with local_clip({"path": "/uploads/x.wav", "meta": {"_type": "gradio.FileData"}}, tmp_path) as path:
        assert path == "/uploads/x.wav"  # an upload: the workspace confines it
    with local_clip({"url": data}, tmp_path) as path:
        assert open(path, "rb").read() == WAV
    for bad, says in (("data:text/plain;base64,aGk=", "not audio"), ("data:audio/wav,raw", "must be base64"),
                      ("data:audio/wav;base64,@@@", "not valid base64"), (42, "send the clip as"),
                      ({"meta": {}}, "no 'path' or 'url'"),
                      ("data:audio/wav;base64," + "A" * 4000, "larger than")):
        with pytest.raises(ClipInputError, match=says), local_clip(bad, tmp_path, max_bytes=1000):
            pass
