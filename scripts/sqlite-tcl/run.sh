#!/usr/bin/env bash
# run.sh: SQLite's own TCL test suite, run with SQLite's plain unix VFS and
# with the replicating VFS "verneuil" as the default (and shadowing the name
# "unix"), replication on to a local file:// target and the per-commit
# invariant check on. Fails when the two testfixtures fail different tests,
# when the check finds a replica that differs from its database, or when a
# testfixture dies. docs/TESTING-TCL.md explains the suite.
#
#   scripts/sqlite-tcl/run.sh [veryquick]   the full veryquick suite (default)
#   scripts/sqlite-tcl/run.sh suite NAME    any permutation of permutations.test
#   scripts/sqlite-tcl/run.sh slice         the CI slice (SLICE below)
#   scripts/sqlite-tcl/run.sh tests T...    these test files (select1 or select1.test)
#   scripts/sqlite-tcl/run.sh build         only fetch, configure and build
#
# Environment:
#   SQLITE_TCL_TESTS="a b c"      run these test files (same as "tests a b c")
#   SQLITE_TCL_CACHE=DIR          sources and builds (default <repo>/.cache/sqlite-tcl)
#   SQLITE_TCL_USER=NAME          non-root user the tests run as when started
#                                 as root (default verneuil-tcl, created if missing)
#   SQLITE_TCL_PARALLEL=0         run the two testfixtures one after the other
#                                 (default 1: at the same time, one per core)
#   SQLITE_TCL_TIMEOUT=SECONDS    limit per testfixture run (default 3600)
#   SQLITE_TCL_KEEP=1             keep the replication state directory
#   VERNEUIL_CHECK_EVERY_COMMIT=0 turn the per-commit invariant check off
#
# The first run (as root) enables deb-src from the existing apt sources,
# installs dpkg-dev and tcl-dev, and runs `apt-get source sqlite3`; later runs
# reuse the cache and rebuild only what changed. Nothing is downloaded except
# Debian packages and Go modules.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=${SQLITE_TCL_CACHE:-$ROOT/.cache/sqlite-tcl}
TEST_USER=${SQLITE_TCL_USER:-verneuil-tcl}
PARALLEL=${SQLITE_TCL_PARALLEL:-1}
TIMEOUT=${SQLITE_TCL_TIMEOUT:-3600}
CHECK=${VERNEUIL_CHECK_EVERY_COMMIT:-1}
GO=${GO:-go}

# The CI slice: the test files that exercise the pager, journals, locking,
# transactions, attach, vacuum, I/O errors and the VFS, plus a few plain SQL
# files. About 4 minutes for both testfixtures on 2 cores.
SLICE="select1 insert delete update trans rollback savepoint journal1 journal2
journal3 jrnlmode pager1 pager2 pager3 pager4 lock lock2 lock4 lock5 exclusive
exclusive2 attach attach2 vacuum vacuum2 hook capi3 ioerr ioerr2 syscall mmap1
mmap2 nolock uri unixexcl crash crash2 misc1 misc5 incrvacuum autovacuum
bigfile2 filectrl"

elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f\n", b - a }'; }
log() { printf 'sqlite-tcl: %s\n' "$*" >&2; }
die() { log "$*"; exit 2; }

# ---------------------------------------------------------------- arguments

MODE=suite
SUITE=veryquick
TESTS=()
if [ -n "${SQLITE_TCL_TESTS:-}" ]; then
	MODE=tests
	read -r -a TESTS <<<"$(echo "$SQLITE_TCL_TESTS" | tr '\n' ' ')"
fi
if [ $# -gt 0 ]; then
	case "$1" in
	build) MODE=build ;;
	veryquick) MODE=suite SUITE=veryquick ;;
	suite)
		[ $# -eq 2 ] || die "usage: run.sh suite NAME"
		MODE=suite SUITE=$2
		;;
	slice)
		MODE=tests
		read -r -a TESTS <<<"$(echo "$SLICE" | tr '\n' ' ')"
		;;
	tests)
		shift
		[ $# -gt 0 ] || die "usage: run.sh tests TEST..."
		MODE=tests TESTS=("$@")
		;;
	-h | --help)
		sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
		exit 0
		;;
	*) die "unknown mode $1 (veryquick, suite NAME, slice, tests T..., build)" ;;
	esac
