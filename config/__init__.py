"""Configuration: environment variables (and `.env`) read into typed settings."""

from config.env import ConfigError, Env
from config.settings import BackendKind, Settings, load_settings

__all__ = ["BackendKind", "ConfigError", "Env", "Settings", "load_settings"]
