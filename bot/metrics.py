"""What an operator watches: the Prometheus metrics (served on METRICS_PORT by adapters.launch), and the platforms'
connection health."""

from __future__ import annotations

import time
from functools import partial

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from bot.reply.render import RenderResult

log = structlog.get_logger(__name__)

# Seconds, from what a person barely notices to what they give up on: latency percentiles are only as fine as these.
_LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        counter = partial(Counter, registry=r)
        latency = partial(Histogram, buckets=_LATENCY_BUCKETS, registry=r)
        self.turns = counter("bot_turns_total", "Turns answered, by outcome", ["platform", "outcome"])
        self.first_text = latency("bot_first_text_seconds", "Message received → first visible text", ["platform"])
        self.final_text = latency("bot_final_text_seconds", "Message received → final text visible", ["platform"])
        self.model_first_token = latency("bot_model_first_token_seconds", "Model asked → first token")
        self.tokens = counter("bot_tokens_streamed_total", "Text pieces streamed from the model")
        self.platform_rate_limited = counter(
            "bot_platform_rate_limited_total", "429 answers from a platform", ["platform"]
        )
        self.model_errors = counter("bot_model_errors_total", "Model failures, by kind", ["kind"])
        self.redis_errors = counter("bot_redis_errors_total", "Redis commands that failed")
        self.in_flight = Gauge("bot_replies_in_flight", "Replies being written now", ["platform"], registry=r)
        self.recovered = counter(
            "bot_interrupted_replies_recovered_total",
            "Replies left by a dead process and finished with a note",
            ["platform"],
        )
        self.unprompted = counter(
            "bot_unprompted_messages_total",
            "Messages in channels that answer without a mention, answered or skipped, by reason",
            ["platform", "outcome", "reason"],
        )
        self.unprompted_late = counter(
            "bot_unprompted_late_total",
            "Messages that would have been answered but could not start within RESPOND_MAX_DELAY_SECONDS",
            ["platform"],
        )
        self.respond_decision = Histogram(
            "bot_respond_decision_seconds",
            "The decision whether to answer a message nobody addressed to the bot",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 3.0),
            registry=r,
        )
        self.votes = counter("bot_answer_votes_total", "Votes on answers, by platform and vote", ["platform", "vote"])
        self.rerank_failures = counter(
            "bot_rerank_failures_total",
            "Knowledge searches whose reranker failed (their passages kept fusion's order), by kind",
            ["kind"],
        )
        self.helpdesk_threads = counter(
            "bot_helpdesk_threads_total",
            "Help channels' questions, by platform and what became of them: asked, answered, solved_by_bot, "
            "solved_by_person, handed_off, unanswered",
            ["platform", "outcome"],
        )
        self.time_to_solved = Histogram(
            "bot_helpdesk_time_to_solved_seconds",
            "A help channel's question asked → its thread marked solved",
            ["platform"],
            buckets=(60, 300, 900, 1_800, 3_600, 4 * 3_600, 12 * 3_600, 86_400, 3 * 86_400, 7 * 86_400),
            registry=r,
        )
        self._problems: dict[str, str | None] = {}

    def turn_finished(self, platform: str, thread: str, received_at: float, result: RenderResult) -> None:
        """Count a finished turn, time it, and log it (one `turn_finished` line per turn)."""
        outcome, seconds = result.outcome, time.monotonic() - received_at
        self.turns.labels(platform, outcome).inc()
        if result.first_shown_at is not None:
            self.first_text.labels(platform).observe(result.first_shown_at - received_at)
        self.final_text.labels(platform).observe(seconds)
        log.info(
            "turn_finished",
            thread=thread,
            outcome=outcome,
            detail=result.failure.detail if result.failure else None,
            chars=len(result.text),
            messages=len(result.messages),
            writes=result.writes,
            seconds=round(seconds, 3),
        )

    def rerank_failed(self, kind: str) -> None:
        """A knowledge search's reranker failed: unreachable, timeout, http or reply (bot.knowledge.rerank)."""
        self.rerank_failures.labels(kind).inc()

    def set_health(self, component: str, problem: str | None) -> None:
        """`problem` None: the component (a platform connection) is up."""
        if self._problems.get(component, "") != problem:
            log.info("component_health", component=component, healthy=problem is None, problem=problem)
        self._problems[component] = problem

    def problems(self) -> list[str]:
        return [f"{component}: {problem}" for component, problem in self._problems.items() if problem]
