"""orbox: the command-line shell and the few helpers every package shares.

The capabilities live in the top-level packages `kernels`, `hw_profiles`, `quantize`,
`appliance` and `image_build`; this package only wires them into one CLI and holds
small, dependency-free utilities (atomic file writes).
"""

__version__ = "0.1.0"
