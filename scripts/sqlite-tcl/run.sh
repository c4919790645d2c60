#!/usr/bin/env bash
# run.sh: SQLite's own TCL test suite, run with SQLite's plain unix VFS and
# with the replicating VFS "verneuil" as the default (and shadowing the name
# "unix"), replication on to a local file:// target and the per-commit
# invariant check on. Fails when the two testfixtures fail different tests
# or the check finds a replica that differs from its database, apart from
# the entries of known-differences.txt. docs/TESTING-TCL.md explains it all.
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
#   SQLITE_TCL_BATCH=N            test files per testfixture process (default 50)
#   SQLITE_TCL_TIMEOUT=SECONDS    limit per testfixture process (default 300;
#                                 the slowest batch of 50 files takes ~40 s on an idle
#                                 machine, over 120 s on a loaded one)
#   SQLITE_TCL_KEEP=1             keep the replication state directory (spool,
#                                 store, per-process check results; on /dev/shm
#                                 when there is one); the check's mismatches and
#                                 the library's log are copied to the run's logs
#                                 either way
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
TIMEOUT=${SQLITE_TCL_TIMEOUT:-300}
BATCH=${SQLITE_TCL_BATCH:-50}
CHECK=${VERNEUIL_CHECK_EVERY_COMMIT:-1}
GO=${GO:-go}

# The CI slice: the test files that exercise the pager, journals, locking,
# transactions, attach, vacuum, I/O and malloc errors, crashes and the VFS,
# a few plain SQL files, and the files of known-differences.txt. About 1.5
# minutes for both testfixtures on 2 cores (plus ~1 minute to build when the
# Go code changed).
SLICE="select1 insert delete update trans rollback savepoint journal1 journal2
journal3 jrnlmode pager1 pager2 pager3 pager4 lock lock2 lock4 lock5 exclusive
exclusive2 attach attach2 vacuum vacuum2 hook capi3 ioerr ioerr2 syscall mmap1
mmap2 nolock uri unixexcl crash crash2 misc1 misc5 incrvacuum autovacuum
filectrl triggerA dbstatus corruptB"

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

# enable_deb_src writes deb-src twins of the existing apt sources and
# updates the package lists (scripts/enable-deb-src.sh).
enable_deb_src() { sh "$ROOT/scripts/enable-deb-src.sh" sqlite3; }

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

# list_suite prints the test files of a permutation, one a line (paths as
# permutations.test has them).
list_suite() {
	local d
	d=$(mktemp -d)
	cat >"$d/list.tcl" <<EOF
set argv0 [file join {$SRC/test} permutations-list]
set argv {}
source [file join {$SRC/test} permutations.test]
if {![info exists ::testspec($SUITE)]} { puts stderr "no such permutation: $SUITE"; exit 1 }
array set o \$::testspec($SUITE)
foreach f [lsort \$o(-files)] { puts "FILE: \$f" }
EOF
	(cd "$d" && "$CACHE/build-plain/testfixture" list.tcl) >"$d/out" 2>&1 ||
		{ cat "$d/out" >&2; rm -rf "$d"; die "cannot list permutation $SUITE"; }
	sed -n 's/^FILE: //p' "$d/out"
	rm -rf "$d"
}

