#!/bin/sh
# install-s3-server.sh installs the S3-compatible test server (versitygw) into
# <repo>/.cache/tools. The S3 integration tests (internal/blob/s3test) find it
# there. Idempotent: does nothing when the binary is already installed.
#
# versitygw is a separate binary and deliberately stays out of go.mod.
set -eu

VERSION=v1.8.0
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TOOLS="$ROOT/.cache/tools"
BIN="$TOOLS/versitygw"

if [ -x "$BIN" ]; then
	echo "versitygw already installed: $BIN"
	exit 0
fi

mkdir -p "$TOOLS"
echo "installing versitygw $VERSION into $TOOLS (takes a few minutes on a cold cache)"
# "go install pkg@version" ignores the current module, so go.mod is untouched.
GOBIN="$TOOLS" go install "github.com/versity/versitygw/cmd/versitygw@$VERSION"
echo "installed: $BIN"
