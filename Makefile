# verneuil: build, demo, tests, benchmarks. `make` builds everything;
# `make demo` builds and runs the demo on the embedded default target;
# `make install` installs verneuilctl, libverneuil.so, the C header and the
# shell completions under PREFIX (DESTDIR for staging);
# `make test` runs the whole test suite (what CI runs).

GO      ?= go
BIN     := bin
GOFLAGS ?=
export GOFLAGS

# VERSION is what verneuilctl --version prints.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)

PREFIX  ?= /usr/local
DESTDIR ?=
BINDIR  ?= $(PREFIX)/bin
LIBDIR  ?= $(PREFIX)/lib
INCDIR  ?= $(PREFIX)/include
DATADIR ?= $(PREFIX)/share

.PHONY: all build ext demo docs install uninstall test deps vet lint tidy-check fmt-check test-go test-asan crash bench s3bench snapbench fuzz gcbench bench-litestream bench-litestream-quick sqlite-tcl sqlite-tcl-slice python-suite mattn-suite clean

all: build ext

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN)/verneuilctl ./cmd/verneuilctl

# docs regenerates the CLI reference from the flag definitions (a test
# fails when it is out of date).
docs: build
	$(BIN)/verneuilctl help --reference > docs/CLI.md

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCDIR) \
		$(DESTDIR)$(DATADIR)/bash-completion/completions $(DESTDIR)$(DATADIR)/zsh/site-functions
	install -m 0755 $(BIN)/verneuilctl $(DESTDIR)$(BINDIR)/verneuilctl
	install -m 0755 $(BIN)/libverneuil.so $(DESTDIR)$(LIBDIR)/libverneuil.so
	install -m 0644 include/verneuil.h $(DESTDIR)$(INCDIR)/verneuil.h
	$(BIN)/verneuilctl completion bash > $(DESTDIR)$(DATADIR)/bash-completion/completions/verneuilctl
	$(BIN)/verneuilctl completion zsh > $(DESTDIR)$(DATADIR)/zsh/site-functions/_verneuilctl

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/verneuilctl $(DESTDIR)$(LIBDIR)/libverneuil.so $(DESTDIR)$(INCDIR)/verneuil.h \
		$(DESTDIR)$(DATADIR)/bash-completion/completions/verneuilctl $(DESTDIR)$(DATADIR)/zsh/site-functions/_verneuilctl

ext:
	sh scripts/build-ext.sh $(BIN)/libverneuil.so

demo: all
	$(BIN)/verneuilctl demo

# deps installs what the tests need and a fresh machine lacks: the S3 test
# server (versitygw, from the Go module proxy) and Debian's sqlite3,
# libsqlite3-dev and python3 for the extension's host tests.
deps:
	sh scripts/install-s3-server.sh
	sh scripts/install-test-hosts.sh
	sh scripts/install-staticcheck.sh

# Every internal package builds without cgo (internal/sqlite3vfs falls back
# to an error); internal/testutil's TestOnlyCgoPackagesImportC enforces it
# and that only the cgo packages import "C".
vet:
	$(GO) vet ./...
	CGO_ENABLED=0 $(GO) vet ./internal/...

# lint runs staticcheck (scripts/install-staticcheck.sh, run by make deps).
lint:
	sh scripts/install-staticcheck.sh >/dev/null
	.cache/tools/staticcheck ./...
	.cache/tools/staticcheck -tags verneuil_ext ./cmd/verneuil-ext/

# tidy-check fails (printing the diff) when go.mod or go.sum differ from
# what go mod tidy would write.
tidy-check:
	$(GO) mod tidy -diff

fmt-check:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

test-go:
	CI=$${CI:-true} $(GO) test -count=1 -timeout 40m ./...
	CGO_ENABLED=0 $(GO) test -count=1 ./internal/config/ ./internal/manifest/ ./internal/names/ ./internal/spool/ ./internal/blob/... ./internal/testutil/ ./internal/replica/
	$(GO) test -count=1 -race -short -timeout 20m . ./internal/...
	$(GO) test -count=1 -tags verneuil_extern ./cmd/verneuil-tclhook/

# test-asan runs the cgo packages' tests that drive the VFS shim under
# AddressSanitizer (gcc's libasan); LeakSanitizer fails the run on a C leak
# at exit. Bounded: -short and a -run selection (the shim's regression
# tests, the multi-connection stress, the replication tests, the read
# replica's).
test-asan:
	$(GO) test -asan -count=1 -short -timeout 20m -run 'TestRegression_|TestShimStress|TestReplication_|TestSnapshot' .
	$(GO) test -asan -count=1 -short ./internal/sqlite3vfs/

test: deps fmt-check tidy-check vet lint build
	$(MAKE) sqlite-tcl-slice
	$(MAKE) test-go
	$(MAKE) mattn-suite
	$(MAKE) test-asan
	$(MAKE) fuzz FUZZTIME=5s

