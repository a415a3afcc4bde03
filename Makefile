# The two commands: `make run` and `make test`. Both install everything they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEMO   := var/demo
# hls.js, the demo page's player: fetched from npm by version and checked against its
# published sha512, then kept in the package (proxy/demo/vendor/, not in git), so
# `edgeshield demo` copies it into the demo folder with no network at run time.
HLSJS_VERSION   := 1.7.4
HLSJS_INTEGRITY := sha512-3GlxGdPvT2YHvQYOt+yOzT/DEior/qJVNIylHA77kgeoBTdQQqi70GwefNEUmHQeNGyjC8U62+bruqW/Tpm+tg==
HLSJS           := proxy/demo/vendor/hls.min.js

.PHONY: run test lint install vendor system-packages bench loadtest-objects clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) $(HLSJS)

vendor: $(HLSJS)

# Without npm the demo still runs; its page then plays HLS only where the browser can.
$(HLSJS): Makefile
	@command -v npm >/dev/null 2>&1 || { echo "npm not found: hls.js not vendored" >&2; exit 0; }; \
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	npm pack --silent --pack-destination "$$tmp" hls.js@$(HLSJS_VERSION) >/dev/null && \
	got=sha512-$$(openssl dgst -sha512 -binary "$$tmp"/hls.js-$(HLSJS_VERSION).tgz | base64 -w0) && \
	if [ "$$got" != "$(HLSJS_INTEGRITY)" ]; then echo "hls.js: integrity mismatch" >&2; exit 1; fi && \
	tar -xzf "$$tmp"/hls.js-$(HLSJS_VERSION).tgz -C "$$tmp" package/dist/hls.min.js package/LICENSE && \
	mkdir -p $(@D) && cp "$$tmp"/package/LICENSE $(@D)/LICENSE.hls.js && \
	cp "$$tmp"/package/dist/hls.min.js $@.tmp && mv $@.tmp $@

run: install
	$(BIN)/edgeshield demo --out $(DEMO)
	$(BIN)/edgeshield serve

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/hadolint Dockerfile
	$(BIN)/shellcheck .ci/run .ci/container-install.sh .ci/system-packages.sh

system-packages:
	sh .ci/system-packages.sh

# System packages first: npm is needed to vendor hls.js.
test: system-packages install lint
	# Three test files at a time (a file's tests stay together, in order): most of the
	# time goes to waiting on real servers, processes and sockets, not to the two CPUs.
	$(BIN)/python -m pytest -q -n 3 --dist loadfile

bench: install
	$(BIN)/python loadtests/bench/hit_bench.py

loadtest-objects: install
	$(BIN)/python loadtests/make_objects.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache $(HLSJS) $(dir $(HLSJS))LICENSE.hls.js
