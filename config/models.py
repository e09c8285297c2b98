"""The model catalog: every model a conversation may choose, and how each one is reached.

Choices come from three settings, the default first:

- `MODEL_ID`: the default for new conversations, reached through the configured backend (or the
  local GGUF model when neither HF_TOKEN nor INFERENCE_BASE_URL is set);
- `MODELS`: comma-separated ids reached the same way as MODEL_ID;
- `MODELS_FILE`: a YAML file, one entry per model, each with its own endpoint if it wants one
  (an entry wins over a MODELS id that is the same):

```yaml
models:
  - id: mistralai/Mistral-7B-Instruct-v0.3   # the model id sent to the server (required)
    name: Mistral 7B            # display name (default: the id's last path part)
    provider: together          # through the Hugging Face router with this provider ("auto": it picks)
    vision: true                # accepts images
    temperature: 0.2            # request parameters: temperature, top_p, max_tokens
    max_tokens: 800
  - id: llama3.2-vision
    name: Llama Vision (Ollama)
    base_url: http://localhost:11434/v1   # or an OpenAI-compatible server of its own
    vision: true
  - id: meta-llama/Llama-3.1-8B-Instruct
    token_env: TEAM_HF_TOKEN    # the NAME of the variable holding its token (never the token itself)
```

An entry with neither `provider` nor `base_url` is reached like MODEL_ID (through the router
when the default is the local model). `VISION_MODELS` marks more choices as accepting images.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

import yaml  # type: ignore[import-untyped, unused-ignore]  # stubs (types-PyYAML) are optional

from config.env import ConfigError, Env

ENTRY_FIELDS = ("id", "name", "provider", "base_url", "token_env", "vision", "temperature", "top_p", "max_tokens")
# Quantization tags ending a GGUF file's name ("SmolLM2-135M-Instruct.Q4_1.gguf").
_QUANT_SUFFIX = re.compile(r"[.-](?:I?Q\d\w*|F16|F32|BF16)$", re.IGNORECASE)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class BackendKind(enum.Enum):
    HF_ROUTER = "Hugging Face router"
    OPENAI_COMPATIBLE = "OpenAI-compatible server"
    LOCAL = "local GGUF model"


@dataclass(frozen=True)
class SamplingSettings:
    max_new_tokens: int
    temperature: float
    top_p: float
    repeat_penalty: float


@dataclass(frozen=True)
class ModelSettings:
    backend: BackendKind
    model_id: str
    hf_token: str | None
    provider: str | None
    base_url: str | None
    router_url: str
    local_model_path: Path | None
    gpu_layers: int
    timeout_seconds: float
    loading_retries: int
    loading_backoff_seconds: float
    sampling: SamplingSettings

    @property
    def inference_url(self) -> str:
        return self.base_url if self.backend is BackendKind.OPENAI_COMPATIBLE and self.base_url else self.router_url

    @property
    def request_model(self) -> str:
        """The model named in each request: the router picks the provider after a colon."""
        if self.backend is BackendKind.HF_ROUTER and self.provider and self.provider != "auto":
            return f"{self.model_id}:{self.provider}"
        return self.model_id

    def describe(self) -> str:
        """One human line naming what answers; never includes the token."""
        if self.backend is BackendKind.LOCAL:
            return f"{self.backend.value} {self.local_model_path.name if self.local_model_path else '?'}"
        if self.backend is BackendKind.OPENAI_COMPATIBLE:
            return f"{self.model_id} via {self.backend.value} at {self.base_url}"
        provider = f" (provider {self.provider})" if self.provider else ""
        return f"{self.model_id} via {self.backend.value}{provider}"


@dataclass(frozen=True)
class ModelChoice:
    """One model a conversation may answer with."""

    id: str  # the model id sent to the server
    display_name: str
    vision: bool
    settings: ModelSettings


@dataclass(frozen=True)
class ModelCatalog:
    """Every choice, the default (MODEL_ID, or the local model) first."""

    choices: tuple[ModelChoice, ...]

    def __post_init__(self) -> None:
        if not self.choices:
            raise ValueError("a model catalog needs at least its default model")

    @property
    def default(self) -> ModelChoice:
        return self.choices[0]

    def find(self, name: str) -> ModelChoice | None:
        """The choice with this id, display name or id's last path part (case-insensitive)."""
        wanted = name.strip().casefold()
        if not wanted:
            return None
        for key in (_id_of, _display_name_of, _short_name_of):
            for choice in self.choices:
                if key(choice).casefold() == wanted:
                    return choice
        return None

    def vision_choices(self) -> tuple[ModelChoice, ...]:
        """The choices that accept images."""
        return tuple(choice for choice in self.choices if choice.vision)


