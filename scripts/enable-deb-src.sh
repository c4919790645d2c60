#!/bin/sh
# enable-deb-src.sh PACKAGE writes deb-src twins of the existing apt
# sources (deb822 .sources files and one-line sources.list entries, as
# /etc/apt/sources.list.d/verneuil-deb-src-NAME), so that no mirror name is
# ever typed here, and runs apt-get update when it wrote one or when
# `apt-cache showsrc PACKAGE` finds nothing. Does nothing when some source
# already has deb-src entries and PACKAGE's source is known. Needs root.
# Used by scripts/sqlite-tcl/run.sh and scripts/install-python-suite.sh.
set -eu

pkg=${1:?usage: enable-deb-src.sh PACKAGE}
changed=0
have_src=0

for f in /etc/apt/sources.list.d/*.sources; do
	[ -f "$f" ] || continue
	case "$f" in */verneuil-deb-src-*) continue ;; esac
	if grep -q '^Types:.*deb-src' "$f"; then
		have_src=1
		break
	fi
	grep -q '^Types: *deb *$' "$f" || continue
	out=/etc/apt/sources.list.d/verneuil-deb-src-$(basename "$f")
	if [ ! -f "$out" ]; then
		sed 's/^Types: *deb *$/Types: deb-src/' "$f" >"$out"
		changed=1
	fi
done
if [ $have_src -eq 0 ]; then
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		case "$f" in */verneuil-deb-src-*) continue ;; esac
		if grep -q '^deb-src ' "$f"; then
			break
		fi
		grep -q '^deb ' "$f" || continue
		out=/etc/apt/sources.list.d/verneuil-deb-src-$(basename "$f")
		if [ ! -f "$out" ]; then
			sed -n 's/^deb /deb-src /p' "$f" >"$out"
			changed=1
		fi
	done
fi
if [ $changed -eq 1 ] || ! apt-cache showsrc "$pkg" 2>/dev/null | grep -q '^Package:'; then
	echo "enable-deb-src: apt-get update (deb-src enabled)" >&2
	apt-get update -qq
fi
