"""What every test shares: artifacts built once per run, the `orbox` CLI in a child process, and the fixtures.

The expensive fixtures (tiny models, bundles) live in the `*_data/fixtures.py` modules, registered
here as plugins so that test modules use them by name without importing them.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["appliance_data.fixtures", "api_data.fixtures", "encoder_data.fixtures", "kb_data.fixtures",
                  "image_data.fixtures"]

BuildOnce = Callable[[str, Callable[[Path], object]], Path]


def orbox_cli(*args: str, timeout: float = 300, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """`python -m orbox ARGS` in a child process: the entry point the box's shell uses, exit code and all."""
    return subprocess.run([sys.executable, "-m", "orbox", *args], capture_output=True, text=True, timeout=timeout,
                          **kwargs)


@pytest.fixture(scope="session")
def build_once(tmp_path_factory: pytest.TempPathFactory) -> BuildOnce:
    """`build_once(name, make)`: the directory `make(directory)` filled, once per test run, then reused.

    Tiny models, bundles and images take seconds to minutes each, so no xdist worker should build its
    own: the first to ask builds under a file lock in the run's temp root, which all the run's workers
    share, and the others wait for it. Read-only for tests: copy it before changing it.
    """
    run_root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        run_root = run_root.parent  # pytest-N/, above each worker's popen-gwN/

    def build(name: str, make: Callable[[Path], object]) -> Path:
        made, done = run_root / name, run_root / f"{name}.done"
        with open(run_root / f"{name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not done.exists():  # a worker that failed half-way left no marker: start again
                shutil.rmtree(made, ignore_errors=True)
                made.mkdir()
                make(made)
                done.touch()
        return made

    return build