@dataclass(frozen=True)
class _Entry:
    """One validated MODELS_FILE entry."""

    where: str  # how error messages name it: "MODELS_FILE='m.yml', entry 2 (id 'x')"
    id: str
    name: str | None
    provider: str | None
    base_url: str | None
    token: str | None  # the value of the variable its token_env names
    vision: bool | None
    temperature: float | None
    top_p: float | None
    max_tokens: int | None


def load_catalog(env: Env, default: ModelSettings, context_tokens: int) -> ModelCatalog:
    """Read MODELS, MODELS_FILE and VISION_MODELS into the catalog; raise ConfigError on a bad one."""
    listed = _id_list(env, "MODELS")
    if listed and default.backend is BackendKind.LOCAL:
        raise ConfigError(_models_need_a_backend(env))
    first = _default_choice(default)
    choices = {first.id: first}  # by id, in order: the default, MODELS', then the file's new ones
    origins: dict[str, str] = {}  # a choice's id → the file entry it came from
    for model_id in listed:
        choices.setdefault(model_id, _choice(model_id, None, False, replace(default, model_id=model_id)))
    file_name = env.raw("MODELS_FILE")
    if file_name is not None:
        for entry in _read_entries(file_name, env, context_tokens):
            choices[entry.id] = _file_choice(entry, default, env)
            origins[entry.id] = entry.where
    _check_display_names(tuple(choices.values()), origins)
    return ModelCatalog(_with_vision(tuple(choices.values()), _id_list(env, "VISION_MODELS")))


def _models_need_a_backend(env: Env) -> str:
    why = (
        "LOCAL_MODEL_PATH makes the bot answer with its in-process model"
        if env.raw("LOCAL_MODEL_PATH")
        else "without them the bot answers with the embedded in-process model"
    )
    return (
        "MODELS needs HF_TOKEN or INFERENCE_BASE_URL: its models are reached like MODEL_ID, and "
        f"{why}. To offer other models beside it, list them in MODELS_FILE with a base_url or a token_env"
    )


def _default_choice(default: ModelSettings) -> ModelChoice:
    if default.backend is BackendKind.LOCAL and default.local_model_path is not None:
        name = gguf_display_name(default.local_model_path)
        return ModelChoice(id=name, display_name=name, vision=False, settings=default)
    return _choice(default.model_id, None, False, default)


def _choice(model_id: str, name: str | None, vision: bool, settings: ModelSettings) -> ModelChoice:
    return ModelChoice(id=model_id, display_name=name or _short_name(model_id), vision=vision, settings=settings)


def gguf_display_name(path: Path) -> str:
    """A GGUF file's model name, without extension and quantization tag."""
    stem = path.name[: -len(".gguf")] if path.name.lower().endswith(".gguf") else path.name
    return _QUANT_SUFFIX.sub("", stem) or stem


def _short_name(model_id: str) -> str:
    return model_id.rstrip("/").rsplit("/", 1)[-1] or model_id


def _id_of(choice: ModelChoice) -> str:
    return choice.id


def _display_name_of(choice: ModelChoice) -> str:
    return choice.display_name


def _short_name_of(choice: ModelChoice) -> str:
    return _short_name(choice.id)


def _id_list(env: Env, name: str) -> tuple[str, ...]:
    """A comma-separated list of model ids, in order, without repeats."""
    value = env.raw(name)
    if value is None:
        return ()
    ids = [part.strip() for part in value.split(",") if part.strip()]
    for model_id in ids:
        if any(character.isspace() for character in model_id):
            raise ConfigError(f"{name} contains {model_id!r}: expected comma-separated model ids")
    return tuple(dict.fromkeys(ids))


def _with_vision(choices: tuple[ModelChoice, ...], vision_ids: tuple[str, ...]) -> tuple[ModelChoice, ...]:
    """The choices with those VISION_MODELS names marked as accepting images."""
    catalog = ModelCatalog(choices)
    marked: set[str] = set()
    for wanted in vision_ids:
        found = catalog.find(wanted)
        if found is None:
            known = ", ".join(choice.id for choice in choices)
            raise ConfigError(
                f"VISION_MODELS lists {wanted!r}, which is not one of the models "
                f"(MODEL_ID, MODELS and MODELS_FILE): {known}"
            )
        marked.add(found.id)
    return tuple(replace(choice, vision=True) if choice.id in marked else choice for choice in choices)


