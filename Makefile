# SPDX-License-Identifier: BSD-3-Clause
# Thin wrapper over meson: `make`, `make check`, `make bench`, `make demo`, `make install`,
# `make fuzz` (every libFuzzer target of tests/fuzz/ for FUZZ_TIME seconds).
BUILD      ?= build
ASAN_BUILD ?= build-asan
PREFIX     ?= /usr/local
MESON      ?= meson
FUZZ_BUILD ?= build-fuzz
FUZZ_TIME  ?= 600

BENCH_ARGS ?=

.PHONY: all deps bench check check-normal check-asan check-fuzz fuzz demo install clean

all: $(BUILD)/build.ninja
	ninja -C $(BUILD)

deps:
	@scripts/install-deps.sh
	@scripts/install-deps.sh --bench

# Every bench (bench/run-all.sh): results, plots and a summary in
# bench/results/. BENCH_ARGS=--quick for a short look.
bench: $(BUILD)/build.ninja
	@scripts/install-deps.sh --bench
	ninja -C $(BUILD)
	bench/run-all.sh $(BENCH_ARGS) $(BUILD)

$(BUILD)/build.ninja:
	@scripts/install-deps.sh --build-only
	$(MESON) setup $(BUILD) --prefix=$(PREFIX)

$(ASAN_BUILD)/build.ninja:
	@scripts/install-deps.sh --build-only
	$(MESON) setup $(ASAN_BUILD) -Db_sanitize=address,undefined -Db_lundef=false

# Every test, in a normal build and again under ASan+UBSan (but the bench
# smoke run: it times the normal build's binaries, and the library paths
# it drives are the ones the other tests run under ASan), then a bounded
# run of the fuzz targets over their committed corpus.
check: deps
	$(MAKE) check-normal
	$(MAKE) check-asan
	$(MAKE) check-fuzz

check-fuzz:
	scripts/run-fuzz.sh --runs 100000 $(FUZZ_BUILD)

fuzz: deps
	scripts/run-fuzz.sh --time $(FUZZ_TIME) $(FUZZ_BUILD)

check-normal: $(BUILD)/build.ninja
	ninja -C $(BUILD)
	$(MESON) test -C $(BUILD) --print-errorlogs --num-processes 2 || \
	    { scripts/test-digest.py $(BUILD); exit 1; }

# The two longest postcopy tests (200 s of ASan between them) run in the
# normal pass only; postcopy's code still runs under ASan through
# real-postcopy-test, postcopy-recover-test, postcopy-refbe-test and
# postcopy-fault-trace. This keeps `make check` inside 30 minutes on 2 cores.
ASAN_SKIP ?= postcopy-reconnect-test|postcopy-test

check-asan: $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:halt_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	$(MESON) test -C $(ASAN_BUILD) --print-errorlogs --num-processes 2 \
	    $$($(MESON) test -C $(ASAN_BUILD) --list --no-suite bench 2>/dev/null | \
	       sed -n 's/^vhost-user-frontend:[a-z]* \/ //p' | grep -vxE '$(ASAN_SKIP)') || \
	    { scripts/test-digest.py $(ASAN_BUILD); exit 1; }

demo: deps all
	@scripts/demo.sh $(BUILD) $(BACKEND)

install: all
	$(MESON) install -C $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
