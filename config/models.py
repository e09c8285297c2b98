"""The models a conversation may choose, and how each one is reached: the catalog's types. They are
read from the environment by config.catalog (MODEL_ID, MODELS, VISION_MODELS) and config.models_file
(MODELS_FILE)."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from pathlib import Path

from config.env import Env

# Quantization tags ending a GGUF file's name ("SmolLM2-135M-Instruct.Q4_1.gguf").
_QUANT_SUFFIX = re.compile(r"[.-](?:I?Q\d\w*|F16|F32|BF16)$", re.IGNORECASE)


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
class Price:
    """What a model costs, in US dollars per million tokens (MODELS_FILE's `price:`)."""

    input_per_million: float  # the prompt's tokens
    output_per_million: float  # the answer's tokens

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """The price in USD of a turn that read `prompt_tokens` and wrote `completion_tokens`."""
        return (prompt_tokens * self.input_per_million + completion_tokens * self.output_per_million) / 1_000_000


FREE = Price(0.0, 0.0)  # the in-process local model


@dataclass(frozen=True)
class ModelChoice:
    """One model a conversation may answer with."""

    id: str  # the model id sent to the server
    display_name: str
    vision: bool
    settings: ModelSettings
    tools: bool | None = None  # MODELS_FILE's `tools:` (None: not said; see config.tools.offers_tools)
    # MODELS_FILE's `price:`; the in-process model is FREE; None (MODEL_ID, MODELS, an entry without
    # one): no price known, its usage is counted in tokens only.
    price: Price | None = None


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


def choice_of(model_id: str, name: str | None, vision: bool, settings: ModelSettings) -> ModelChoice:
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


def sampling_from_env(env: Env, *, local: bool) -> SamplingSettings:
    """MAX_NEW_TOKENS, TEMPERATURE, TOP_P and REPEAT_PENALTY, with the defaults of a local model or a remote one."""
    return SamplingSettings(
        max_new_tokens=env.int("MAX_NEW_TOKENS", 500, minimum=1),
        # Small local models loop under greedy decoding; these defaults keep SmolLM2 coherent.
        temperature=env.float("TEMPERATURE", 0.3 if local else 0.7, minimum=0.0, maximum=2.0),
        top_p=env.float("TOP_P", 0.95, minimum=0.01, maximum=1.0),
        repeat_penalty=env.float("REPEAT_PENALTY", 1.1 if local else 1.0, minimum=0.5, maximum=2.0),
    )
