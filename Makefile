# pilotwatch: `make demo` and `make test` do all the set-up on a fresh Debian machine
# (a Swift 6 toolchain is the one prerequisite; see README.md).
SWIFT ?= swift
RELEASE_BIN = .build/release/pilotwatch

.PHONY: deps build release test demo bench clean

deps:
	@scripts/install-deps.sh

build: deps
	$(SWIFT) build

# The Swift runtime and Foundation linked in: the installed binary needs no Swift toolchain, and
# each command starts ~8 ms sooner (no symbol binding across a dozen Swift libraries). The linker's
# note about `mktemp` comes from the toolchain's static Foundation, not from pilotwatch.
release: deps
	$(SWIFT) build -c release --product pilotwatch --static-swift-stdlib

# Tests start their own mosquitto brokers on free loopback ports and use temporary SQLite files.
test: deps
	@scripts/fhir-venv.sh
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --parallel --num-workers 2

demo: release
	@scripts/demo.sh

# Ingest against mosquitto_sub, then the dashboards against raw queries; each prints ratios.
bench: release
	@scripts/bench.sh
	@scripts/bench-dashboards.sh
	@scripts/bench-export.sh

clean:
	rm -rf .build demo-out var
