"""The installed distribution's version, read once from package metadata (pyproject.toml is its only source)."""

from __future__ import annotations

import importlib.metadata

VERSION: str = importlib.metadata.version("orbox")
