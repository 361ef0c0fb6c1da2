"""Clinical scenarios (issue 16): drafts over a doctor's own facts, where an invented fact is worse than no draft.

Each scenario is the grounded-answer pattern turned on the request's facts instead of a knowledge
base: a JSON schema built per request whose citation ids are an enum of the facts' ids, the LLM
held to it by a llama.cpp grammar, then every item checked (knowledge_base.checker) against the
facts it cites; what fails is dropped and reported, what must never be lost is put back verbatim.
"""