# run_fixture KIND: runs the test files of $RUN/files with one testfixture,
# in batches of $BATCH files per process (through permutations.test, which
# runs each file in a slave interpreter, as veryquick.test does), in
# $RUN/KIND. A batch's output is split into one log per file at the
# "Time: FILE N ms" line that tester.tcl prints after each file. When a
# process ends early (a crash, a timeout, a Tcl error outside a test), the
# file it was running is recorded as "FILE DIED", the files before it are
# run again as a batch (their results were lost with the process's summary)
# and the run goes on after it. Writes $RUN/KIND/failures ("FILE TEST" lines,
# sorted), $RUN/KIND/summary (one line per process) and $RUN/KIND/seconds.
run_fixture() {
	local kind=$1 fix dir t0 envs=() files=() i n done_n nb
	dir=$RUN/$kind
	mkdir -p "$dir/logs"
	: >"$dir/failures.unsorted"
	: >"$dir/summary"
	if [ "$kind" = plain ]; then
		fix=$FIX_PLAIN
	else
		fix=$FIX_VERNEUIL
		envs=("VERNEUIL_CONFIG=@$STATE/config.json" "VERNEUIL_TCL_STATE=$STATE"
			"VERNEUIL_TCL_LOG=$STATE/verneuil.log" "VERNEUIL_CHECK_EVERY_COMMIT=$CHECK")
	fi
	mapfile -t files <"$RUN/files"
	n=${#files[@]}
	i=0
	t0=$(date +%s.%N)
	while [ "$i" -lt "$n" ]; do
		nb=$BATCH
		[ $((i + nb)) -le "$n" ] || nb=$((n - i))
		done_n=$(run_batch "$kind" "$fix" "$dir" "${files[@]:i:nb}")
		if [ "$done_n" -lt "$nb" ]; then
			echo "$(basename "${files[i + done_n]}" .test) DIED" >>"$dir/failures.unsorted"
			if [ "$done_n" -gt 0 ]; then
				# The process died with the results of the files it had
				# finished: run them again.
				redo=$(run_batch "$kind" "$fix" "$dir" "${files[@]:i:done_n}")
				if [ "$redo" -lt "$done_n" ]; then
					echo "$(basename "${files[i + redo]}" .test) DIED" >>"$dir/failures.unsorted"
				fi
			fi
			i=$((i + done_n + 1))
		else
			i=$((i + nb))
		fi
	done
	elapsed "$t0" >"$dir/seconds"
	sort -u "$dir/failures.unsorted" >"$dir/failures"
}

# run_batch KIND FIXTURE DIR FILE...: one testfixture process for these
# files, in a fresh directory. Prints how many of the files finished (all of
# them unless the process ended early). Appends to DIR/failures.unsorted the
# failures it reported, and one line to DIR/summary.
run_batch() {
	local kind=$1 fix=$2 dir=$3 rc=0 t0 work out line labels=() f
	shift 3
	for f in "$@"; do labels+=("$(basename "$f" .test)"); done
	work=$dir/work
	rm -rf "$work"
	mkdir -p "$work"
	if [ $AS_ROOT -eq 1 ]; then chown "$TEST_USER" "$work"; fi
	out=$dir/logs/process.out
	t0=$(date +%s.%N)
	(cd "$work" && as_user env "${envs[@]}" VERNEUIL_TCL_LABEL="${labels[0]}..${labels[-1]}" \
		timeout --kill-after=30 "$TIMEOUT" "$fix" "$SRC/test/permutations.test" \
		--maxerror=1000000 "$SUITE" "${labels[@]/%/.test}") </dev/null >"$out" 2>&1 || rc=$?
	rm -rf "$work"
	# Split the output at the Time: lines; the k-th belongs to the k-th file
	# (run_tests sorts its files as $RUN/files is sorted). Lines after the
	# last one go to the file that did not finish, if any.
	awk -v dir="$dir/logs" -v labels="${labels[*]}" -v failures="$dir/failures.unsorted" '
		BEGIN { n = split(labels, L, " "); k = 1; cur = dir "/" L[1] ".log"; printf "" >cur }
		{
			if (k <= n) print >cur
			if (match($0, /^[^ !]+\.\.\./)) { t = substr($0, 1, RLENGTH - 3); if (!(t in owner)) owner[t] = (k <= n ? L[k] : "unknown") }
			if ($0 ~ /^Time: [^ ]+ [0-9]+ ms$/ && k <= n) {
				if ($2 != L[k] ".test") { print "sqlite-tcl: output order mismatch: " $2 " while expecting " L[k] ".test" >"/dev/stderr"; exit 3 }
				close(cur); k++; if (k <= n) { cur = dir "/" L[k] ".log"; printf "" >cur }
			}
			if (sub(/^!Failures on these tests: */, "")) {
				m = split($0, F, " ")
				for (j = 1; j <= m; j++) print ((F[j] in owner) ? owner[F[j]] : "unknown") " " F[j] >>failures
			}
		}
		END { print k - 1 }' "$out" >"$dir/logs/process.done" || die "cannot split $out"
	line=$(grep -aE '^[0-9]+ errors out of [0-9]+ tests' "$out" | tail -1 || true)
	if [ -z "$line" ]; then line="ended early (exit $rc)"; fi
	printf '%-24s %3d files %6.1fs  %s\n' "${labels[0]}.." "$#" "$(elapsed "$t0")" "$line" >>"$dir/summary"
	cat "$dir/logs/process.done"
}

# known KIND FILE TEST prints the reason of a matching entry of
# known-differences.txt, or fails.
known() {
	local kind file pat reason
	while read -r kind file pat reason; do
		case "$kind" in "" | "#"*) continue ;; esac
		# shellcheck disable=SC2254
		if [ "$kind" = "$1" ] && [ "$file" = "$2" ] && case "$3" in $pat) true ;; *) false ;; esac; then
			echo "$reason"
			return 0
		fi
	done <"$ROOT/scripts/sqlite-tcl/known-differences.txt"
	return 1
}

