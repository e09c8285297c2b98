"""Tool settings: the MCP servers (config.tools_file) and how the bot uses them."""

from __future__ import annotations

from dataclasses import dataclass

from config.env import Env
from config.models import BackendKind, ModelCatalog, ModelChoice
from config.tools_file import ServerConfig, load_servers


@dataclass(frozen=True)
class ToolSettings:
    servers: tuple[ServerConfig, ...] = ()
    max_rounds: int = 5  # MAX_TOOL_ROUNDS
    timeout_seconds: float = 30.0  # TOOL_TIMEOUT_SECONDS, for servers that set none
    confirm_seconds: float = 300.0  # TOOL_CONFIRM_SECONDS
    result_max_chars: int = 20_000  # TOOL_RESULT_MAX_CHARS
    tool_models: frozenset[str] | None = None  # TOOL_MODELS (None: not set)


def tool_settings(env: Env) -> ToolSettings:
    timeout = env.float("TOOL_TIMEOUT_SECONDS", 30.0, minimum=0.1, maximum=3600.0)
    models = frozenset(part.strip() for part in env.str("TOOL_MODELS").split(",") if part.strip())
    return ToolSettings(
        servers=load_servers(env, default_timeout=timeout),
        max_rounds=env.int("MAX_TOOL_ROUNDS", 5, minimum=1, maximum=50),
        timeout_seconds=timeout,
        confirm_seconds=env.float("TOOL_CONFIRM_SECONDS", 300.0, minimum=1.0, maximum=86_400.0),
        result_max_chars=env.int("TOOL_RESULT_MAX_CHARS", 20_000, minimum=100),
        tool_models=models or None,
    )


def offers_tools(model: ModelChoice, catalog: ModelCatalog, settings: ToolSettings, *, builtin: bool = False) -> bool:
    """Whether `model` is offered the tools: those TOOL_MODELS names or MODELS_FILE marks `tools: true` when either
    is used; else every model but the in-process one (too small to call tools well), unless marked `tools: false`.
    `builtin`: the bot has a tool of its own to offer (the knowledge search): without servers, it is offered to the
    models TOOL_MODELS names or MODELS_FILE marks only."""
    named = settings.tool_models or frozenset()
    marked = bool(model.tools) or model.id in named or model.display_name in named
    if not settings.servers:  # the bot's own tool goes only to a model the operator said calls tools well
        return builtin and marked
    if named or any(choice.tools for choice in catalog.choices):
        return marked
    return model.tools is not False and model.settings.backend is not BackendKind.LOCAL
