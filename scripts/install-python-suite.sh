#!/bin/sh
# install-python-suite.sh installs what scripts/python-suite/run.sh needs:
# Debian's python3 (3.11: /usr/bin/python3, whose sqlite3 module can load
# extensions) and CPython's own sqlite3 tests, so that
# `/usr/bin/python3 -m test test_sqlite3` runs. Idempotent: does nothing
# when that module imports already. Needs root (or sudo).
#
# Debian's libpython3.11-testsuite does NOT hold test.test_sqlite3: CPython
# 3.11.2's Makefile leaves test/test_sqlite3 out of TESTSUBDIRS (fixed
# upstream in 3.11.3), so no 3.11.2 package has it. This script takes the
# directory Lib/test/test_sqlite3 from Debian's python3.11 source package
# (`apt-get source --download-only`, deb-src enabled from the existing apt
# sources by scripts/enable-deb-src.sh), for the upstream version of the
# installed python3.11, and copies it to /usr/lib/python3.11/test/
# test_sqlite3, where the upstream install step would have put it (the
# suite's loader only finds tests inside the standard library's
# directory). Debian's patches do not touch that directory; the script
# checks it when the Debian part of the source package was fetched. The
# regression-test driver itself (test.libregrtest, test.support) comes with
# libpython3.11-stdlib.
#
# PY_SUITE_CACHE (default <repo>/.cache/python-suite) keeps the download.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${PY_SUITE_CACHE:-$ROOT/.cache/python-suite}
PY=/usr/bin/python3
SRCPKG=python3.11

log() { printf 'install-python-suite: %s\n' "$*" >&2; }
die() {
	log "$*"
	exit 1
}

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo"
fi

if ! dpkg-query -W -f='${Status}' python3 2>/dev/null | grep -q "install ok installed" || [ ! -x "$PY" ]; then
	log "installing python3"
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3
fi

if "$PY" -c 'import test.test_sqlite3' >/dev/null 2>&1; then
	echo "python suite already installed: $PY, test.test_sqlite3"
	exit 0
fi

# Where the test package goes, and which upstream version it must be.
TESTDIR=$("$PY" -c 'import os, test; print(os.path.dirname(test.__file__))')
UPSTREAM=$("$PY" -c 'import platform; print(platform.python_version())')
INSTALLED=$(dpkg-query -W -f='${Version}' "$SRCPKG" 2>/dev/null || true)
case "$INSTALLED" in
"$UPSTREAM"-*) ;;
*) die "$PY is $UPSTREAM but the installed $SRCPKG package is '$INSTALLED'" ;;
esac
ORIG="$CACHE/src/${SRCPKG}_$UPSTREAM.orig.tar.gz"

if [ ! -s "$ORIG" ]; then
	$SUDO sh "$ROOT/scripts/enable-deb-src.sh" "$SRCPKG"
	mkdir -p "$CACHE/src"
	# The installed revision first; a mirror may lack its source (security
	# updates), and every revision of one upstream version shares the
	# .orig tarball, so the other revisions listed are tried next.
	versions="$INSTALLED $(apt-cache showsrc "$SRCPKG" | sed -n 's/^Version: //p' | sort -r -V)"
	for v in $versions; do
		case "$v" in "$UPSTREAM"-*) ;; *) continue ;; esac
		log "apt-get source --download-only $SRCPKG=$v"
		(cd "$CACHE/src" && apt-get source --download-only -qq "$SRCPKG=$v" >apt-source.log 2>&1) || true
		[ -s "$ORIG" ] && break
	done
	[ -s "$ORIG" ] || {
		cat "$CACHE/src/apt-source.log" >&2 || true
		die "no ${SRCPKG}_$UPSTREAM.orig.tar.gz from apt-get source (deb-src entries are needed)"
	}
fi

# Debian's patches, when their tarball came too, must leave the tests alone.
for d in "$CACHE/src/${SRCPKG}_$UPSTREAM"-*.debian.tar.xz; do
	[ -f "$d" ] || continue
	if tar -xJOf "$d" --wildcards 'debian/patches/*' 2>/dev/null | grep -q 'Lib/test/test_sqlite3/'; then
		die "$d patches Lib/test/test_sqlite3: extract it with dpkg-source instead"
	fi
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tar -xzf "$ORIG" -C "$tmp" "Python-$UPSTREAM/Lib/test/test_sqlite3" ||
	die "$ORIG has no Python-$UPSTREAM/Lib/test/test_sqlite3"
# Copied beside the destination, then renamed: never half a package.
$SUDO rm -rf "$TESTDIR/.test_sqlite3.new"
$SUDO cp -r "$tmp/Python-$UPSTREAM/Lib/test/test_sqlite3" "$TESTDIR/.test_sqlite3.new"
$SUDO chmod -R u=rwX,go=rX "$TESTDIR/.test_sqlite3.new"
$SUDO rm -rf "$TESTDIR/test_sqlite3"
$SUDO mv "$TESTDIR/.test_sqlite3.new" "$TESTDIR/test_sqlite3"

"$PY" -c 'import test.test_sqlite3' >/dev/null || die "$PY cannot import test.test_sqlite3 after installing it in $TESTDIR"
echo "installed $TESTDIR/test_sqlite3 from ${SRCPKG}_$UPSTREAM.orig.tar.gz"
