"""The app as an MCP server (launch(mcp_server=True)): its schema lists the tools an agent can call, typed."""
import httpx
import pytest

pytest.importorskip("mcp", reason="the mcp package (gradio[mcp]) is not installed")

from test_app import free_port, load_app, make_handlers  # noqa: E402
from test_workspace import build_assets  # noqa: E402


@pytest.fixture(scope="module")
def schema(tmp_path_factory, demo_corpus, session_cache, trained_checkpoint):
    assets = build_assets(tmp_path_factory.mktemp("mcp"), demo_corpus, session_cache, trained_checkpoint)
    h = make_handlers(assets)
    app = load_app()
    demo = app.build_app(h)
    _, url, _ = app.launch(demo, h, warm=False, server_name="127.0.0.1", server_port=free_port(),
                           prevent_thread_lock=True, quiet=True, mcp_server=True)
    try:
        yield httpx.get(f"{url}gradio_api/mcp/schema", timeout=30).json()
    finally:
        demo.close()


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
