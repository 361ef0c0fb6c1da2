"""The two ways a KB operation fails: one source document, or the KB (or a request to it) as a whole."""

from __future__ import annotations


class KnowledgeBaseError(Exception):
    """A KB cannot be built, opened or queried; the message names the path or parameter and what is wrong."""


class DocumentError(KnowledgeBaseError):
    """One source document cannot be read; the message starts with its path."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