# SQLite's own TCL suite from Debian's sources, run with the plain
# testfixture and with verneuil compiled in as the default VFS (and as
# "unix"); fails if the sets of failing tests differ (docs/TESTING-TCL.md).
sqlite-tcl:
	bash scripts/sqlite-tcl/run.sh veryquick

sqlite-tcl-slice:
	bash scripts/sqlite-tcl/run.sh slice

# python-suite runs CPython's own sqlite3 tests (Debian's /usr/bin/python3,
# test.test_sqlite3) plain and with libverneuil.so loaded as the default
# VFS, in every mode, and fails if the sets of failing tests differ or a
# replica differs from its database (docs/TESTING.md); logs, spools and
# stores stay in .cache/python-suite/run. make test runs the default, wal
# and files modes (TestPythonSQLiteSuite in tests/ext).
python-suite:
	sh scripts/install-python-suite.sh
	VERNEUIL_PY_SUITE_MODES="$${VERNEUIL_PY_SUITE_MODES:-all}" \
	VERNEUIL_PY_SUITE_OUT="$${VERNEUIL_PY_SUITE_OUT:-$(CURDIR)/.cache/python-suite/run}" \
		$(GO) test -count=1 -v -timeout 30m -run '^TestPythonSQLiteSuite$$' ./tests/ext/

# The test suite of github.com/mattn/go-sqlite3 (the driver the library is
# built on), run from one test binary with unix and with verneuil as the
# default VFS; fails if the outcomes differ or a replica differs from its
# database (docs/TESTING.md). MATTN_SUITE_FLAGS e.g. "-outage" or
# "-tags sqlite_vtable".
mattn-suite:
	$(GO) run ./tests/mattnsuite $(MATTN_SUITE_FLAGS)

# crash runs the SIGKILL crash loop for 1,000 iterations (CI runs 50).
crash:
	VERNEUIL_CRASH_ITERATIONS=$${VERNEUIL_CRASH_ITERATIONS:-1000} $(GO) test -v -count=1 -timeout 6h -run 'TestCrashLoop' ./tests/e2e/

bench: build
	$(GO) run ./cmd/verneuil-bench

# s3bench measures replication lag, S3 requests and memory against a
# loopback S3 server (docs/OPERATIONS.md); S3BENCH_FLAGS e.g. "-only a".
s3bench:
	sh scripts/install-s3-server.sh
	$(GO) run ./cmd/verneuil-s3bench $(S3BENCH_FLAGS)

# gcbench measures verneuilctl gc on a synthetic local target of 10,000
# databases and 1,000,000 chunks (docs/OPERATIONS.md); GCBENCH_FLAGS e.g.
# "-dbs 1000 -chunks 100000".
gcbench:
	$(GO) run ./cmd/verneuil-gcbench $(GCBENCH_FLAGS)

# bench-litestream runs the same workloads through Litestream (installed into
# .cache/tools) and through verneuil against one loopback S3 server, and
# prints the comparison table and cost model of docs/BENCHMARKS.md (about
# 18 minutes; bench-litestream-quick: 4). LSBENCH_FLAGS e.g. "-only ad".
bench-litestream:
	sh scripts/install-s3-server.sh
	sh scripts/install-litestream.sh
	$(GO) run ./cmd/verneuil-lsbench $(LSBENCH_FLAGS)

bench-litestream-quick:
	$(MAKE) bench-litestream LSBENCH_FLAGS="-quick $(LSBENCH_FLAGS)"

# snapbench measures read replicas (verneuil_snapshot) against a loopback
# S3 server: warm and cold point queries, full scans against the local file
# and a restore (docs/TESTING.md); SNAPBENCH_FLAGS e.g. "-size-mb 1024".
snapbench:
	sh scripts/install-s3-server.sh
	$(GO) run ./cmd/verneuil-snapbench $(SNAPBENCH_FLAGS)

# Every fuzz target, as PACKAGE:TARGET.
FUZZ_TARGETS := ./internal/manifest:FuzzDecode ./internal/manifest:FuzzDecodeDelta ./internal/manifest:FuzzDecodeChunk ./internal/manifest:FuzzDecodeInline \
	./internal/config:FuzzParse ./internal/names:FuzzKey ./internal/names:FuzzParseManifestKey \
	./internal/spool:FuzzSpoolFiles

# fuzz runs each target for FUZZTIME (default 60s); CI runs them for 5s each
# (scripts/fuzz.sh: tolerates Go 1.26's fuzz-deadline race, not findings).
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$name ($$pkg)"; \
		GO=$(GO) bash scripts/fuzz.sh $$pkg $$name $${FUZZTIME:-60s} || exit 1; \
	done

clean:
	rm -rf $(BIN)