# attribute_checks re-runs, one file per process and with the verneuil
# testfixture only, the files of every batch in which the per-commit check
# failed, so that each mismatch is tied to a test file. Prints "FILE LINE"
# for each mismatch seen alone, and "BATCH:FIRST..LAST -" for a batch whose
# mismatches did not come back.
attribute_checks() {
	local b first last f envs found dir=$RUN/attribute
	mkdir -p "$dir/logs" "$STATE/attribute"
	if [ $AS_ROOT -eq 1 ]; then chown "$TEST_USER" "$STATE/attribute"; fi
	: >"$dir/failures.unsorted"
	: >"$dir/summary"
	envs=("VERNEUIL_CONFIG=@$STATE/config.json" "VERNEUIL_TCL_STATE=$STATE/attribute"
		"VERNEUIL_TCL_LOG=$STATE/verneuil.log" "VERNEUIL_CHECK_EVERY_COMMIT=1")
	for b in $(sed -n 's/.* test=\([^ ]*\) .*/\1/p' "$STATE"/failures.* | sort -u); do
		first=${b%%..*} last=${b##*..}
		found=0
		while read -r f; do
			run_batch verneuil "$FIX_VERNEUIL" "$dir" "$f" >/dev/null
			if grep -qs " test=$(basename "$f" .test)\.\." "$STATE"/attribute/failures.*; then found=1; fi
		done < <(awk -v a="$first" -v z="$last" '{ t = $0; sub(/.*\//, "", t); sub(/\.test$/, "", t) } t == a { on = 1 } on { print } t == z { exit }' "$RUN/files")
		[ $found -eq 1 ] || echo "BATCH:$b -"
	done
	# No failures file at all (no mismatch came back) is not an error.
	{ cat "$STATE"/attribute/failures.* 2>/dev/null || true; } | sed -n 's/^\([^ ]*\) test=\([^ .]*\)\.\.[^ ]* \(.*\)/\2 \1 \3/p'
}

# batch_known_check prints the first file of batch FIRST..LAST that has a
# "check" entry in known-differences.txt, or fails.
batch_known_check() {
	local b=$1 f
	while read -r f; do
		if known check "$f" x >/dev/null; then
			echo "$f"
			return 0
		fi
	done < <(awk -v a="${b%%..*}" -v z="${b##*..}" '{ t = $0; sub(/.*\//, "", t); sub(/\.test$/, "", t) } t == a { on = 1 } on { print t } t == z { exit }' "$RUN/files")
	return 1
}

# classify reads "FILE TEST" lines (tests failing with one testfixture only)
# and prints "known FILE TEST REASON" for an entry of known-differences.txt,
# else "unexpected FILE TEST".
classify() {
	local file test reason
	while read -r file test; do
		if reason=$(known test "$file" "$test"); then
			echo "known $file $test $reason"
		else
			echo "unexpected $file $test"
		fi
	done
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
			printf "processes=%d commits=%d checked=%d checked_wal=%d wal_unchecked=%d capture_failed=%d too_large=%d sampled_out=%d failures=%d bytes_compared=%.0f wal_bytes_unchanged=%.0f check_seconds=%.1f wal_queued=%d wal_queue_dropped=%d\n",
				n, s["commits"], s["checked"], s["checked_wal"], s["wal_unchecked"], s["capture_failed"], s["too_large"], s["sampled_out"], s["failures"], s["bytes"], s["bytes_unchanged"], s["check_ms"] / 1000, s["wal_queued"], s["wal_queue_dropped"]
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
	if [ "${SQLITE_TCL_KEEP:-0}" = 1 ]; then
		log "replication state kept in $STATE"
	else
		rm -rf "$STATE"
	fi
	if [ -n "${STAGE:-}" ]; then rm -rf "$STAGE"; fi
}
trap cleanup EXIT
write_config

if [ "$MODE" = suite ]; then
	list_suite >"$RUN/files"
	log "running permutation '$SUITE' ($(wc -l <"$RUN/files") files) with both testfixtures, $BATCH files per process (logs in $RUN)"
else
	for t in "${TESTS[@]}"; do
		t=${t%.test}
		[ -f "$SRC/test/$t.test" ] || die "no test file $SRC/test/$t.test"
		echo "$t.test"
	done | LC_ALL=C sort -u >"$RUN/files"
	log "running ${#TESTS[@]} test files with both testfixtures (logs in $RUN)"
fi
if [ $AS_ROOT -eq 1 ]; then
	log "tests run as $TEST_USER"
else
	log "not root: tests run as $(id -un)"
fi
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
	echo "== $k testfixture: $(wc -l <"$RUN/files") files, $(wc -l <"$RUN/$k/summary") processes, $(cat "$RUN/$k/seconds") s," \
		"$(awk 'match($0, /errors out of [0-9]+/) { split(substr($0, RSTART, RLENGTH), a, " "); n += a[4] } END { print n + 0 }' "$RUN/$k/summary") tests"
	if [ "$MODE" = tests ]; then
		cat "$RUN/$k/summary"
	else
		grep -v ' 0 errors out of' "$RUN/$k/summary" || true
	fi
	echo "failing ($(wc -l <"$RUN/$k/failures")): $(sed 's/ /:/' "$RUN/$k/failures" | head -40 | tr '\n' ' ')$([ "$(wc -l <"$RUN/$k/failures")" -le 40 ] || echo "... (all in $RUN/$k/failures)")"
done
if [ "$CHECK" = 1 ]; then
	sum_stats >"$RUN/check-stats"
	echo "== per-commit check: $(cat "$RUN/check-stats")"
	if [ -n "$(cat "$STATE"/failures.* 2>/dev/null)" ]; then
		cat "$STATE"/failures.* >"$RUN/check-failures"
		echo "replica/file mismatches: $(wc -l <"$RUN/check-failures") (all in $RUN/check-failures); attributing them to test files"
		# Strict but never fatal: a batch whose mismatches do not come back
		# alone is reported below; a failure of the attribution itself too.
		attribute_checks >"$RUN/check-attributed" || {
			echo "  unexpected: the attribution of the mismatches failed (see $RUN/attribute)"
			status=1
		}
		while read -r f rest; do
			if [ "${f#BATCH:}" != "$f" ] && kf=$(batch_known_check "${f#BATCH:}"); then
				# corruptB's mismatches depend on when a rescan copies the
				# file it patches behind SQLite's back: they do not always
				# come back alone.
				echo "  known? (${f#BATCH:}): mismatches that did not come back when its files ran alone; the batch holds $kf, a known per-commit check difference"
			elif [ "${f#BATCH:}" != "$f" ]; then
				echo "  unexpected: ${f#BATCH:}: mismatches that did not come back when its files ran alone"
				status=1
			elif reason=$(known check "$f" x); then
				echo "  known ($f): $reason"
			else
				echo "  unexpected ($f): $rest"
				status=1
			fi
		done < <(awk '!seen[$1]++ || $1 ~ /^BATCH:/' "$RUN/check-attributed")
	fi
	if [ "$(sum_stats | sed -n 's/.* checked=\([0-9]*\) checked_wal=\([0-9]*\) .*/\1 \2/p')" = "0 0" ]; then
		echo "the check saw no commit: the verneuil testfixture did not replicate"
		status=1
	fi
fi
if [ -s "$STATE/verneuil.log" ]; then
	cp "$STATE/verneuil.log" "$RUN/verneuil.log"
	echo "== verneuil log ($RUN/verneuil.log): $(grep -c 'level=ERROR' "$STATE/verneuil.log" || true) errors," \
		"$(grep -c 'level=WARN' "$STATE/verneuil.log" || true) warnings; most frequent:"
	sed -E 's/^time=[^ ]+ //; s/ (db|err|pid|stack|panic)=("([^"\\]|\\.)*"|[^ ]*)//g' "$STATE/verneuil.log" |
		sort | uniq -c | sort -rn | sed -n '1,10p' # sed reads to the end: no SIGPIPE under pipefail
fi
comm -3 "$RUN/plain/failures" "$RUN/verneuil/failures" | sed 's/^\t//' | classify >"$RUN/differences"
if [ -s "$RUN/differences" ]; then
	if grep -q '^known' "$RUN/differences"; then
		echo "== known differences (scripts/sqlite-tcl/known-differences.txt):"
		awk '$1 == "known" { k = $2; c[k]++; $1 = $2 = $3 = ""; r[k] = substr($0, 4) } END { for (k in c) printf "  %s (%d tests): %s\n", k, c[k], r[k] }' "$RUN/differences"
	fi
	if grep -q '^unexpected' "$RUN/differences"; then
		echo "== unexpected differences (FILE TEST; failing with one testfixture only):"
		while read -r _ f t; do
			if grep -qx "$f $t" "$RUN/plain/failures"; then
				echo "  $f $t  (fails with plain only)"
			else
				echo "  $f $t  (fails with verneuil only)"
			fi
		done < <(grep '^unexpected' "$RUN/differences")
		status=1
	fi
fi
[ -s "$RUN/differences" ] || echo "== the failing tests are the same"
if grep -q ' DIED$' "$RUN/plain/failures" "$RUN/verneuil/failures"; then
	echo "== note: some files ended without a summary (crash, timeout or script error): grep DIED $RUN/*/failures"
fi
if [ $status -eq 0 ]; then
	echo "sqlite-tcl: PASS"
else
	echo "sqlite-tcl: FAIL (logs in $RUN)"
fi
exit $status
