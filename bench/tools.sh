#!/usr/bin/env bash
# Installs the baseline tools the benchmarks compare against, at pinned
# versions, into the test tools cache (the same one integration/servers.sh
# uses), each with a version stamp so a second run costs nothing:
#
#   bench/tools.sh            install s5cmd and rclone (rclone takes ~100 s the first time)
#   bench/tools.sh s5cmd      only s5cmd
#   bench/tools.sh bin        print the folder holding them
#
# s5cmd cannot be `go install`ed at a version (the module proxy refuses its
# version list), so it is built from a throwaway module that requires it.
set -euo pipefail
export GOTOOLCHAIN=local
export GOFLAGS=-buildvcs=false

TOOLS=${INITIALIZER_TOOLS:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/initializer-test-tools}
BIN=$TOOLS/bin
S5CMD_VERSION=v2.3.0
RCLONE_VERSION=v1.76.0

stamped() { [[ -x $BIN/$1 && -f $BIN/.$1.version && $(<"$BIN/.$1.version") == "$2" ]]; }

install_s5cmd() {
	if stamped s5cmd "$S5CMD_VERSION"; then
		echo "  s5cmd: cached ($S5CMD_VERSION)"
		return
	fi
	local tmp t0=$SECONDS
	tmp=$(mktemp -d)
	(
		cd "$tmp"
		go mod init s5cmdbuild >/dev/null 2>&1
		go get -tool "github.com/peak/s5cmd/v2@$S5CMD_VERSION" >/dev/null
		go build -ldflags='-s -w' -o "$BIN/s5cmd" github.com/peak/s5cmd/v2
	)
	rm -rf "$tmp"
	printf '%s\n' "$S5CMD_VERSION" >"$BIN/.s5cmd.version"
	echo "  s5cmd: built $S5CMD_VERSION in $((SECONDS - t0)) s"
}

install_rclone() {
	if stamped rclone "$RCLONE_VERSION"; then
		echo "  rclone: cached ($RCLONE_VERSION)"
		return
	fi
	local t0=$SECONDS
	GOBIN=$BIN go install -ldflags='-s -w' "github.com/rclone/rclone@$RCLONE_VERSION"
	printf '%s\n' "$RCLONE_VERSION" >"$BIN/.rclone.version"
	echo "  rclone: built $RCLONE_VERSION in $((SECONDS - t0)) s"
}

mkdir -p "$BIN"
case ${1:-all} in
all) install_s5cmd; install_rclone ;;
s5cmd) install_s5cmd ;;
rclone) install_rclone ;;
bin) echo "$BIN" ;;
*) echo "usage: $0 [all|s5cmd|rclone|bin]" >&2; exit 2 ;;
esac
