"""Loopback fakes of Discord, Slack, the model server and MCP servers, and the harnesses that run the real bot
against them: what the tests and the benchmarks share."""
