"""Platform adapters. Each package here that defines NAME is one platform:

    NAME: str                       # what `python -m bot NAME` starts
    TOKEN_VARIABLES: tuple[str, ...] # `python -m bot` starts it when all of these are set
    TOKEN_VARIABLE_SETS: tuple[tuple[str, ...], ...]  # optional: … or when all of any one set are
    def check(settings: Settings) -> None                            # optional: its settings, checked at start
    async def run(services: Services, settings: Settings) -> None
    def command(argv: list[str], settings: Settings) -> int | None   # optional extra CLI flags

Adding a platform means adding one package; what every platform uses is in adapters.shared.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

from config.env import Env


def load_all() -> dict[str, ModuleType]:
    adapters: dict[str, ModuleType] = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        name = getattr(module, "NAME", None)
        if isinstance(name, str):
            adapters[name] = module
    return adapters


def configured(adapters: dict[str, ModuleType], env: Env) -> list[ModuleType]:
    """Adapters whose tokens are all set (the console has none, so it is never auto-started)."""
    chosen = []
    for module in adapters.values():
        sets = getattr(module, "TOKEN_VARIABLE_SETS", (getattr(module, "TOKEN_VARIABLES", ()),))
        if any(variables and all(env.raw(variable) for variable in variables) for variables in sets):
            chosen.append(module)
    return chosen
