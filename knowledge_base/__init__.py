"""knowledge_base: hospital documents in, cited passages out (issue 15's core).

Builds a self-contained, content-addressed KB directory (SQLite FTS5 + exact dense vectors + the
encoder that made them) and searches it deterministically. Imports only primitives, hw_profiles and
inference, so the box can serve it without the vendor toolchain.
"""

from knowledge_base.checker import Verdict, check_statement
from knowledge_base.errors import DocumentError, KnowledgeBaseError
from knowledge_base.search import KnowledgeBase, SearchHit, Sentence

__all__ = ["DocumentError", "KnowledgeBase", "KnowledgeBaseError", "SearchHit", "Sentence", "Verdict",
           "check_statement"]
