"""Tool calls that fail each way there is, against the fake server of fakes/mcp_tools.py timing calls out after
FAILING_TIMEOUT seconds, and the reason each one's line gives: every one ends as failed, and the answer goes on."""

from __future__ import annotations

from fakes.model_server import ToolCallScript

FAILING_TIMEOUT = 3

FAILURES = {
    ToolCallScript("lookup", "[" * 1000 + "]" * 1000): "the arguments are nested too deeply (more than 64 levels)",
    ToolCallScript("lookup", '{"query": '): "the arguments are not valid JSON",
    ToolCallScript("lookup", "[1, 2]"): "the arguments are not a JSON object",
    ToolCallScript("lookup", '{"q": 1}'): "the arguments don't match the tool's schema",
    ToolCallScript("strict", '{"text": "x"}'): "its schema is invalid ('(unclosed' is not a 'regex')",
    ToolCallScript("endless", '{"text": "x"}'): "failed inside the bot",  # checking its arguments raises
    ToolCallScript("fail", "{}"): "Error executing tool fail: the lookup service is down",  # the server raises
    ToolCallScript("hang", "{}"): f"timed out after {FAILING_TIMEOUT} s",
    ToolCallScript("deep_result", "{}"): f"timed out after {FAILING_TIMEOUT} s",  # too deep for the client to read
}
FAILING = tuple(FAILURES)
