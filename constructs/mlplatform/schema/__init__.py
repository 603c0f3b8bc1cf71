"""The typed platform spec: `overlays/platform.yaml` plus one overlay per environment."""

from mlplatform.schema.errors import SpecError
from mlplatform.schema.loader import Environment, list_environments, load_all, load_environment, load_platform

__all__ = ["Environment", "SpecError", "list_environments", "load_all", "load_environment", "load_platform"]
