"""Configuration: schema (the YAML contract) and a loader that validates it."""

from .loader import ConfigError, load_config, parse_config
from .schema import Config, ListenAddress

__all__ = ["Config", "ConfigError", "ListenAddress", "load_config", "parse_config"]
