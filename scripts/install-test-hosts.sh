#!/bin/sh
# install-test-hosts.sh installs the host programs that the extension tests
# (tests/ext) load libverneuil.so into: Debian's sqlite3 shell, its
# libsqlite3-dev (headers and libsqlite3.so for the C host, built with gcc)
# and python3 (whose sqlite3 module supports load_extension); zsh, for the
# test of verneuilctl's zsh completion (cmd/verneuilctl); then CPython's
# sqlite3 tests for TestPythonSQLiteSuite (scripts/install-python-suite.sh).
# Idempotent: does nothing when everything is present. Needs root (or sudo)
# for apt-get.
set -eu

PKGS="sqlite3 libsqlite3-dev python3 gcc libc6-dev zsh"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
if [ -z "$missing" ]; then
	echo "test hosts already installed: $PKGS"
else
	SUDO=""
	if [ "$(id -u)" -ne 0 ]; then
		SUDO="sudo"
	fi
	echo "installing:$missing"
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	# shellcheck disable=SC2086 # word splitting of the package list is intended
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
	echo "installed:$missing"
fi

sh "$(dirname "$0")/install-python-suite.sh"