def _check_display_names(choices: tuple[ModelChoice, ...], origins: Mapping[str, str]) -> None:
    """Two choices shown under one name could not be told apart (nor chosen by it)."""
    seen: dict[str, ModelChoice] = {}
    for choice in choices:
        other = seen.setdefault(choice.display_name.casefold(), choice)
        if other is choice:
            continue
        where = origins.get(choice.id) or origins.get(other.id)
        if where is None:
            raise ConfigError(
                f"MODELS: {other.id!r} and {choice.id!r} would both be shown as {choice.display_name!r}: "
                "give one of them a distinct name in MODELS_FILE"
            )
        named = other if where == origins.get(choice.id) else choice
        raise ConfigError(
            f"{where}: field 'name': display name {choice.display_name!r} is already "
            f"{named.id!r}'s: give each model a distinct name"
        )


def _file_choice(entry: _Entry, default: ModelSettings, env: Env) -> ModelChoice:
    """A file entry's choice: the default's settings with its endpoint, token and parameters."""
    settings = replace(_endpoint(entry, default), sampling=_sampling(entry, default, env))
    return _choice(entry.id, entry.name, bool(entry.vision), settings)


def _endpoint(entry: _Entry, default: ModelSettings) -> ModelSettings:
    """How the entry is reached: its own server, the router, or the default's server."""
    if entry.base_url is not None:
        return replace(
            default,
            backend=BackendKind.OPENAI_COMPATIBLE,
            model_id=entry.id,
            base_url=entry.base_url,
            hf_token=entry.token,
            provider=None,
            local_model_path=None,
        )
    if entry.provider is None and default.backend is BackendKind.OPENAI_COMPATIBLE:
        return replace(default, model_id=entry.id, hf_token=entry.token or default.hf_token)
    token = entry.token or default.hf_token
    if token is None:
        raise ConfigError(
            f"{entry.where}: field 'token_env': this model is reached through the Hugging Face router, "
            "which needs a token: set token_env (or HF_TOKEN), or give the entry a base_url"
        )
    return replace(
        default,
        backend=BackendKind.HF_ROUTER,
        model_id=entry.id,
        hf_token=token,
        provider=entry.provider or default.provider,
        base_url=None,
        local_model_path=None,
    )


def sampling_from_env(env: Env, *, local: bool) -> SamplingSettings:
    """MAX_NEW_TOKENS, TEMPERATURE, TOP_P and REPEAT_PENALTY, with the defaults of a local model or a remote one."""
    return SamplingSettings(
        max_new_tokens=env.int("MAX_NEW_TOKENS", 500, minimum=1),
        # Small local models loop under greedy decoding; these defaults keep SmolLM2 coherent.
        temperature=env.float("TEMPERATURE", 0.3 if local else 0.7, minimum=0.0, maximum=2.0),
        top_p=env.float("TOP_P", 0.95, minimum=0.01, maximum=1.0),
        repeat_penalty=env.float("REPEAT_PENALTY", 1.1 if local else 1.0, minimum=0.5, maximum=2.0),
    )


def _sampling(entry: _Entry, default: ModelSettings, env: Env) -> SamplingSettings:
    """The default's sampling with the entry's parameters; a remote model beside the local
    default gets the remote defaults (the local ones are tuned for small models)."""
    base = sampling_from_env(env, local=False) if default.backend is BackendKind.LOCAL else default.sampling
    return replace(
        base,
        temperature=base.temperature if entry.temperature is None else entry.temperature,
        top_p=base.top_p if entry.top_p is None else entry.top_p,
        max_new_tokens=base.max_new_tokens if entry.max_tokens is None else entry.max_tokens,
    )


def _read_entries(file_name: str, env: Env, context_tokens: int) -> list[_Entry]:
    """MODELS_FILE's entries, each validated; ConfigError names the file, entry and field."""
    source = f"MODELS_FILE={file_name!r}"
    raw_entries = _load_yaml(file_name, source)
    entries: list[_Entry] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(raw_entries, start=1):
        entry = _parse_entry(raw, f"{source}, entry {index}", env, context_tokens)
        if entry.id in seen:
            raise ConfigError(f"{entry.where}: field 'id': entry {seen[entry.id]} has this id already")
        seen[entry.id] = index
        entries.append(entry)
    return entries


def _load_yaml(file_name: str, source: str) -> list[object]:
    """The file's `models:` list."""
    try:
        text = Path(file_name).expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise ConfigError(f"{source} cannot be read: {reason}") from None
    try:
        document: object = yaml.safe_load(text)
    except yaml.YAMLError as error:
        detail = " ".join(str(error).split())
        raise ConfigError(f"{source} is not valid YAML: {detail}") from None
    if not isinstance(document, dict) or not isinstance(document.get("models"), list):
        raise ConfigError(f"{source}: expected a mapping with a `models:` list, one entry per model")
    unknown = sorted(str(key) for key in document if key != "models")
    if unknown:
        raise ConfigError(f"{source}: unknown top-level field {unknown[0]!r}: expected only `models:`")
    models: list[object] = document["models"]
    return models


