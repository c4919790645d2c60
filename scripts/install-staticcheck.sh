#!/bin/sh
# install-staticcheck.sh installs staticcheck (honnef.co/go/tools) into
# <repo>/.cache/tools for `make lint`. Idempotent: does nothing when the
# binary is already installed.
#
# staticcheck is a separate binary and deliberately stays out of go.mod.
set -eu

VERSION=v0.8.2
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TOOLS="$ROOT/.cache/tools"
BIN="$TOOLS/staticcheck"

if [ -x "$BIN" ] && "$BIN" -version 2>/dev/null | grep -q "${VERSION#v}"; then
	echo "staticcheck already installed: $BIN"
	exit 0
fi

mkdir -p "$TOOLS"
echo "installing staticcheck $VERSION into $TOOLS"
# "go install pkg@version" ignores the current module, so go.mod is untouched.
GOBIN="$TOOLS" go install "honnef.co/go/tools/cmd/staticcheck@$VERSION"
echo "installed: $BIN"
