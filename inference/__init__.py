"""Box-side model runtimes that the vendor gates also run, so a gate measures exactly what the box will run.

One floor above `primitives` (it verifies artifacts before loading them) and below both `quantize` and
`appliance`. It never imports torch or transformers.
"""
