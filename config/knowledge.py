"""Knowledge settings: the deployment's documents folder, the embeddings' model or server, the reranking server, and
the engine's database (or where the embedded one keeps its data)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from config.env import ConfigError, Env
from config.web_knowledge import WebKnowledgeSettings, web_knowledge_settings

DEFAULT_DATA_DIR = ".knowledge"  # under the working directory
# EMBEDDING_MODEL naming the built-in static model instead of the default MiniLM: ~50 times faster to add passages
# (thousands a second), weaker at finding a passage that shares no words with the question.
WORDLLAMA = "wordllama"
DEFAULT_PROMPT_SHARE = 0.3
# KNOWLEDGE_LANGUAGE: the languages PostgreSQL (12 and later) stems, by its text search configurations' names.
AUTO_LANGUAGE = "auto"
LANGUAGES = (
    "arabic", "danish", "dutch", "english", "finnish", "french", "german", "greek", "hungarian", "indonesian",
    "irish", "italian", "lithuanian", "nepali", "norwegian", "portuguese", "romanian", "russian", "spanish",
    "swedish", "tamil", "turkish",
)  # fmt: skip
MAX_PROMPT_SHARE = 0.8
# A question asked while knowledge is still starting (after a deploy or restart) waits this long for it, then is
# answered saying it didn't use it.
DEFAULT_START_WAIT_SECONDS = 10.0
MAX_START_WAIT_SECONDS = 60.0
# Reranking (RERANK_BASE_URL): the passages fusion found best, this many, scored again by a cross-encoder. Text
# Embeddings Inference refuses more than 32 texts a request by default: 30 is one request.
DEFAULT_RERANK_CANDIDATES = 30
MAX_RERANK_CANDIDATES = 100
# Past this the passages go in fusion's order: a search has 3 s in all (bot.turn.searching.SEARCH_SECONDS).
DEFAULT_RERANK_TIMEOUT_SECONDS = 1.0
MAX_RERANK_TIMEOUT_SECONDS = 2.5


@dataclass(frozen=True)
class RerankSettings:
    """A `/rerank` server: Text Embeddings Inference's shape without a model, Cohere's and Jina's with one."""

    base_url: str  # RERANK_BASE_URL: the server (TEI's root, or an API's /v1 or /v2); `/rerank` is added
    model: str | None = None  # RERANK_MODEL: the model asked for, which also picks the Cohere/Jina request shape
    api_key: str | None = None  # RERANK_API_KEY: sent as a bearer token
    candidates: int = DEFAULT_RERANK_CANDIDATES  # RERANK_CANDIDATES: how many of fusion's best are scored again
    timeout_seconds: float = DEFAULT_RERANK_TIMEOUT_SECONDS  # RERANK_TIMEOUT_SECONDS


@dataclass(frozen=True)
class KnowledgeSettings:
    folder: Path | None = None  # KNOWLEDGE_DIR: documents for every server, workspace, the web chat and the terminal
    embedding_model: str | None = None  # EMBEDDING_MODEL: a Hub model id (or endpoint URL), or the server's model name
    embedding_base_url: str | None = None  # EMBEDDING_BASE_URL: an OpenAI-compatible /v1 (TEI, vLLM, Ollama)
    database_url: str | None = None  # KNOWLEDGE_DATABASE_URL: PostgreSQL with pgvector; None: the embedded server
    data_dir: Path = field(default_factory=lambda: Path.cwd() / DEFAULT_DATA_DIR)  # KNOWLEDGE_DATA_DIR
    prompt_share: float = DEFAULT_PROMPT_SHARE  # KNOWLEDGE_PROMPT_SHARE: of the prompt's token budget, at most
    min_relevance: float | None = None  # KNOWLEDGE_MIN_RELEVANCE: the cosine a passage needs (None: the model's own)
    start_wait_seconds: float = DEFAULT_START_WAIT_SECONDS  # KNOWLEDGE_START_WAIT_SECONDS
    rerank: RerankSettings | None = None  # RERANK_BASE_URL set: the hits reordered by that server
    language: str = AUTO_LANGUAGE  # KNOWLEDGE_LANGUAGE: the words search's stemming, or each text's own ("auto")
    web: WebKnowledgeSettings = field(default_factory=WebKnowledgeSettings)  # docs sites and GitHub repositories


