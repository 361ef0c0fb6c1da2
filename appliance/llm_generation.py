"""One generation as a per-token state machine over llama-cpp-python's low-level `Llama.generate`.

llama-cpp-python's `create_completion(stream=True)` does not yield while the sampled bytes are
not yet valid UTF-8, so one `next()` can run for the whole answer: no heartbeat, no cancellation.
Here every `step()` is one bounded unit of work, evaluating one n_batch chunk of the prompt or
sampling exactly one token, so the worker can heartbeat and cancel between them.
Prompt reuse is batch-aligned: llama.cpp does not promise identical logits for a token evaluated in
batches of different composition, so a warm prompt must be evaluated in exactly the chunks a cold
one would be (see `PrefillCache`).
Text is decoded incrementally (a token may end mid-character), stop strings are matched across
token boundaries, and text that could be the start of a stop string is held back until decided.
"""

from __future__ import annotations

import codecs
import json
from typing import Any

import llama_cpp
from llama_cpp import Llama, llama_chat_format
from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar, json_schema_to_gbnf

SAMPLING = {"temperature": "temp", "top_p": "top_p", "top_k": "top_k", "min_p": "min_p", "typical_p": "typical_p",
            "repeat_penalty": "repeat_penalty", "presence_penalty": "presence_penalty",
            "frequency_penalty": "frequency_penalty"}
COMPLETION_PARAMS = {"prompt", "max_tokens", "stop", "seed", *SAMPLING}
CHAT_PARAMS = (COMPLETION_PARAMS - {"prompt"}) | {"messages", "response_format"}


