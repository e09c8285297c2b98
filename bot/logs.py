"""Structured logging (key=value on stderr, or JSON with LOG_FORMAT=json)."""

from __future__ import annotations

import logging
import sys

import structlog


def configure_logging(level: str, *, json_output: bool = False) -> None:
    numeric = logging.getLevelName(level.upper())
    logging.basicConfig(level=numeric, stream=sys.stderr, format="%(message)s", force=True)
    renderer = structlog.processors.JSONRenderer() if json_output else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # Library chatter at INFO (HTTP request lines) would drown the bot's own events.
    for noisy in ("httpx", "httpx2", "httpcore", "httpcore2", "discord.gateway", "slack_bolt", "slack_sdk"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
