"""Build hook: compiles the Cython kernels as part of `pip install .`."""

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

extensions = [
    Extension(
        "kernels._dehaze",
        ["kernels/_dehaze.pyx"],
        include_dirs=[numpy.get_include()],
        extra_compile_args=["-O3", "-fno-math-errno", "-fopenmp"],
        extra_link_args=["-fopenmp"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
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
