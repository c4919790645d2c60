#!/bin/sh
# install-litestream.sh installs Litestream (the replicator the side-by-side
# benchmark compares against, cmd/verneuil-lsbench) into <repo>/.cache/tools.
# Idempotent: does nothing when the binary is already installed.
#
# Litestream is a separate binary and deliberately stays out of go.mod.
set -eu

VERSION=v0.5.18
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TOOLS="$ROOT/.cache/tools"
BIN="$TOOLS/litestream"

if [ -x "$BIN" ]; then
	echo "litestream already installed: $BIN"
	exit 0
fi

mkdir -p "$TOOLS"
echo "installing litestream $VERSION into $TOOLS (takes a few minutes on a cold cache)"
# "go install pkg@version" ignores the current module, so go.mod is untouched.
GOBIN="$TOOLS" go install "github.com/benbjohnson/litestream/cmd/litestream@$VERSION"
echo "installed: $BIN"