class RequestError(Exception):
    """The request cannot be served as asked; `code` is machine-readable."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def schema_grammar(schema: dict[str, Any]) -> str:
    """The llama.cpp grammar (GBNF) of a JSON schema; RequestError when llama.cpp's converter cannot compile it.

    The API compiles a client's schema once before admitting the request, so a schema that cannot
    become a grammar is a 400 naming the field, not a failure inside the LLM worker.
    """
    try:
        return json_schema_to_gbnf(json.dumps(schema))
    except (AssertionError, ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError) as exc:
        raise RequestError("invalid_request", f"llama.cpp cannot compile this JSON schema to a grammar "
                                              f"({type(exc).__name__}: {exc})") from exc


class PrefillCache:
    """The prompt tokens whose KV entries came from whole prefill chunks starting at multiples of n_batch.

    Only these are reused: a cold run evaluates a prompt as chunks [0, n), [n, 2n), ..., so a warm run
    that keeps a multiple of n tokens and evaluates the rest from there runs the very same batches,
    and its logits (hence its answer) are byte-identical. A prefix that ends mid-chunk, or KV entries
    written one token at a time while decoding, would give other batches and possibly other bits.
    A change of n_batch (thermal load shedding) moves the chunk boundaries, so it empties the cache.
    """

    def __init__(self) -> None:
        self.tokens: list[int] = []
        self.batch = 0

    def reusable(self, batch: int) -> list[int]:
        return self.tokens if batch == self.batch else []

    def keep(self, tokens: list[int], batch: int) -> None:
        self.tokens, self.batch = tokens, batch


class Generation:
    def __init__(self, llm: Llama, kind: str, params: dict[str, Any], default_seed: int,
                 cache: PrefillCache):
        allowed = CHAT_PARAMS if kind == "chat" else COMPLETION_PARAMS
        unknown = sorted(set(params) - allowed)
        if kind not in ("chat", "completion"):
            raise RequestError("invalid_request", f"kind must be 'chat' or 'completion', got {kind!r}")
        if unknown:
            raise RequestError("invalid_request", f"unsupported parameter(s) {unknown}; expected some of "
                                                  f"{sorted(allowed)}")
        self.llm = llm
        stops = params.get("stop") or []
        self.stops: list[str] = [stops] if isinstance(stops, str) else list(stops)
        self.prompt_tokens = self._prompt_tokens(kind, params)
        n_ctx = llm.n_ctx()
        if len(self.prompt_tokens) >= n_ctx:
            raise RequestError("context_length_exceeded", f"the prompt is {len(self.prompt_tokens)} tokens; the "
                                                          f"context window is {n_ctx}")
        room = n_ctx - len(self.prompt_tokens)
        self.max_tokens = min(params.get("max_tokens") or room, room)
        self.decoded = 0
        self.completion: list[int] = []
        # Bytes that never form valid UTF-8 are dropped, as llama-cpp-python's own completion does.
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="ignore")
        self._held = ""
        self._eos = llm.token_eos()
        self._seed = int(params.get("seed", default_seed))
        self._sampling = {SAMPLING[key]: params[key] for key in SAMPLING if params.get(key) is not None}
        self._grammar_obj = self._grammar(params)
        self._tokens: Any = None  # the sampling generator, created once the prompt is in the KV cache
        self._cache = cache
        self._prefilled = self._reuse_cached_prefix()

    def _prompt_tokens(self, kind: str, params: dict[str, Any]) -> list[int]:
        llm = self.llm
        if kind == "completion":
            bos = [llm.token_bos()] if llm._model.add_bos_token() and llm.token_bos() != -1 else []
            return bos + llm.tokenize(str(params.get("prompt", "")).encode("utf-8"), add_bos=False, special=True)
        template = llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise RequestError("invalid_request", "this model has no chat template; use a completion request")
        eos, bos = llm.token_eos(), llm.token_bos()
        formatter = llama_chat_format.Jinja2ChatFormatter(
            template=template, eos_token=llm._model.token_get_text(eos) if eos != -1 else "",
            bos_token=llm._model.token_get_text(bos) if bos != -1 else "", stop_token_ids=[eos])
        try:
            formatted = formatter(messages=list(params["messages"]))
        except Exception as exc:  # noqa: BLE001 - jinja raises many types for bad message lists
            raise RequestError("invalid_request", f"messages do not fit the chat template ({exc})") from exc
        extra_stops = formatted.stop or []
        if (params.get("response_format") or {}).get("type") != "json_object":
            # Under a grammar the end-of-turn token can only come where the JSON is complete, while its
            # text spelling may appear inside a JSON string, where matching it would cut the JSON short.
            self.stops += [extra_stops] if isinstance(extra_stops, str) else list(extra_stops)
        return llm.tokenize(formatted.prompt.encode("utf-8"), add_bos=not formatted.added_special, special=True)

    @staticmethod
    def _grammar(params: dict[str, Any]) -> LlamaGrammar | None:
        response_format = params.get("response_format") or {}
        if response_format.get("type") != "json_object":
            return None
        schema = response_format.get("schema")
        if schema:
            return LlamaGrammar.from_string(schema_grammar(schema), verbose=False)
        return LlamaGrammar.from_string(JSON_GBNF, verbose=False)

    def _reuse_cached_prefix(self) -> int:
        """Keep the KV cache of the longest n_batch-aligned prefix shared with the cache's whole chunks."""
        llm, body, batch = self.llm, self.prompt_tokens[:-1], self.llm.n_batch
        shared = 0
        for cached, live, wanted in zip(self._cache.reusable(batch), llm._input_ids, body, strict=False):
            if not cached == live == wanted:
                break
            shared += 1
        shared -= shared % batch
        if shared and not llm._ctx.kv_cache_seq_rm(-1, shared, -1):
            shared = 0
        if not shared:
            llm.reset()
        llm.n_tokens = shared
        self._cache.keep(body[:shared], batch)
        return shared

    @property
    def prefilling(self) -> bool:
        return self._tokens is None

    def step(self) -> tuple[str, str | None]:
        """One unit of work: evaluate one n_batch chunk of the prompt, or sample one token.

        Returns (text now safe to emit, finish reason or None). Chunked prefill keeps a long prompt
        from looking like a hang and lets cancellation act between chunks.
        """
        if self._tokens is None:
            end = len(self.prompt_tokens) - 1
            if self._prefilled < end:
                chunk = self.prompt_tokens[self._prefilled:min(end, self._prefilled + self.llm.n_batch)]
                self.llm.eval(chunk)
                self._prefilled += len(chunk)
                if len(chunk) == self.llm.n_batch:
                    self._cache.keep(self.prompt_tokens[:self._prefilled], self.llm.n_batch)
                return "", None
            self.llm.set_seed(self._seed)
            self._tokens = self.llm.generate(self.prompt_tokens, grammar=self._grammar_obj, **self._sampling)
        token = next(self._tokens)
        self.decoded += 1
        if token == self._eos or llama_cpp.llama_vocab_is_eog(self.llm._model.vocab, token):
            return self._flush(), "stop"
        piece = self.llm.detokenize([token], prev_tokens=self.prompt_tokens + self.completion)
        self.completion.append(token)
        self._held += self._utf8.decode(piece)
        for stop in self.stops:
            at = self._held.find(stop) if stop else -1
            if at >= 0:
                text, self._held = self._held[:at], ""
                return text, "stop"
        if self.decoded >= self.max_tokens:
            return self._flush(), "length"
        keep = max((len(s) - 1 for s in self.stops if s), default=0)
        keep = next((n for n in range(keep, 0, -1) if any(s.startswith(self._held[-n:]) for s in self.stops)), 0)
        text, self._held = (self._held[:-keep], self._held[-keep:]) if keep else (self._held, "")
        return text, None

    def _flush(self) -> str:
        text, self._held = self._held + self._utf8.decode(b"", final=True), ""
        return text

    def close(self) -> None:
        if self._tokens is not None:
            self._tokens.close()
