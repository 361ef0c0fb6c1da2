"""kernels: Cython image kernels for the box, starting with laparoscopic dehazing/desmoking.

Imports nothing else of orbox. `Dehazer` is the public entry point.
"""

import os

# OpenMP's default spin-wait made 2 threads slower than 1 on a busy VM (docs/dehaze.md#openmp):
# idle kernel threads must sleep, not burn the core the LLM or the capture thread needs.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from kernels import _dehaze  # noqa: E402
from kernels.cpu import require_instruction_set  # noqa: E402

# Refuse cleanly, before any kernel runs, on a CPU that cannot execute what we were built for.
require_instruction_set(_dehaze.compiled_march())

from kernels.dehazer import PIXEL_FORMATS, Dehazer, Tuning  # noqa: E402

__all__ = ["Dehazer", "PIXEL_FORMATS", "Tuning"]