def knowledge_settings(env: Env) -> KnowledgeSettings:
    embedding_model = env.optional_str("EMBEDDING_MODEL")
    embedding_base_url = env.url("EMBEDDING_BASE_URL", None, ("http", "https"))
    hub_model = embedding_model and embedding_model != WORDLLAMA and not _is_url(embedding_model)
    if hub_model and not embedding_base_url and not env.raw("HF_TOKEN"):
        raise ConfigError(
            f"EMBEDDING_MODEL={embedding_model!r} is set but HF_TOKEN is not: a Hub model is reached with an hf_… "
            "token (or set EMBEDDING_BASE_URL to a server of your own)"
        )
    return KnowledgeSettings(
        folder=_folder(env, "KNOWLEDGE_DIR"),
        embedding_model=embedding_model,
        embedding_base_url=embedding_base_url,
        database_url=env.url("KNOWLEDGE_DATABASE_URL", None, ("postgresql", "postgres")),
        data_dir=_data_dir(env, "KNOWLEDGE_DATA_DIR"),
        prompt_share=_prompt_share(env, "KNOWLEDGE_PROMPT_SHARE"),
        min_relevance=_min_relevance(env, "KNOWLEDGE_MIN_RELEVANCE"),
        start_wait_seconds=env.float(
            "KNOWLEDGE_START_WAIT_SECONDS", DEFAULT_START_WAIT_SECONDS, minimum=0.0, maximum=MAX_START_WAIT_SECONDS
        ),
        rerank=rerank_settings(env),
        language=env.choice("KNOWLEDGE_LANGUAGE", AUTO_LANGUAGE, (AUTO_LANGUAGE, *LANGUAGES)),
        web=web_knowledge_settings(env),
    )


def rerank_settings(env: Env) -> RerankSettings | None:
    """RERANK_BASE_URL's server, or None. RERANK_MODEL alone would be a model run in the process, which no package
    on the registry ships offline (docs/operators.md, "Knowledge"): it is refused rather than silently ignored."""
    base_url = env.url("RERANK_BASE_URL", None, ("http", "https"))
    model = env.optional_str("RERANK_MODEL")
    if base_url is None:
        if model is not None:
            raise ConfigError(
                f"RERANK_MODEL={model!r} is set but RERANK_BASE_URL is not: a reranker runs on a /rerank server "
                "(Text Embeddings Inference, or a Cohere- or Jina-compatible API); set RERANK_BASE_URL to it"
            )
        return None
    return RerankSettings(
        base_url=base_url,
        model=model,
        api_key=env.optional_str("RERANK_API_KEY"),
        candidates=env.int("RERANK_CANDIDATES", DEFAULT_RERANK_CANDIDATES, minimum=2, maximum=MAX_RERANK_CANDIDATES),
        timeout_seconds=_positive(
            env, "RERANK_TIMEOUT_SECONDS", DEFAULT_RERANK_TIMEOUT_SECONDS, MAX_RERANK_TIMEOUT_SECONDS
        ),
    )


def _folder(env: Env, name: str) -> Path | None:
    value = env.raw(name)
    if value is None:
        return None
    folder = Path(value).expanduser()
    if not folder.is_dir():
        problem = "is not a directory" if folder.exists() else "does not exist"
        raise ConfigError(f"{name}={value!r} is invalid: {folder.resolve()} {problem}")
    return folder.resolve()


def _data_dir(env: Env, name: str) -> Path:
    value = env.raw(name)
    data_dir = (Path(value).expanduser() if value else Path(DEFAULT_DATA_DIR)).resolve()
    if data_dir.exists() and not data_dir.is_dir():
        raise ConfigError(f"{name}={value or DEFAULT_DATA_DIR!r} is invalid: {data_dir} is a file, not a directory")
    return data_dir


def _prompt_share(env: Env, name: str) -> float:
    share = env.float(name, DEFAULT_PROMPT_SHARE, maximum=MAX_PROMPT_SHARE)
    if not share > 0:  # also NaN
        raise ConfigError(f"{name}={env.raw(name)!r} is invalid: expected a number > 0 and ≤ {MAX_PROMPT_SHARE}")
    return share


def _positive(env: Env, name: str, default: float, maximum: float) -> float:
    value = env.float(name, default, maximum=maximum)
    if not value > 0:  # also NaN
        raise ConfigError(f"{name}={env.raw(name)!r} is invalid: expected a number > 0 and ≤ {maximum:g}")
    return value


def _is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


def _min_relevance(env: Env, name: str) -> float | None:
    if env.raw(name) is None:
        return None
    value = env.float(name, 0.0, minimum=-1.0, maximum=1.0)
    if not -1.0 <= value <= 1.0:  # NaN
        raise ConfigError(f"{name}={env.raw(name)!r} is invalid: expected a cosine similarity between -1 and 1")
    return value
