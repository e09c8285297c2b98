"""MODELS_FILE: a YAML file of models, each checked field by field; an error names the file, the
entry and the field (see config.catalog for the file's format)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

import yaml  # type: ignore[import-untyped, unused-ignore]  # stubs (types-PyYAML) are optional

from config.env import ConfigError, Env
from config.models import BackendKind, ModelChoice, ModelSettings, Price, SamplingSettings, choice_of, sampling_from_env

ENTRY_FIELDS = (
    "id",
    "name",
    "provider",
    "base_url",
    "token_env",
    "vision",
    "tools",
    "temperature",
    "top_p",
    "max_tokens",
    "price",
)
PRICE_FIELDS = ("input", "output")  # USD per million tokens of the prompt, and of the answer
_PRICE_FORM = "{input: <USD per 1M prompt tokens>, output: <USD per 1M answer tokens>}"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class FileEntry:
    """One validated MODELS_FILE entry."""

    where: str  # how error messages name it: "MODELS_FILE='m.yml', entry 2 (id 'x')"
    id: str
    name: str | None
    provider: str | None
    base_url: str | None
    token: str | None  # the value of the variable its token_env names
    vision: bool | None
    tools: bool | None
    temperature: float | None
    top_p: float | None
    max_tokens: int | None
    price: Price | None  # None: none given (counted in tokens only)


def file_choice(entry: FileEntry, default: ModelSettings, env: Env) -> ModelChoice:
    """A file entry's choice: the default's settings with its endpoint, token and parameters."""
    settings = replace(_endpoint(entry, default), sampling=_sampling(entry, default, env))
    choice = choice_of(entry.id, entry.name, bool(entry.vision), settings)
    return replace(choice, tools=entry.tools, price=entry.price)


def _endpoint(entry: FileEntry, default: ModelSettings) -> ModelSettings:
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


def _sampling(entry: FileEntry, default: ModelSettings, env: Env) -> SamplingSettings:
    """The default's sampling with the entry's parameters; a remote model beside the local
    default gets the remote defaults (the local ones are tuned for small models)."""
    base = sampling_from_env(env, local=False) if default.backend is BackendKind.LOCAL else default.sampling
    return replace(
        base,
        temperature=base.temperature if entry.temperature is None else entry.temperature,
        top_p=base.top_p if entry.top_p is None else entry.top_p,
        max_new_tokens=base.max_new_tokens if entry.max_tokens is None else entry.max_tokens,
    )


def read_entries(file_name: str, env: Env, context_tokens: int) -> list[FileEntry]:
    """MODELS_FILE's entries, each validated; ConfigError names the file, entry and field."""
    source = f"MODELS_FILE={file_name!r}"
    raw_entries = _load_yaml(file_name, source)
    entries: list[FileEntry] = []
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


def _parse_entry(raw: object, position: str, env: Env, context_tokens: int) -> FileEntry:
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
    return FileEntry(
        where=where,
        id=entry_id,
        name=fields.text("name"),
        provider=provider,
        base_url=base_url,
        token=_token(env, fields.env_name("token_env"), where),
        vision=fields.flag("vision"),
        tools=fields.flag("tools"),
        temperature=fields.number("temperature", 0.0, 2.0),
        top_p=fields.number("top_p", 0.01, 1.0),
        max_tokens=_max_tokens(fields.whole("max_tokens"), context_tokens, where),
        price=fields.price("price"),
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

    def price(self, field: str) -> Price | None:
        value = self._raw.get(field)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self._error(field, f"expected {_PRICE_FORM}, got {_shown(value)}")
        unknown = [str(key) for key in value if key not in PRICE_FIELDS]
        if unknown:
            raise self._error(field, f"unknown key {unknown[0]!r}: expected {_PRICE_FORM}")
        missing = [key for key in PRICE_FIELDS if value.get(key) is None]
        if missing:
            raise self._error(field, f"{missing[0]!r} is missing: expected both, {_PRICE_FORM}")
        per_million = [self._dollars(field, key, value[key]) for key in PRICE_FIELDS]
        return Price(input_per_million=per_million[0], output_per_million=per_million[1])

    def _dollars(self, field: str, key: str, value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._error(field, f"{key!r}: expected a number of USD per 1M tokens, got {_shown(value)}")
        if not math.isfinite(value) or value < 0:
            raise self._error(field, f"{key!r}: {value} is out of range: expected a number of USD per 1M tokens ≥ 0")
        return float(value)

    def _error(self, field: str, problem: str) -> ConfigError:
        return ConfigError(f"{self._where}: field {field!r}: {problem}")


def _shown(value: object) -> str:
    """A wrong value as an operator would recognise it in the file."""
    return f"{type(value).__name__} {value!r}"
