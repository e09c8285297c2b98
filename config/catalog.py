"""The model catalog read from the environment: every model a conversation may choose.

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
    tools: true                 # is offered the MCP tools (see MCP_SERVERS_FILE)
    temperature: 0.2            # request parameters: temperature, top_p, max_tokens
    max_tokens: 800
    price: {input: 0.2, output: 0.6}   # USD per million tokens of the prompt (input) and answer (output)
  - id: llama3.2-vision
    name: Llama Vision (Ollama)
    base_url: http://localhost:11434/v1   # or an OpenAI-compatible server of its own
    vision: true
  - id: meta-llama/Llama-3.1-8B-Instruct
    token_env: TEAM_HF_TOKEN    # the NAME of the variable holding its token (never the token itself)
```

An entry with neither `provider` nor `base_url` is reached like MODEL_ID (through the router
when the default is the local model). `VISION_MODELS` marks more choices as accepting images.

`price` (both `input` and `output`, numbers ≥ 0) is what usage costs and money budgets count; a
model without one (MODEL_ID, MODELS, an entry without `price`) is counted in tokens only, and the
in-process local model costs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from config.env import ConfigError, Env
from config.models import FREE, BackendKind, ModelCatalog, ModelChoice, ModelSettings, choice_of, gguf_display_name
from config.models_file import file_choice, read_entries


def load_catalog(env: Env, default: ModelSettings, context_tokens: int) -> ModelCatalog:
    """Read MODELS, MODELS_FILE and VISION_MODELS into the catalog; raise ConfigError on a bad one."""
    listed = _id_list(env, "MODELS")
    if listed and default.backend is BackendKind.LOCAL:
        raise ConfigError(_models_need_a_backend(env))
    first = _default_choice(default)
    choices = {first.id: first}  # by id, in order: the default, MODELS', then the file's new ones
    origins: dict[str, str] = {}  # a choice's id → the file entry it came from
    for model_id in listed:
        choices.setdefault(model_id, choice_of(model_id, None, False, replace(default, model_id=model_id)))
    file_name = env.raw("MODELS_FILE")
    if file_name is not None:
        for entry in read_entries(file_name, env, context_tokens):
            choices[entry.id] = file_choice(entry, default, env)
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
        return ModelChoice(id=name, display_name=name, vision=False, settings=default, price=FREE)
    choice = choice_of(default.model_id, None, False, default)
    return replace(choice, price=FREE) if default.backend is BackendKind.LOCAL else choice


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
