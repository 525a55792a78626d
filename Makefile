# Switchboard: `make run` installs what is missing, builds and serves; `make test` runs every test.
SHELL := /bin/bash
SWIFT ?= swift
HOST ?= 127.0.0.1
PORT ?= 8080
DATA ?= ./data

# Debian packages: building and serving, then what the tests add (a real browser among them).
RUN_PACKAGES := pkg-config libssl-dev libsqlite3-dev libev-dev libwebsockets-dev libwebsockets-evlib-ev
TEST_PACKAGES := chromium python3 python3-pip fonts-liberation
APT_GET := $(if $(filter 0,$(shell id -u)),,sudo) env DEBIAN_FRONTEND=noninteractive apt-get

.PHONY: run test build release deps test-deps unit integration bench clean

## run: install missing packages, build in release mode, serve on http://$(HOST):$(PORT) with open rooms.
run: deps release
	@echo "Switchboard: serving on http://$(HOST):$(PORT) (open rooms; open two tabs on it to call)"
	./.build/release/switchboard --host $(HOST) --port $(PORT) --data $(DATA) --open-rooms

## test: install missing packages, build once (debug), run the unit tests and the integration and browser tests.
test: deps test-deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build
	python3 -m pytest -q tests

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release --product switchboard

## bench: the load-test scenarios against switchboard and the plain-C reference, then instructions per
## message for both (see loadtest/README.md and docs/performance.md).
bench: deps release
	loadtest/run-bench.sh switchboard $(CURDIR)/.build/release/switchboard --open-rooms
	loadtest/run-bench.sh reference
	loadtest/instructions.sh switchboard $(CURDIR)/.build/release/switchboard --open-rooms
	loadtest/instructions.sh reference

deps:
	@missing=$$(for p in $(RUN_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "Installing:" $$missing; $(APT_GET) update -qq && $(APT_GET) install -y -qq $$missing; fi

test-deps:
	@missing=$$(for p in $(TEST_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "Installing:" $$missing; $(APT_GET) update -qq && $(APT_GET) install -y -qq $$missing; fi
	@python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore -r tests/requirements.txt

clean:
	rm -rf .build
