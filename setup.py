"""Build hook: compiles the Cython kernels as part of `pip install .`."""

import os
import platform

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

# Finite, non-trapping float maths lets gcc turn the clamps into vector min/max. No reassociation
# (-ffast-math would allow it), so results stay identical for a given binary and input.
FAST_MATH = ["-fno-math-errno", "-fno-trapping-math", "-ffinite-math-only", "-fno-signed-zeros",
             "-ffp-contract=off"]  # no FMA contraction: the SIMD and scalar paths must round alike
# Every shipped x86 profile requires AVX2 (x86-64-v3); kernels/__init__.py refuses to load on a
# CPU without it instead of dying on an illegal instruction. ORBOX_MARCH overrides (e.g. "native").
_default_march = "x86-64-v3" if platform.machine() in ("x86_64", "AMD64") else ""
MARCH = [f"-march={m}" for m in [os.environ.get("ORBOX_MARCH", _default_march)] if m]

extensions = [
    Extension(
        "kernels._dehaze",
        ["kernels/_dehaze.pyx"],
        include_dirs=[numpy.get_include(), "kernels"],
        depends=["kernels/rgb_simd.h"],
        extra_compile_args=["-O3", "-fopenmp", *FAST_MATH, *MARCH],
        extra_link_args=["-fopenmp"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"),
                       ("ORBOX_MARCH", '"' + (MARCH[0].removeprefix("-march=") if MARCH else "default") + '"')],
    )
]

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True,
                             "initializedcheck": False},
    )
)
