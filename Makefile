# Targets CI also calls (.ci/run runs `make test`).
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip

.PHONY: install install-test demo test test-python test-c lint bench

# The demo replays a WFDB record, read by the wfdb package (the `wfdb` extra).
install:
	$(PIP) install -q -e ".[wfdb]"

# Test dependencies: the `test-all` extra (everything a test imports: the framework readers the
# importer tests use (torch 2.13.0 CPU, onnx, h5py), onnxruntime and matplotlib for the bench
# tool, neurokit2, pylsl (its wheels bundle liblsl), nats-py...) and the NATS server. Nothing may
# be missing: tests/conftest.py fails the session on any skip but the documented GPU ones.
install-test:
	$(PIP) install -q -e ".[test-all]"
	@command -v nats-server >/dev/null 2>&1 || { \
		(apt-get update -qq && apt-get install -y -qq nats-server) >/dev/null 2>&1; \
		command -v nats-server >/dev/null 2>&1 \
		|| { echo "error: could not install nats-server (apt-get install nats-server)" >&2; exit 1; }; }
	@# the C export tests: gcc for the host builds, an ARM cross toolchain and QEMU for the
	@# Cortex-M4F runs (tests/test_export_*.py fail, not skip, without them)
	@command -v arm-none-eabi-gcc >/dev/null 2>&1 && command -v qemu-system-arm >/dev/null 2>&1 \
		&& command -v gcc >/dev/null 2>&1 || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc gcc-arm-none-eabi \
		libnewlib-arm-none-eabi qemu-system-arm; }
	@# the live view's end-to-end test drives Debian's headless chromium through its chromedriver
	@# (tests/test_view_browser.py; selenium comes with test-all, no browser download)
	@command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 || { \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends chromium chromium-driver; }

demo: install
	streamgru demo

# The tests (no unexpected skip: tests/conftest.py), then the lint step.
test: install-test
	$(MAKE) -C firmware_bridge test
	$(PYTHON) -m pytest -q
	$(MAKE) lint

# ruff check, ruff format --check and mypy (pyproject.toml [tool.mypy]) on the package.
lint:
	$(PYTHON) -m ruff check streamgru tests tools bench weights
	$(PYTHON) -m ruff format --check streamgru tests tools bench weights
	$(PYTHON) -m mypy streamgru

bench:
	$(PYTHON) -m pytest bench --benchmark-only -q