fi

case "$CACHE" in
*" "*) die "the cache path must not contain spaces: $CACHE" ;;
esac

AS_ROOT=0
[ "$(id -u)" -eq 0 ] && AS_ROOT=1

# ---------------------------------------------------------------- packages

# enable_deb_src writes deb-src twins of the existing apt sources (deb822
# .sources files and one-line sources.list entries), so that no mirror name
# is ever typed here, and updates the package lists.
enable_deb_src() {
	local f out changed=0
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		case "$f" in */verneuil-deb-src-*) continue ;; esac
		grep -q '^Types:.*deb-src' "$f" && return 0
		grep -q '^Types: *deb *$' "$f" || continue
		out=/etc/apt/sources.list.d/verneuil-deb-src-$(basename "$f")
		if [ ! -f "$out" ]; then
			sed 's/^Types: *deb *$/Types: deb-src/' "$f" >"$out"
			changed=1
		fi
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		case "$f" in */verneuil-deb-src-*) continue ;; esac
		grep -q '^deb-src ' "$f" && return 0
		grep -q '^deb ' "$f" || continue
		out=/etc/apt/sources.list.d/verneuil-deb-src-$(basename "$f")
		if [ ! -f "$out" ]; then
			sed -n 's/^deb /deb-src /p' "$f" >"$out"
			changed=1
		fi
	done
	if [ $changed -eq 1 ] || ! apt-cache showsrc sqlite3 >/dev/null 2>&1; then
		log "apt-get update (deb-src enabled)"
		apt-get update -qq
	fi
}

ensure_packages() {
	local missing=() p
	for p in dpkg-dev tcl-dev zlib1g-dev make gcc; do
		dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		[ $AS_ROOT -eq 1 ] || die "missing packages (install as root): ${missing[*]}"
		log "installing ${missing[*]}"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
	fi
}

# ---------------------------------------------------------------- sources

find_src() {
	local d
	for d in "$CACHE"/src/sqlite3-*/; do
		if [ -f "$d/test/tester.tcl" ] && [ -x "$d/configure" ]; then
			echo "${d%/}"
			return 0
		fi
	done
	return 1
}

fetch_source() {
	if SRC=$(find_src); then
		return 0
	fi
	[ $AS_ROOT -eq 1 ] && enable_deb_src
	mkdir -p "$CACHE/src"
	log "apt-get source sqlite3 into $CACHE/src"
	(cd "$CACHE/src" && apt-get source -qq sqlite3 >apt-source.log 2>&1) || {
		cat "$CACHE/src/apt-source.log" >&2
		die "apt-get source sqlite3 failed (deb-src entries are needed; run as root once)"
	}
	SRC=$(find_src) || die "apt-get source gave no sqlite3-*/test tree in $CACHE/src"
}

# ---------------------------------------------------------------- builds

