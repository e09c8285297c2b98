"""The model catalog: which models an operator offers, how each is reached, and the message for a bad one."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.env import ConfigError, Env
from config.models import ModelCatalog, Price, gguf_display_name
from config.settings import BackendKind, DocumentSettings, Settings, load_settings

ROUTER = "https://router.huggingface.co/v1"
OLLAMA = "http://localhost:11434/v1"


def settings(**values: str) -> Settings:
    return load_settings(Env(values))


def with_file(tmp_path: Path, text: str, **values: str) -> Settings:
    path = tmp_path / "models.yml"
    path.write_text(text, encoding="utf-8")
    return settings(MODELS_FILE=str(path), **values)


def refused(tmp_path: Path, text: str, **values: str) -> str:
    with pytest.raises(ConfigError) as raised:
        with_file(tmp_path, text, **values)
    return str(raised.value)


def endpoints(catalog: ModelCatalog) -> list[tuple[str, str, BackendKind, str, str | None]]:
    """What each choice is: display name, request model, backend, URL and token."""
    return [
        (
            choice.display_name,
            choice.settings.request_model,
            choice.settings.backend,
            choice.settings.inference_url,
            choice.settings.hf_token,
        )
        for choice in catalog.choices
    ]


def test_models_and_vision_models_through_the_router() -> None:
    loaded = settings(
        HF_TOKEN="hf_x",
        INFERENCE_PROVIDER="together",
        MODELS="meta-llama/Llama-3.1-8B-Instruct, Qwen/Qwen2.5-VL-7B-Instruct",
        VISION_MODELS="Qwen/Qwen2.5-VL-7B-Instruct",
    )
    router = BackendKind.HF_ROUTER
    assert endpoints(loaded.models) == [
        ("Mistral-7B-Instruct-v0.3", "mistralai/Mistral-7B-Instruct-v0.3:together", router, ROUTER, "hf_x"),
        ("Llama-3.1-8B-Instruct", "meta-llama/Llama-3.1-8B-Instruct:together", router, ROUTER, "hf_x"),
        ("Qwen2.5-VL-7B-Instruct", "Qwen/Qwen2.5-VL-7B-Instruct:together", router, ROUTER, "hf_x"),
    ]
    assert loaded.models.default.settings == loaded.model
    assert [choice.id for choice in loaded.models.vision_choices()] == ["Qwen/Qwen2.5-VL-7B-Instruct"]
    assert all(choice.settings.sampling == loaded.model.sampling for choice in loaded.models.choices)


def test_model_id_stays_the_default_and_first_wherever_models_lists_it() -> None:
    loaded = settings(HF_TOKEN="hf_x", MODEL_ID="my/default", MODELS="a/one, my/default, a/two, a/one")
    assert [choice.id for choice in loaded.models.choices] == ["my/default", "a/one", "a/two"]
    assert loaded.models.default.id == "my/default"


def test_models_through_an_openai_compatible_server_share_its_url_and_key() -> None:
    loaded = settings(INFERENCE_BASE_URL="http://vllm:8000/v1", MODEL_ID="big", MODELS="small")
    compatible = BackendKind.OPENAI_COMPATIBLE
    assert endpoints(loaded.models) == [
        ("big", "big", compatible, "http://vllm:8000/v1", None),
        ("small", "small", compatible, "http://vllm:8000/v1", None),
    ]
    assert loaded.models.choices[1].settings.describe() == "small via OpenAI-compatible server at http://vllm:8000/v1"


def test_find_takes_the_id_the_display_name_or_the_ids_last_part_in_any_case(tmp_path: Path) -> None:
    loaded = with_file(
        tmp_path,
        "models:\n  - id: Qwen/Qwen2.5-VL-7B-Instruct\n    name: Qwen Vision\n",
        HF_TOKEN="hf_x",
    )
    catalog = loaded.models
    assert catalog.find("mistralai/mistral-7b-instruct-v0.3") is catalog.default
    assert catalog.find("Mistral-7B-Instruct-v0.3") is catalog.default
    assert catalog.find(" qwen vision ") is catalog.choices[1]
    assert catalog.find("qwen2.5-vl-7b-instruct") is catalog.choices[1]
    assert catalog.find("gpt-4") is None
    assert catalog.find("") is None


def test_a_file_mixing_the_router_and_a_local_ollama_server(tmp_path: Path) -> None:
    loaded = with_file(
        tmp_path,
        """