def _parse_entry(raw: object, position: str, env: Env, context_tokens: int) -> _Entry:
    """One entry, checked field by field."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{position}: expected a mapping of fields (id, name, provider, base_url, …)")
    model_id = raw.get("id")
    where = f"{position} (id {model_id!r})" if isinstance(model_id, str) and model_id.strip() else position
    unknown = [str(key) for key in raw if key not in ENTRY_FIELDS]
    if unknown:
        raise ConfigError(f"{where}: unknown field {unknown[0]!r}: expected {', '.join(ENTRY_FIELDS)}")
    fields = _Fields(raw, where)
    entry_id = fields.text("id")
    if entry_id is None:
        raise ConfigError(f"{where}: field 'id' is missing: the model id sent to the server")
    if any(character.isspace() for character in entry_id):
        raise ConfigError(f"{where}: field 'id': {entry_id!r} contains spaces")
    provider, base_url = fields.text("provider"), fields.url("base_url")
    if provider is not None and base_url is not None:
        raise ConfigError(
            f"{where}: fields 'provider' and 'base_url' are both set: "
            "provider is for the Hugging Face router, base_url for a server of its own; keep one"
        )
    return _Entry(
        where=where,
        id=entry_id,
        name=fields.text("name"),
        provider=provider,
        base_url=base_url,
        token=_token(env, fields.env_name("token_env"), where),
        vision=fields.flag("vision"),
        temperature=fields.number("temperature", 0.0, 2.0),
        top_p=fields.number("top_p", 0.01, 1.0),
        max_tokens=_max_tokens(fields.whole("max_tokens"), context_tokens, where),
    )


def _token(env: Env, token_env: str | None, where: str) -> str | None:
    """The value of the variable token_env names; never echoed anywhere."""
    if token_env is None:
        return None
    token = env.raw(token_env)
    if token is None:
        raise ConfigError(f"{where}: field 'token_env': the environment variable {token_env} is not set")
    return token


def _max_tokens(value: int | None, context_tokens: int, where: str) -> int | None:
    if value is not None and value >= context_tokens:
        raise ConfigError(
            f"{where}: field 'max_tokens': {value} must be smaller than CONTEXT_TOKENS={context_tokens}: "
            "the prompt needs room too"
        )
    return value


class _Fields:
    """Typed readers for one entry's fields; each error names the entry and the field."""

    def __init__(self, raw: Mapping[object, object], where: str) -> None:
        self._raw = raw
        self._where = where

    def text(self, field: str) -> str | None:
        value = self._raw.get(field)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise self._error(field, f"expected non-empty text, got {_shown(value)}")
        return value.strip()

    def url(self, field: str) -> str | None:
        value = self.text(field)
        if value is None:
            return None
        try:
            parts = urlsplit(value)
            valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        except ValueError:
            valid = False
        if not valid:
            raise self._error(field, f"{value!r} is not a URL: expected http://… or https://…")
        return value

    def env_name(self, field: str) -> str | None:
        value = self._raw.get(field)
        if value is None:
            return None
        if not isinstance(value, str) or not _ENV_NAME.fullmatch(value.strip()) or value.startswith("hf_"):
            # Never echoed: a token pasted here instead of a variable's name must not reach the logs.
            raise self._error(field, "expected the NAME of an environment variable holding the token, not the token")
        return value.strip()

    def flag(self, field: str) -> bool | None:
        value = self._raw.get(field)
        if value is None or isinstance(value, bool):
            return value
        raise self._error(field, f"expected true or false, got {_shown(value)}")

    def number(self, field: str, minimum: float, maximum: float) -> float | None:
        value = self._raw.get(field)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._error(field, f"expected a number, got {_shown(value)}")
        if not minimum <= value <= maximum:
            raise self._error(field, f"{value} is out of range: expected a number from {minimum} to {maximum}")
        return float(value)

    def whole(self, field: str) -> int | None:
        value = self._raw.get(field)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._error(field, f"expected a whole number, got {_shown(value)}")
        if value < 1:
            raise self._error(field, f"{value} is out of range: expected a whole number ≥ 1")
        return value

    def _error(self, field: str, problem: str) -> ConfigError:
        return ConfigError(f"{self._where}: field {field!r}: {problem}")


def _shown(value: object) -> str:
    """A wrong value as an operator would recognise it in the file."""
    return f"{type(value).__name__} {value!r}"
