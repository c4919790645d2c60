#!/usr/bin/env bash
# fuzz.sh PACKAGE TARGET DURATION: fuzz one target for DURATION.
#
# Go 1.26's fuzz coordinator can fail a run that found nothing with a bare
# "context deadline exceeded" when a worker is still busy as -fuzztime ends
# (golang/go#75804, fixed in Go 1.27); slow targets on a loaded 2-core
# machine hit it. Such a failure counts only if it wrote a failing input or
# if the corpus (seeds and every input found so far) fails when replayed.
set -uo pipefail
pkg=$1 name=$2 duration=$3
go=${GO:-go}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
"$go" test -run '^$' -fuzz "^${name}\$" -fuzztime "$duration" "$pkg" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
if [ "$rc" -ne 0 ] && tail -n 6 "$log" | grep -q 'context deadline exceeded' &&
	! grep -q 'Failing input written to' "$log"; then
	echo "fuzz $name: stopped by the coordinator's deadline race, no failing input; replaying the corpus"
	"$go" test -count=1 -run "^${name}\$" "$pkg"
	rc=$?
fi
exit "$rc"
