# The two commands a fresh machine needs: `make demo` and `make test`.
# Both create or reuse .venv and install what they need; pip's wheel cache keeps re-runs fast.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.orbox-installed
EXT    := $(VENV)/.orbox-ext-built
PYTEST_WORKERS ?= 2

# Debian tools the image build and its tests drive (mkfs.ext4/debugfs, mksquashfs, genimage,
# bmaptool, qemu + a kernel + busybox for the boot test) and headless Chromium for the status page.
APT_PACKAGES := e2fsprogs squashfs-tools genimage bmap-tools qemu-system-x86 busybox-static linux-image-amd64
SYSDEPS := .stamp-sysdeps

.PHONY: all install sysdeps test lint demo bench eval clean

all: test

$(STAMP): pyproject.toml setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip setuptools wheel
	$(PIP) install -e '.[runtime,toolchain,dev]'
	# opencv-python-headless (runtime) and opencv-contrib-python-headless (dev, for the
	# ximgproc baseline) both ship cv2; make sure the contrib superset is the one on disk.
	$(PIP) install --force-reinstall --no-deps --quiet \
		"opencv-contrib-python-headless==$$($(PY) -c 'import importlib.metadata as m; print(m.version("opencv-contrib-python-headless"))')"
	touch $(STAMP)

# Re-compile the Cython kernels in place whenever a .pyx changes (the editable install
# compiled them once; this keeps them current without reinstalling everything).
$(EXT): $(STAMP) $(wildcard kernels/*.pyx) setup.py
	$(PY) setup.py --quiet build_ext --inplace --force
	touch $(EXT)

# Installs only what is missing, so a prepared machine pays nothing; needs root (CI and dev run as root).
$(SYSDEPS): Makefile
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	touch $(SYSDEPS)

sysdeps: $(SYSDEPS)

install: $(EXT) $(SYSDEPS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: install lint
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) --dist loadgroup

demo: install
	$(VENV)/bin/orbox demo

bench: install
	$(VENV)/bin/orbox dehaze bench

eval: install
	$(VENV)/bin/orbox dehaze eval

clean:
	rm -rf build kernels/*.so kernels/_dehaze.c $(EXT)
