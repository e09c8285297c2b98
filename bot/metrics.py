"""What an operator watches: Prometheus metrics on `GET /metrics`, health on `GET /healthz`."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from bot.render import RenderResult

log = structlog.get_logger(__name__)

# Seconds, from what a person barely notices to what they give up on.
_LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.turns = Counter("bot_turns_total", "Turns answered, by outcome", ["platform", "outcome"], registry=r)
        self.first_text = Histogram(
            "bot_first_text_seconds",
            "Message received → first visible text",
            ["platform"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.final_text = Histogram(
            "bot_final_text_seconds",
            "Message received → final text visible",
            ["platform"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.model_first_token = Histogram(
            "bot_model_first_token_seconds", "Model asked → first token", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.tokens = Counter("bot_tokens_streamed_total", "Text pieces streamed from the model", registry=r)
        self.platform_rate_limited = Counter(
            "bot_platform_rate_limited_total", "429 answers from a platform", ["platform"], registry=r
        )
        self.model_errors = Counter("bot_model_errors_total", "Model failures, by kind", ["kind"], registry=r)
        self.redis_errors = Counter("bot_redis_errors_total", "Redis commands that failed", registry=r)
        self.in_flight = Gauge("bot_replies_in_flight", "Replies being written now", ["platform"], registry=r)
        self.recovered = Counter(
            "bot_interrupted_replies_recovered_total",
            "Replies left by a dead process and finished with a note",
            ["platform"],
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

    def set_health(self, component: str, problem: str | None) -> None:
        """`problem` None: the component (a platform connection) is up."""
        if self._problems.get(component, "") != problem:
            log.info("component_health", component=component, healthy=problem is None, problem=problem)
        self._problems[component] = problem

    def problems(self) -> list[str]:
        return [f"{component}: {problem}" for component, problem in self._problems.items() if problem]


async def serve(metrics: Metrics, port: int, check_redis: Callable[[], Awaitable[None]]) -> web.AppRunner:
    """Serve /metrics and /healthz on `port` (every interface: scrapers and probes come from outside)."""

    async def show_metrics(_: web.Request) -> web.Response:
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def health(_: web.Request) -> web.Response:
        problems = metrics.problems()
        try:
            await check_redis()
        except Exception as error:  # noqa: BLE001 - any failure is a reason to report unhealthy
            problems.append(f"redis: {type(error).__name__}: {error}")
        if problems:
            return web.json_response({"status": "unhealthy", "problems": problems}, status=503)
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/metrics", show_metrics)
    app.router.add_get("/healthz", health)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host="0.0.0.0", port=port).start()
    log.info("metrics_listening", port=port, paths="/metrics /healthz")
    return runner
