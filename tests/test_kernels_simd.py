"""The SSSE3 recovery path and its scalar twin produce the same bytes; so does the local veil pass.

Builds a second copy of the extension without SSSE3 (the scalar path only, no AVX2 vectorisation
of the grid loops either) and runs both on the same frame and the same grid coefficients from a
real Dehazer run, and on the same sequence of grid statistics.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import kernels
from kernels import Dehazer, _dehaze
from kernels.synthetic import make_scene

SETUP = textwrap.dedent('''
    import numpy
    from Cython.Build import cythonize
    from setuptools import Extension, setup
    flags = ["-O2", "-fopenmp", "-fno-math-errno", "-fno-trapping-math", "-ffinite-math-only",
             "-fno-signed-zeros", "-ffp-contract=off", "-march=x86-64", "-mno-ssse3"]
    ext = Extension("_dehaze", ["_dehaze.pyx"], include_dirs=[numpy.get_include(), "."], extra_compile_args=flags,
                    extra_link_args=["-fopenmp"], define_macros=[("ORBOX_MARCH", '"x86-64"')])
    setup(ext_modules=cythonize([ext], language_level=3, compiler_directives={
        "boundscheck": False, "wraparound": False, "cdivision": True, "initializedcheck": False}))
''')


@pytest.fixture(scope="module")
def scalar_module(tmp_path_factory):
    build = tmp_path_factory.mktemp("scalar_kernel")
    source = Path(kernels.__file__).parent
    for name in ("_dehaze.pyx", "rgb_simd.h"):
        shutil.copy(source / name, build / name)
    (build / "setup.py").write_text(SETUP)
    subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=build, check=True,
                   capture_output=True, timeout=600)
    library = next(build.glob("_dehaze*.so"))
    spec = importlib.util.spec_from_file_location("_dehaze", library)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.compiled_march() == "x86-64"
    return module


@pytest.mark.parametrize(("width", "in_place"), [(500, False), (333, True)])
def test_simd_and_scalar_recovery_give_identical_bytes(scalar_module, width, in_place):
    height = 240
    scene = make_scene("twin", "procedural", "plume", seed=width, width=width, height=height, level=0.5)
    dehazer = Dehazer(width, height)
    dehazer.process(scene.hazy)
    cx, cy, r = dehazer.stats["disc"]
    airlight = [c * 255.0 for c in dehazer.stats["airlight"]]
    outputs = []
    for module in (_dehaze, scalar_module):
        src = scene.hazy.copy()
        dst = src if in_place else np.zeros_like(src)
        rows = np.zeros((4, width), np.float32)
        module.recover_rgb(src.reshape(height, -1), dst.reshape(height, -1), dehazer.tuning.subsample, 0, 1, 2,
                           dehazer._a, dehazer._b, rows, np.zeros(2, np.int32), *airlight,
                           dehazer.tuning.t0, cx, cy, r, in_place, 1)
        outputs.append(dst)
    assert not np.array_equal(outputs[0], scene.hazy)
    assert np.array_equal(outputs[0], outputs[1])


def test_local_veil_state_is_identical_in_the_scalar_build(scalar_module):
    from test_kernels_veil import HEIGHT, WIDTH, PlumeScene

    dehazer = Dehazer(WIDTH, HEIGHT, local_veil=0)  # supplies each frame's grid statistics only
    names = ("_references", "_gate", "_held", "_flags", "_local_fit", "_masks", "_veil_airlight", "_local_t")
    twins = [{name: getattr(dehazer, name).copy() for name in names} for _ in range(2)]
    tune = dehazer.tuning
    found = 0
    for index, frame in enumerate(PlumeScene().frames()):
        dehazer.process(frame)
        results = []
        for module, twin in zip((_dehaze, scalar_module), twins, strict=True):
            if index == 0:
                np.copyto(twin["_references"], dehazer._mean)
            results.append(module.local_veil(
                dehazer._mean, dehazer._inside, twin["_references"], twin["_gate"], twin["_held"], twin["_flags"],
                twin["_local_fit"], twin["_masks"], twin["_veil_airlight"], dehazer._veil_params,
                dehazer.strength, tune.t0, tune.veil_grow, twin["_local_t"], float(twin["_gate"].max())))
        assert results[0] == results[1]
        for name in names:
            assert np.array_equal(twins[0][name], twins[1][name]), name
        found = max(found, results[0][0])
    assert found > 0  # the plume was found
