"""The model: its backends (a served model, or a GGUF one run in-process), which model answers a conversation, the
breaker that stops waiting on a failing service, and what a stream carries (text, thought, tool calls, usage)."""
