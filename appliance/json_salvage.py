"""The complete items of a grammar-held JSON output that the token limit cut off.

A grammar keeps every prefix of the output a prefix of valid JSON, so when generation stops at
the token limit the output is whole up to the last value that closed. `complete_prefix` keeps the
output up to the end of the last object that closed at `item_depth` (an item inside a section's
array) and closes the containers still open, so the items written in full are kept and the one
cut mid-way is not. Plain string work: the same output gives the same result.
"""

from __future__ import annotations

CLOSERS = {"{": "}", "[": "]"}


def complete_prefix(output: str, item_depth: int = 3) -> str | None:
    """The output cut after its last complete item at `item_depth` (1: the root), with the open containers closed;
    None when no item closed."""
    stack: list[str] = []
    cut: tuple[int, list[str]] | None = None
    in_string = escaped = False
    for index, character in enumerate(output):
        if in_string:
            if escaped:
                escaped = False
            elif character == "\\":
                escaped = True
            elif character == '"':
                in_string = False
        elif character == '"':
            in_string = True
        elif character in CLOSERS:
            stack.append(character)
        elif character in "}]":
            if not stack or CLOSERS[stack[-1]] != character:
                return None
            stack.pop()
            if character == "}" and len(stack) == item_depth - 1:
                cut = (index + 1, list(stack))
    if cut is None:
        return None
    end, open_containers = cut
    return output[:end] + "".join(CLOSERS[opener] for opener in reversed(open_containers))
