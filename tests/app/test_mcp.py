"""The app as an MCP server (launch(mcp_server=True)): the tools an agent sees, typed and documented, called through
a real MCP client over streamable HTTP with the inputs agents send (a URL, base64 data)."""
import base64
import io

import anyio
import httpx
import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("mcp", reason="the mcp package (gradio[mcp]) is not installed")

from mcp import ClientSession  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

from test_app import free_port, load_app, make_handlers, serve_folder  # noqa: E402
from test_workspace import build_assets  # noqa: E402

TOOLS = {"caption", "retrieve", "analyse", "estimate_va", "embedding_map", "evaluate", "checkpoints", "collections"}


@pytest.fixture(scope="module")
def mcp_app(tmp_path_factory, demo_corpus, session_cache, trained_checkpoint):
    assets = build_assets(tmp_path_factory.mktemp("mcp"), demo_corpus, session_cache, trained_checkpoint)
    h = make_handlers(assets)
    app = load_app()
    demo = app.build_app(h)
    _, url, _ = app.launch(demo, h, warm=False, server_name="127.0.0.1", server_port=free_port(),
                           prevent_thread_lock=True, quiet=True, mcp_server=True)
    try:
        yield url, h
    finally:
        demo.close()


@pytest.fixture(scope="module")
def schema(mcp_app):
    return httpx.get(f"{mcp_app[0]}gradio_api/mcp/schema", timeout=30).json()


def call_tool(url: str, name: str, arguments: dict):
    """One tool call through the MCP Python SDK's client over streamable HTTP: (is_error, text)."""
    async def go():
        async with streamable_http_client(f"{url}gradio_api/mcp/") as (read, write, _), \
                ClientSession(read, write) as session:
            await session.initialize()
            result = await session.call_tool(name, arguments)
            return result.isError, " ".join(getattr(c, "text", "") for c in result.content)
    return anyio.run(go)


def list_tools(url: str) -> list:
    async def go():
        async with streamable_http_client(f"{url}gradio_api/mcp/") as (read, write, _), \
                ClientSession(read, write) as session:
            await session.initialize()
            return (await session.list_tools()).tools
    return anyio.run(go)


def test_the_schema_lists_the_tools_with_typed_parameters(schema):
    tools = {tool["meta"]["endpoint_name"]: tool for tool in schema}  # by endpoint (tool names: the functions)
    for name in ("caption", "retrieve", "analyse", "estimate_va"):
        assert name in tools, sorted(tools)
    caption = tools["caption"]["inputSchema"]["properties"]
    assert caption["valence"]["type"] == "number" and caption["arousal"]["type"] == "number"
    assert "1 (very negative)" in caption["valence"]["description"]
    retrieve = tools["retrieve"]["inputSchema"]["properties"]
    assert retrieve["checkpoint"]["type"] == "string" and retrieve["k"]["type"] == "integer"
    assert "speaking-style caption" in tools["retrieve"]["description"]
    assert "valence" in tools["estimate_va"]["description"]
    assert not any(name.startswith(("slide", "lambda")) for name in tools)  # UI plumbing is not a tool


def test_an_agent_sees_the_documented_tools_by_their_names(mcp_app):
    """Eight tools, each named after its endpoint (no api_ prefix), every parameter described; training (one
    shared job slot, which stop_training would take from a visitor) is for people and scripts, not agents."""
    tools = {t.name: t for t in list_tools(mcp_app[0])}
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert tool.description and all(p.get("description") for p in tool.inputSchema["properties"].values()), \
            tool.name
    audio = tools["estimate_va"].inputSchema["properties"]["audio"]
    assert "URL" in audio["description"] and "base64" in audio["description"]


def wav_bytes(seconds: float, sr: int = 16000) -> bytes:
    t = np.arange(int(seconds * sr)) / sr
    voice = 0.3 * np.sin(2 * np.pi * 180 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))  # a voiced, modulated tone
    buffer = io.BytesIO()
    sf.write(buffer, voice.astype(np.float32), sr, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def test_tools_take_a_clip_by_url_or_as_base64_data_over_a_megabyte(mcp_app, tmp_path, demo_corpus):
    from pathlib import Path

    url, h = mcp_app
    clip = sorted((Path(demo_corpus).parent / "audio").glob("*.wav"))[0]
    (tmp_path / "voice.wav").write_bytes(clip.read_bytes())
    h.ws.private_urls = True  # the clip is served on loopback: a test only
    try:
        with serve_folder(tmp_path) as base:
            error, text = call_tool(url, "estimate_va", {"audio": f"{base}/voice.wav",
                                                         "checkpoint": "emotionrankclap"})
            assert not error and "'valence'" in text, text
            error, text = call_tool(url, "analyse", {"audio": f"{base}/voice.wav", "checkpoint": "emotionrankclap",
                                                     "k": 2})
            assert not error and "'clips'" in text, text
    finally:
        h.ws.private_urls = False
    big = wav_bytes(28.0)  # 0.9 MB of 16-bit PCM: 1.2 MB of base64, over the limit the issue met
    data = "data:audio/wav;base64," + base64.b64encode(big).decode()
    assert len(data) > 1_100_000
    error, text = call_tool(url, "estimate_va", {"audio": data, "checkpoint": "emotionrankclap"})
    assert not error and "'valence'" in text, text
    with serve_folder(tmp_path) as base:  # a private address, in a public app: refused in one readable sentence
        error, text = call_tool(url, "estimate_va", {"audio": f"{base}/voice.wav"})
    assert error and "private or local address" in text and "show_error" not in text, text


def test_a_tool_error_is_a_sentence_for_people_not_a_launch_setting(mcp_app):
    junk = "data:audio/wav;base64," + base64.b64encode(b"this is not audio" * 100).decode()
    error, text = call_tool(mcp_app[0], "analyse", {"audio": junk, "checkpoint": "emotionrankclap"})
    assert error and "not a readable audio file" in text and "show_error" not in text, text
    error, text = call_tool(mcp_app[0], "analyse", {"audio": "/etc/passwd", "checkpoint": "emotionrankclap"})
    assert error and text.startswith("passwd: ") and "/etc" not in text and "show_error" not in text, text