models:
  - id: Qwen/Qwen2.5-VL-7B-Instruct
    name: Qwen Vision
    provider: hyperbolic
    vision: true
    temperature: 0.2
    max_tokens: 800
  - id: llama3.2
    name: Llama (Ollama)
    base_url: http://localhost:11434/v1
    top_p: 0.5
  - id: meta-llama/Llama-3.1-8B-Instruct
    token_env: TEAM_TOKEN
  - id: private/model
    base_url: https://llm.example.com/v1
    token_env: PRIVATE_KEY
""",
        HF_TOKEN="hf_default",
        TEAM_TOKEN="hf_team",
        PRIVATE_KEY="sk-private",
        MODELS="meta-llama/Llama-3.1-8B-Instruct",
    )
    router, compatible = BackendKind.HF_ROUTER, BackendKind.OPENAI_COMPATIBLE
    assert endpoints(loaded.models) == [
        ("Mistral-7B-Instruct-v0.3", "mistralai/Mistral-7B-Instruct-v0.3", router, ROUTER, "hf_default"),
        # MODELS listed it; the file's entry (with its own token) wins and keeps its place.
        ("Llama-3.1-8B-Instruct", "meta-llama/Llama-3.1-8B-Instruct", router, ROUTER, "hf_team"),
        ("Qwen Vision", "Qwen/Qwen2.5-VL-7B-Instruct:hyperbolic", router, ROUTER, "hf_default"),
        ("Llama (Ollama)", "llama3.2", compatible, OLLAMA, None),
        ("model", "private/model", compatible, "https://llm.example.com/v1", "sk-private"),
    ]
    qwen, ollama = loaded.models.find("Qwen Vision"), loaded.models.find("llama3.2")
    assert qwen is not None and ollama is not None
    assert (qwen.settings.sampling.temperature, qwen.settings.sampling.max_new_tokens) == (0.2, 800)
    assert qwen.settings.sampling.top_p == loaded.model.sampling.top_p
    assert ollama.settings.sampling.top_p == 0.5
    assert ollama.settings.describe() == f"llama3.2 via OpenAI-compatible server at {OLLAMA}"
    assert [choice.display_name for choice in loaded.models.vision_choices()] == ["Qwen Vision"]
    assert all("hf_" not in choice.settings.describe() for choice in loaded.models.choices)


def test_vision_models_adds_to_the_files_vision_entries(tmp_path: Path) -> None:
    loaded = with_file(
        tmp_path,
        "models:\n  - id: llava\n    base_url: http://localhost:11434/v1\n    vision: true\n  - id: bakllava\n",
        INFERENCE_BASE_URL="http://localhost:11434/v1",
        VISION_MODELS="BAKLLAVA",
    )
    assert [choice.id for choice in loaded.models.vision_choices()] == ["llava", "bakllava"]


def test_a_file_entry_for_model_id_changes_the_default_but_keeps_it_first(tmp_path: Path) -> None:
    loaded = with_file(
        tmp_path,
        "models:\n  - id: a/other\n  - id: mistralai/Mistral-7B-Instruct-v0.3\n    name: Mistral\n    provider: auto\n",
        HF_TOKEN="hf_x",
        INFERENCE_PROVIDER="together",
    )
    assert [choice.display_name for choice in loaded.models.choices] == ["Mistral", "other"]
    # "auto" lets the router pick; the entry without a provider inherits INFERENCE_PROVIDER.
    assert loaded.models.default.settings.request_model == "mistralai/Mistral-7B-Instruct-v0.3"
    assert loaded.models.choices[1].settings.request_model == "a/other:together"


def test_nothing_configured_offers_the_embedded_model_alone() -> None:
    loaded = settings()
    assert len(loaded.models.choices) == 1
    default = loaded.models.default
    assert default.id == default.display_name == "SmolLM2-135M-Instruct" and not default.vision
    assert default.settings == loaded.model and default.settings.backend is BackendKind.LOCAL
    assert loaded.models.find("smollm2-135m-instruct") is default


def test_beside_the_local_model_file_entries_need_their_own_server_or_token(tmp_path: Path) -> None:
    loaded = with_file(
        tmp_path,
        "models:\n  - id: llama3.2\n    base_url: http://localhost:11434/v1\n"
        "  - id: mistralai/Mistral-Nemo-Instruct-2407\n    token_env: TEAM_TOKEN\n    provider: together\n",
        TEAM_TOKEN="hf_team",
    )
    local, compatible, router = BackendKind.LOCAL, BackendKind.OPENAI_COMPATIBLE, BackendKind.HF_ROUTER
    assert [(choice.display_name, choice.settings.backend) for choice in loaded.models.choices] == [
        ("SmolLM2-135M-Instruct", local),
        ("llama3.2", compatible),
        ("Mistral-Nemo-Instruct-2407", router),
    ]
    ollama, nemo = loaded.models.choices[1].settings, loaded.models.choices[2].settings
    assert (ollama.inference_url, ollama.hf_token, ollama.local_model_path) == (OLLAMA, None, None)
    assert (nemo.request_model, nemo.hf_token) == ("mistralai/Mistral-Nemo-Instruct-2407:together", "hf_team")
    # The local model's sampling is tuned for a 135M model; the others get the remote defaults.
    assert loaded.model.sampling.temperature == 0.3
    assert ollama.sampling.temperature == nemo.sampling.temperature == 0.7
    assert ollama.sampling.repeat_penalty == 1.0


def test_beside_the_local_model_an_entry_without_server_or_token_is_refused(tmp_path: Path) -> None:
    message = refused(tmp_path, "models:\n  - id: a/b\n    provider: together\n")
    assert "entry 1 (id 'a/b'): field 'token_env'" in message
    assert "Hugging Face router, which needs a token" in message


def test_models_beside_the_local_model_is_refused_with_what_to_do() -> None:
    with pytest.raises(ConfigError) as raised:
        settings(MODELS="a/b")
    assert "MODELS needs HF_TOKEN or INFERENCE_BASE_URL" in str(raised.value)
    assert "MODELS_FILE" in str(raised.value)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"VISION_MODELS": "Qwen/Qwen2.5-VL-7B-Instruct"}, "VISION_MODELS lists 'Qwen/Qwen2.5-VL-7B-Instruct'"),
        ({"MODELS": "a/b, c d"}, "MODELS contains 'c d': expected comma-separated model ids"),
        ({"MODELS": "one/Llama, two/llama"}, "MODELS: 'one/Llama' and 'two/llama' would both be shown as 'llama'"),
        ({"MAX_IMAGES": "11"}, "MAX_IMAGES='11' is invalid: expected a whole number ≤ 10"),
        ({"IMAGE_MAX_SIDE": "32"}, "IMAGE_MAX_SIDE='32' is invalid: expected a whole number ≥ 64"),
    ],
)
def test_a_bad_model_or_image_setting_names_the_variable(values: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        settings(HF_TOKEN="hf_x", **values)
    assert message in str(raised.value)


def test_images_default_to_four_per_message_scaled_to_1568_pixels() -> None:
    assert (settings().images.max_images, settings().images.max_side) == (4, 1568)
    images = settings(MAX_IMAGES="0", IMAGE_MAX_SIDE="8192").images
    assert (images.max_images, images.max_side) == (0, 8192)


def test_documents_default_to_20_mb_100_000_characters_and_20_seconds() -> None:
    assert settings().documents == DocumentSettings(20_000_000, 100_000, 20.0)
    documents = settings(MAX_DOCUMENT_BYTES="0", MAX_DOCUMENT_CHARS="5000", DOCUMENT_TIMEOUT_SECONDS="2.5").documents
    assert documents == DocumentSettings(0, 5000, 2.5)
    with pytest.raises(ConfigError, match="MAX_DOCUMENT_CHARS='0' is invalid"):
        settings(MAX_DOCUMENT_CHARS="0")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("models:\n  - id: a/b\n    temprature: 0.2\n", "entry 1 (id 'a/b'): unknown field 'temprature': expected id,"),
        ("models:\n  - id: a/b\n  - name: Nameless\n", "entry 2: field 'id' is missing"),
        ("models:\n  - id: ''\n", "entry 1: field 'id': expected non-empty text, got str ''"),
        ("models:\n  - id: 7\n", "entry 1: field 'id': expected non-empty text, got int 7"),
        (
            "models:\n  - id: a/b\n    provider: together\n    base_url: http://x/v1\n",
            "entry 1 (id 'a/b'): fields 'provider' and 'base_url' are both set",
        ),
        (
            "models:\n  - id: llama3\n    base_url: localhost:11434\n",
            "entry 1 (id 'llama3'): field 'base_url': 'localhost:11434' is not a URL",
        ),
        (
            "models:\n  - id: llama3\n    base_url: ftp://host/v1\n",
            "entry 1 (id 'llama3'): field 'base_url': 'ftp://host/v1' is not a URL",
        ),
        (
            "models:\n  - id: a/b\n    token_env: NOT_SET_ANYWHERE\n",
            "entry 1 (id 'a/b'): field 'token_env': the environment variable NOT_SET_ANYWHERE is not set",
        ),
        ("models:\n  - id: a/b\n    vision: maybe\n", "entry 1 (id 'a/b'): field 'vision': expected true or false"),
        ("models:\n  - id: a/b\n    temperature: hot\n", "field 'temperature': expected a number, got str 'hot'"),
        ("models:\n  - id: a/b\n    temperature: 3\n", "field 'temperature': 3 is out of range"),
        ("models:\n  - id: a/b\n    top_p: 0\n", "entry 1 (id 'a/b'): field 'top_p': 0 is out of range"),
        ("models:\n  - id: a/b\n    max_tokens: 1.5\n", "field 'max_tokens': expected a whole number, got float 1.5"),
        ("models:\n  - id: a/b\n    max_tokens: true\n", "field 'max_tokens': expected a whole number, got bool"),
        ("models:\n  - id: a/b\n    name: [x]\n", "entry 1 (id 'a/b'): field 'name': expected non-empty text"),
        (
            "models:\n  - id: a/b\n    max_tokens: 8192\n",
            "entry 1 (id 'a/b'): field 'max_tokens': 8192 must be smaller than CONTEXT_TOKENS=8192",
        ),
        (
            "models:\n  - id: a/one\n    name: Fast\n  - id: a/two\n    name: fast\n",
            "entry 2 (id 'a/two'): field 'name': display name 'fast' is already 'a/one''s",
        ),
        (
            "models:\n  - id: a/Mistral-7B-Instruct-v0.3\n",
            "entry 1 (id 'a/Mistral-7B-Instruct-v0.3'): field 'name': display name 'Mistral-7B-Instruct-v0.3' is "
            "already 'mistralai/Mistral-7B-Instruct-v0.3''s",
        ),
        ("models:\n  - id: a/b\n  - id: a/b\n", "entry 2 (id 'a/b'): field 'id': entry 1 has this id already"),
        ("models:\n  - id: a/b\n    price: 3\n", "entry 1 (id 'a/b'): field 'price': expected {input: <USD per 1M"),
        (
            "models:\n  - id: a/b\n  - id: c/d\n    price: {input: 0.2}\n",
            "entry 2 (id 'c/d'): field 'price': 'output' is missing: expected both, {input: <USD per 1M",
        ),
        ("models:\n  - id: a/b\n    price: {output: 1}\n", "field 'price': 'input' is missing"),
        (
            "models:\n  - id: a/b\n    price: {input: 1, output: 2, cached: 0.1}\n",
            "entry 1 (id 'a/b'): field 'price': unknown key 'cached': expected {input:",
        ),
        (
            "models:\n  - id: a/b\n    price: {input: $3, output: 1}\n",
            "entry 1 (id 'a/b'): field 'price': 'input': expected a number of USD per 1M tokens, got str '$3'",
        ),
        (
            "models:\n  - id: a/b\n    price: {input: 1, output: -0.5}\n",
            "entry 1 (id 'a/b'): field 'price': 'output': -0.5 is out of range: expected a number of USD per 1M",
        ),
        ("models:\n  - id: a/b\n    price: {input: 1, output: .inf}\n", "field 'price': 'output': inf is out of"),
        ("models:\n  - id: a/b\n    price: {input: true, output: 1}\n", "'input': expected a number of USD"),
        ("models:\n  - a/b\n", "entry 1: expected a mapping of fields"),
        ("model:\n  - id: a/b\n", "expected a mapping with a `models:` list"),
        ("", "expected a mapping with a `models:` list"),
        ("models: []\nextra: 1\n", "unknown top-level field 'extra'"),
        ("models:\n  - id: a/b\n   name: x\n", "is not valid YAML"),
    ],
)
def test_a_bad_models_file_names_the_file_the_entry_and_the_field(tmp_path: Path, text: str, message: str) -> None:
    shown = refused(tmp_path, text, HF_TOKEN="hf_x")
    assert shown.startswith(f"MODELS_FILE={str(tmp_path / 'models.yml')!r}")
    assert message in shown


def test_invalid_yaml_says_where(tmp_path: Path) -> None:
    assert "line 3" in refused(tmp_path, "models:\n  - id: a/b\n   name: x\n", HF_TOKEN="hf_x")


def test_an_unreadable_models_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yml"
    with pytest.raises(ConfigError) as raised:
        settings(HF_TOKEN="hf_x", MODELS_FILE=str(missing))
    assert str(raised.value) == f"MODELS_FILE={str(missing)!r} cannot be read: No such file or directory"


def test_a_token_pasted_into_token_env_is_never_repeated(tmp_path: Path) -> None:
    message = refused(tmp_path, "models:\n  - id: a/b\n    token_env: hf_SecretTokenValue123\n", HF_TOKEN="hf_x")
    assert "entry 1 (id 'a/b'): field 'token_env': expected the NAME of an environment variable" in message
    assert "SecretTokenValue" not in message


@pytest.mark.parametrize(
    ("file_name", "shown"),
    [
        ("SmolLM2-135M-Instruct.Q4_1.gguf", "SmolLM2-135M-Instruct"),
        ("mistral-7b-instruct-v0.2.Q4_K_M.gguf", "mistral-7b-instruct-v0.2"),
        ("Llama-3.2-1B-Instruct-f16.gguf", "Llama-3.2-1B-Instruct"),
        ("plain.gguf", "plain"),
    ],
)
def test_a_local_models_name_comes_from_its_gguf_file(file_name: str, shown: str) -> None:
    assert gguf_display_name(Path("/models") / file_name) == shown


def test_a_models_file_price_is_per_million_tokens_and_the_local_model_is_free(tmp_path: Path) -> None:
    loaded = with_file(
        tmp_path,
        """
