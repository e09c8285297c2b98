"""Knowledge settings: the defaults, and the message naming the variable for each bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.env import ConfigError, Env
from config.knowledge import RerankSettings
from config.settings import load_settings


def test_nothing_configured_means_local_embeddings_and_the_embedded_engine() -> None:
    knowledge = load_settings(Env({})).knowledge
    assert knowledge.folder is None and knowledge.embedding_model is None and knowledge.embedding_base_url is None
    assert knowledge.database_url is None
    assert knowledge.data_dir == Path.cwd() / ".knowledge"
    assert knowledge.prompt_share == 0.3


def test_every_setting_is_read(tmp_path: Path) -> None:
    knowledge = load_settings(
        Env(
            {
                "KNOWLEDGE_DIR": str(tmp_path),
                "HF_TOKEN": "hf_x",
                "EMBEDDING_MODEL": "BAAI/bge-small-en-v1.5",
                "EMBEDDING_BASE_URL": "http://tei:8080/v1",
                "KNOWLEDGE_DATABASE_URL": "postgres://bot:secret@db:5432/knowledge",
                "KNOWLEDGE_DATA_DIR": str(tmp_path / "data"),
                "KNOWLEDGE_PROMPT_SHARE": "0.8",
            }
        )
    ).knowledge
    assert knowledge.folder == tmp_path.resolve()
    assert knowledge.embedding_model == "BAAI/bge-small-en-v1.5"
    assert knowledge.embedding_base_url == "http://tei:8080/v1"
    assert knowledge.database_url == "postgres://bot:secret@db:5432/knowledge"
    assert knowledge.data_dir == (tmp_path / "data").resolve()
    assert knowledge.prompt_share == 0.8


def test_an_endpoint_url_or_a_server_of_ones_own_needs_no_token() -> None:
    endpoint = "https://abc.endpoints.huggingface.cloud"
    assert load_settings(Env({"EMBEDDING_MODEL": endpoint})).knowledge.embedding_model == endpoint
    own = load_settings(Env({"EMBEDDING_MODEL": "nomic-embed-text", "EMBEDDING_BASE_URL": "http://ollama:11434/v1"}))
    assert own.knowledge.embedding_model == "nomic-embed-text"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"KNOWLEDGE_DIR": "{tmp}/missing"}, "KNOWLEDGE_DIR='{tmp}/missing' is invalid: {tmp}/missing does not exist"),
        ({"KNOWLEDGE_DIR": "{tmp}/file"}, "KNOWLEDGE_DIR='{tmp}/file' is invalid: {tmp}/file is not a directory"),
        (
            {"EMBEDDING_BASE_URL": "localhost:8080/v1"},
            "EMBEDDING_BASE_URL='localhost:8080/v1' is invalid: expected a URL",
        ),
        (
            {"KNOWLEDGE_DATABASE_URL": "mysql://db/k"},
            "KNOWLEDGE_DATABASE_URL='mysql://db/k' is invalid: expected a URL",
        ),
        ({"KNOWLEDGE_DATA_DIR": "{tmp}/file"}, "KNOWLEDGE_DATA_DIR='{tmp}/file' is invalid: {tmp}/file is a file"),
        ({"KNOWLEDGE_PROMPT_SHARE": "0"}, "KNOWLEDGE_PROMPT_SHARE='0' is invalid: expected a number > 0 and ≤ 0.8"),
        ({"KNOWLEDGE_PROMPT_SHARE": "-0.1"}, "KNOWLEDGE_PROMPT_SHARE='-0.1' is invalid: expected a number > 0"),
        ({"KNOWLEDGE_PROMPT_SHARE": "0.9"}, "KNOWLEDGE_PROMPT_SHARE='0.9' is invalid: expected a number ≤ 0.8"),
        ({"KNOWLEDGE_PROMPT_SHARE": "nan"}, "KNOWLEDGE_PROMPT_SHARE='nan' is invalid: expected a number > 0"),
        (
            {"EMBEDDING_MODEL": "BAAI/bge-small-en-v1.5"},
            "EMBEDDING_MODEL='BAAI/bge-small-en-v1.5' is set but HF_TOKEN is not",
        ),
        ({"KNOWLEDGE_PROMPT_SHARE": "a third"}, "KNOWLEDGE_PROMPT_SHARE='a third' is invalid: expected a number"),
    ],
)
def test_a_bad_value_stops_start_up_naming_the_variable(tmp_path: Path, values: dict[str, str], message: str) -> None:
    tmp = str(tmp_path.resolve())
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(ConfigError) as raised:
        load_settings(Env({name: value.format(tmp=tmp) for name, value in values.items()}))
    assert message.format(tmp=tmp) in str(raised.value)


def test_reranking_is_off_unless_a_server_is_named() -> None:
    assert load_settings(Env({})).knowledge.rerank is None


def test_every_rerank_setting_is_read() -> None:
    rerank = load_settings(
        Env(
            {
                "RERANK_BASE_URL": "https://api.cohere.com/v2",
                "RERANK_MODEL": "rerank-v3.5",
                "RERANK_API_KEY": "co-secret",
                "RERANK_CANDIDATES": "50",
                "RERANK_TIMEOUT_SECONDS": "0.5",
            }
        )
    ).knowledge.rerank
    assert rerank == RerankSettings("https://api.cohere.com/v2", "rerank-v3.5", "co-secret", 50, 0.5)
    tei = load_settings(Env({"RERANK_BASE_URL": "http://tei:8080"})).knowledge.rerank
    assert tei == RerankSettings("http://tei:8080", None, None, 30, 1.0)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"RERANK_MODEL": "bge-reranker-base"}, "RERANK_MODEL='bge-reranker-base' is set but RERANK_BASE_URL is not"),
        ({"RERANK_BASE_URL": "tei:8080"}, "RERANK_BASE_URL='tei:8080' is invalid: expected a URL"),
        ({"RERANK_BASE_URL": "http://tei", "RERANK_CANDIDATES": "1"}, "RERANK_CANDIDATES='1' is invalid"),
        ({"RERANK_BASE_URL": "http://tei", "RERANK_CANDIDATES": "500"}, "expected a whole number ≤ 100"),
        ({"RERANK_BASE_URL": "http://tei", "RERANK_TIMEOUT_SECONDS": "0"}, "expected a number > 0 and ≤ 2.5"),
        ({"RERANK_BASE_URL": "http://tei", "RERANK_TIMEOUT_SECONDS": "nan"}, "RERANK_TIMEOUT_SECONDS='nan'"),
        ({"RERANK_BASE_URL": "http://tei", "RERANK_TIMEOUT_SECONDS": "5"}, "expected a number ≤ 2.5"),
    ],
)
def test_a_bad_rerank_setting_stops_start_up_naming_it(values: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(Env(values))
    assert message in str(raised.value)
