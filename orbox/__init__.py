"""orbox: the command-line shell and the end-to-end demo, on top of every other package.

The capabilities live in the top-level packages (`primitives`, `kernels`, `hw_profiles`, `inference`,
`quantize`, `image_build`, `appliance`); this package only wires them into one CLI.
"""