models:
  - id: Qwen/Qwen2.5-VL-7B-Instruct
    price: {input: 0.2, output: 0.6}
  - id: meta-llama/Llama-3.1-8B-Instruct
    price: {input: 0, output: 0}
  - id: other/unpriced
""",
        HF_TOKEN="hf_x",
        MODELS="listed/model",
    )
    prices = {choice.id: choice.price for choice in loaded.models.choices}
    assert prices == {
        "mistralai/Mistral-7B-Instruct-v0.3": None,  # MODEL_ID: tokens only
        "listed/model": None,  # MODELS: tokens only
        "Qwen/Qwen2.5-VL-7B-Instruct": Price(0.2, 0.6),
        "meta-llama/Llama-3.1-8B-Instruct": Price(0.0, 0.0),
        "other/unpriced": None,
    }
    qwen = prices["Qwen/Qwen2.5-VL-7B-Instruct"]
    assert qwen is not None
    assert qwen.cost(1_000_000, 0) == pytest.approx(0.2)
    assert qwen.cost(1_000, 500) == pytest.approx((1_000 * 0.2 + 500 * 0.6) / 1_000_000)
    assert qwen.cost(0, 0) == 0.0

    # The file's entry for MODEL_ID's id gives the default its price.
    priced_default = with_file(
        tmp_path,
        "models:\n  - id: mistralai/Mistral-7B-Instruct-v0.3\n    price: {input: 1, output: 2}\n",
        HF_TOKEN="hf_x",
    )
    assert priced_default.models.default.price == Price(1.0, 2.0)

    local = settings()  # nothing configured: the embedded in-process model
    assert local.models.default.settings.backend is BackendKind.LOCAL
    assert local.models.default.price == Price(0.0, 0.0)
    assert local.models.default.price.cost(10_000, 10_000) == 0.0