tcl_dir() {
	local f
	for f in /usr/lib/tcl8.6/tclConfig.sh /usr/lib/*/tcl8.6/tclConfig.sh /usr/lib/tclConfig.sh; do
		[ -f "$f" ] && { dirname "$f"; return 0; }
	done
	die "tclConfig.sh not found (install tcl-dev)"
}

# The Makefile's own TLIBS (libraries for testfixture), to append to.
make_var() { sed -n "s/^$1 *= *//p" "$2/Makefile" | head -1; }

build_plain() {
	local b=$CACHE/build-plain t0
	if [ ! -f "$b/Makefile" ]; then
		rm -rf "$b"
		mkdir -p "$b"
		log "configure (plain)"
		t0=$SECONDS
		(cd "$b" && "$SRC/configure" --with-tcl="$(tcl_dir)" >configure.log 2>&1) ||
			{ tail -30 "$b/configure.log" >&2; die "configure failed"; }
		log "configure took $((SECONDS - t0)) s"
	fi
	if [ ! -x "$b/testfixture" ]; then
		log "make testfixture (plain)"
		t0=$SECONDS
		(cd "$b" && make -j"$(nproc)" testfixture >make-testfixture.log 2>&1) ||
			{ tail -30 "$b/make-testfixture.log" >&2; die "make testfixture failed"; }
		log "plain testfixture took $((SECONDS - t0)) s"
	fi
}

build_verneuil() {
	local b=$CACHE/build-verneuil a=$CACHE/libverneuil_tclhook.a t0 stamp tlibs
	log "go build -buildmode=c-archive -tags verneuil_extern ./cmd/verneuil-tclhook"
	t0=$SECONDS
	(cd "$ROOT" && CGO_ENABLED=1 $GO build -buildmode=c-archive -tags verneuil_extern \
		-o "$CACHE/libverneuil_tclhook.a.new" ./cmd/verneuil-tclhook)
	rm -f "$CACHE/libverneuil_tclhook.a.h" "$CACHE/libverneuil_tclhook.h"
	if cmp -s "$CACHE/libverneuil_tclhook.a.new" "$a"; then
		rm -f "$CACHE/libverneuil_tclhook.a.new"
	else
		mv "$CACHE/libverneuil_tclhook.a.new" "$a"
	fi
	log "c-archive took $((SECONDS - t0)) s"
	if [ ! -f "$b/Makefile" ]; then
		# The configured tree (and the generated amalgamation) of the plain
		# build: only testfixture is linked differently.
		rm -rf "$b"
		cp -a "$CACHE/build-plain" "$b"
		rm -f "$b/testfixture" "$b/.verneuil-stamp"
	fi
	tlibs="$a -lpthread -ldl $(make_var TLIBS "$b")"
	stamp="$(sha256sum "$a" | cut -d' ' -f1) $tlibs"
	if [ -x "$b/testfixture" ] && [ "$(cat "$b/.verneuil-stamp" 2>/dev/null)" = "$stamp" ]; then
		return 0
	fi
	log "make testfixture (verneuil)"
	t0=$SECONDS
	rm -f "$b/testfixture"
	(cd "$b" && make testfixture OPTS=-DSQLITE_EXTRA_INIT=verneuil_extra_init \
		TLIBS="$tlibs" >make-testfixture.log 2>&1) ||
		{ tail -30 "$b/make-testfixture.log" >&2; die "make testfixture (verneuil) failed"; }
	echo "$stamp" >"$b/.verneuil-stamp"
	log "verneuil testfixture took $((SECONDS - t0)) s"
}

# ---------------------------------------------------------------- user

# as_user runs a command as the test user (as is when not root).
as_user() {
	if [ $AS_ROOT -eq 1 ]; then
		runuser -u "$TEST_USER" -- "$@"
	else
		"$@"
	fi
}

ensure_user() {
	[ $AS_ROOT -eq 1 ] || return 0
	if ! id -u "$TEST_USER" >/dev/null 2>&1; then
		log "creating user $TEST_USER"
		useradd --system --no-create-home --home-dir /nonexistent \
			--shell /usr/sbin/nologin "$TEST_USER"
	fi
}

# stage makes the sources and both testfixtures reachable by the test user:
# in place when it can read them, else copies under a world-readable
# directory (a checkout below /root, for example).
stage() {
	FIX_PLAIN=$CACHE/build-plain/testfixture
	FIX_VERNEUIL=$CACHE/build-verneuil/testfixture
	if as_user test -r "$SRC/test/tester.tcl" -a -x "$FIX_PLAIN" -a -x "$FIX_VERNEUIL" 2>/dev/null; then
		return 0
	fi
	STAGE=$(mktemp -d "${TMPDIR:-/tmp}/verneuil-sqlite-tcl-stage.XXXXXX")
	chmod 755 "$STAGE"
	log "$TEST_USER cannot read $CACHE; staging a copy in $STAGE"
	cp -a "$SRC" "$STAGE/"
	SRC=$STAGE/$(basename "$SRC")
	cp "$FIX_PLAIN" "$STAGE/testfixture-plain"
	cp "$FIX_VERNEUIL" "$STAGE/testfixture-verneuil"
	FIX_PLAIN=$STAGE/testfixture-plain
	FIX_VERNEUIL=$STAGE/testfixture-verneuil
	chmod -R a+rX "$STAGE"
}

# ---------------------------------------------------------------- running

# run_fixture KIND: runs the suite or every test file with one testfixture,
# in $RUN/KIND; writes $RUN/KIND/failures (one failing test name a line,
# sorted), $RUN/KIND/summary and $RUN/KIND/seconds.
run_fixture() {
	local kind=$1 fix dir t0 envs=() t rc name
	dir=$RUN/$kind
	mkdir -p "$dir/work" "$dir/logs"
	: >"$dir/failures.unsorted"
	: >"$dir/summary"
	if [ $AS_ROOT -eq 1 ]; then chown -R "$TEST_USER" "$dir/work"; fi
	if [ "$kind" = plain ]; then
		fix=$FIX_PLAIN
	else
		fix=$FIX_VERNEUIL
		envs=("VERNEUIL_CONFIG=@$STATE/config.json" "VERNEUIL_TCL_STATE=$STATE"
			"VERNEUIL_TCL_LOG=$STATE/verneuil.log" "VERNEUIL_CHECK_EVERY_COMMIT=$CHECK")
	fi
	t0=$(date +%s.%N)
	if [ "$MODE" = suite ]; then
		run_one "$kind" "$fix" "$dir" "$SUITE" "$SRC/test/permutations.test" "$SUITE"
	else
		for t in "${TESTS[@]}"; do
			name=${t%.test}
			[ -f "$SRC/test/$name.test" ] || { echo "$name:missing-test-file" >>"$dir/failures.unsorted"; continue; }
			# A fresh directory per file: a crash must not leave files behind
			# for the next one.
			rm -rf "$dir/work"
			mkdir -p "$dir/work"
			if [ $AS_ROOT -eq 1 ]; then chown "$TEST_USER" "$dir/work"; fi
			run_one "$kind" "$fix" "$dir" "$name" "$SRC/test/$name.test"
		done
	fi
	elapsed "$t0" >"$dir/seconds"
	sort -u "$dir/failures.unsorted" >"$dir/failures"
}

# run_one KIND FIXTURE DIR LABEL ARGS...: one testfixture process.
run_one() {
	local kind=$1 fix=$2 dir=$3 label=$4 logf rc=0 line names t0
	shift 4
	logf=$dir/logs/$label.log
	t0=$(date +%s.%N)
	(cd "$dir/work" && as_user env "${envs[@]}" timeout --kill-after=30 "$TIMEOUT" "$fix" "$@") \
		</dev/null >"$logf" 2>&1 || rc=$?
	line=$(grep -aE '^[0-9]+ errors out of [0-9]+ tests' "$logf" | tail -1 || true)
	names=$(sed -n 's/^!Failures on these tests: *//p' "$logf" | tail -1)
	if [ -z "$line" ]; then
		# No summary: the testfixture died (or timed out) before the end.
		line="no summary (exit $rc)"
		echo "$label:DIED(exit=$rc)" >>"$dir/failures.unsorted"
	fi
	for n in $names; do echo "$n" >>"$dir/failures.unsorted"; done
	printf '%-14s %6.1fs  %s\n' "$label" "$(elapsed "$t0")" "$line" >>"$dir/summary"
}

write_config() {
	mkdir -p "$STATE/spool" "$STATE/store"
	# Every commit is flushed by the check: lift the copier's rate limit and
	# the upload coalescing interval.
	cat >"$STATE/config.json" <<EOF
{
  "spool_dir": "$STATE/spool",
  "targets": [{"url": "file://$STATE/store"}],
  "replicate": true,
  "make_default": true,
  "rate_limit": 1000000,
  "rate_burst": 1000000,
  "upload_interval": "1ms",
  "log_level": "warn"
}
EOF
	if [ $AS_ROOT -eq 1 ]; then chown -R "$TEST_USER" "$STATE"; fi
}

# sum_stats prints the check counters summed over every process.
sum_stats() {
	cat "$STATE"/stats.* 2>/dev/null | awk '
		{ for (i = 1; i <= NF; i++) { split($i, kv, "="); s[kv[1]] += kv[2] } n++ }
		END {
			printf "processes=%d commits=%d checked=%d capture_failed=%d failures=%d bytes_compared=%d check_seconds=%.1f\n",
				n, s["commits"], s["checked"], s["capture_failed"], s["failures"], s["bytes"], s["check_ms"] / 1000
		}'
}

# ---------------------------------------------------------------- main

[ $AS_ROOT -eq 1 ] && ensure_packages
fetch_source
log "sources: $SRC"
build_plain
build_verneuil
[ "$MODE" = build ] && { log "built $CACHE/build-plain/testfixture and $CACHE/build-verneuil/testfixture"; exit 0; }

ensure_user
stage
RUN=$CACHE/run
rm -rf "$RUN"
mkdir -p "$RUN"
# Replication state: spool and store on tmpfs when there is one (the check
# flushes every commit; fsync there is free).
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
	STATE=$(mktemp -d /dev/shm/verneuil-sqlite-tcl.XXXXXX)
else
	STATE=$(mktemp -d "${TMPDIR:-/tmp}/verneuil-sqlite-tcl.XXXXXX")
fi
chmod 755 "$STATE"
cleanup() {
	if [ "${SQLITE_TCL_KEEP:-0}" = 1 ] || [ "${KEEP_STATE:-0}" = 1 ]; then
		log "replication state kept in $STATE"
	else
		rm -rf "$STATE"
	fi
	if [ -n "${STAGE:-}" ]; then rm -rf "$STAGE"; fi
}
trap cleanup EXIT
write_config

if [ "$MODE" = suite ]; then
	log "running permutation '$SUITE' with both testfixtures as ${TEST_USER/#/} (logs in $RUN)"
else
	log "running ${#TESTS[@]} test files with both testfixtures (logs in $RUN)"
fi
[ $AS_ROOT -eq 1 ] || log "not root: running as $(id -un)"
if [ "$PARALLEL" = 1 ]; then
	run_fixture plain &
	p1=$!
	run_fixture verneuil &
	p2=$!
	wait $p1
	wait $p2
else
	run_fixture plain
	run_fixture verneuil
fi

# ---------------------------------------------------------------- report

status=0
for k in plain verneuil; do
	echo "== $k testfixture: $(printf '%.1f' "$(cat "$RUN/$k/seconds")") s"
	cat "$RUN/$k/summary"
	echo "failing tests ($(wc -l <"$RUN/$k/failures")): $(tr '\n' ' ' <"$RUN/$k/failures")"
done
if [ "$CHECK" = 1 ]; then
	echo "== per-commit check: $(sum_stats)"
	if cat "$STATE"/failures.* >/dev/null 2>&1 && [ -n "$(cat "$STATE"/failures.* 2>/dev/null)" ]; then
		echo "replica/file mismatches (first 20):"
		cat "$STATE"/failures.* | head -20
		status=1
		KEEP_STATE=1
	fi
fi
if [ -s "$STATE/verneuil.log" ]; then
	echo "== verneuil log: $(grep -c 'level=ERROR' "$STATE/verneuil.log" || true) errors, $(grep -c 'level=WARN' "$STATE/verneuil.log" || true) warnings; most frequent:"
	sed -E 's/^time=[^ ]+ //; s/ (db|err|pid)=("[^"]*"|[^ ]*)//g' "$STATE/verneuil.log" | sort | uniq -c | sort -rn | head -10
	cp "$STATE/verneuil.log" "$RUN/verneuil.log"
fi
if ! diff -u --label plain --label verneuil "$RUN/plain/failures" "$RUN/verneuil/failures" >"$RUN/failures.diff"; then
	echo "== the failing tests differ (- plain only, + verneuil only):"
	grep -E '^[-+][^-+]' "$RUN/failures.diff" || true
	status=1
else
	echo "== the failing tests are the same"
fi
if grep -q ':DIED' "$RUN/plain/failures" "$RUN/verneuil/failures"; then
	echo "== a testfixture died or timed out (see $RUN/*/logs)"
	status=1
fi
if [ $status -eq 0 ]; then
	echo "sqlite-tcl: PASS"
else
	echo "sqlite-tcl: FAIL (logs in $RUN)"
fi
exit $status
