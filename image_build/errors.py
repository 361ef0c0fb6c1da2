"""The one exception type of the image toolchain; the CLI turns it into a message and exit 1."""

from __future__ import annotations


class ImageError(Exception):
    """A spec, input, tool, bundle or slot layout is missing, malformed or refused."""


class ToolMissing(ImageError):
    """An external program (mkfs.ext4, genimage, ...) is not installed."""
