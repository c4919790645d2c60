#!/bin/sh
# build-ext.sh builds the loadable SQLite extension libverneuil.so
# (docs/EXTENSION.md) from ./cmd/verneuil-ext.
#
#   scripts/build-ext.sh [OUTPUT]     default OUTPUT: <repo>/bin/libverneuil.so
#
# The version script keeps the dynamic symbol table to the entry point
# sqlite3_verneuil_init and the C API of include/verneuil.h; it is passed
# through -extldflags because the go command refuses --version-script in a
# #cgo LDFLAGS line. The C header that go build writes next to the library
# (the cgo export header) is removed: include/verneuil.h is the public one.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-"$ROOT/bin/libverneuil.so"}
case "$OUT" in
/*) ;;
*) OUT="$(pwd)/$OUT" ;;
esac
case "$OUT" in
*" "*)
	echo "build-ext.sh: the output path must not contain spaces: $OUT" >&2
	exit 2
	;;
esac
case "$ROOT" in
*" "*)
	echo "build-ext.sh: the repository path must not contain spaces: $ROOT" >&2
	exit 2
	;;
esac

mkdir -p "$(dirname "$OUT")"
cd "$ROOT"
CGO_ENABLED=1 go build -buildmode=c-shared -tags verneuil_ext \
	-ldflags "-extldflags '-Wl,--version-script=$ROOT/cmd/verneuil-ext/libverneuil.map -Wl,-soname,libverneuil.so'" \
	-o "$OUT" ./cmd/verneuil-ext
rm -f "${OUT%.so}.h"
echo "built $OUT"
