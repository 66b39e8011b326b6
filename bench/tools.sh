#!/usr/bin/env bash
# Installs the reference tools the benchmarks compare against, at pinned
# versions, into the same cache as the test servers (reused when present):
#
#   bench/tools.sh            s5cmd, rclone and mc
#   bench/tools.sh s5cmd      just one
#
# s5cmd cannot be `go install`ed (the module proxy refuses its version list),
# so it is built from a throwaway module.
set -euo pipefail
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false

TOOLS=${INITIALIZER_TOOLS:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/initializer-test-tools}
BIN=$TOOLS/bin
S5CMD_VERSION=v2.3.0
RCLONE_MODULE=github.com/rclone/rclone@v1.76.0
MC_MODULE=github.com/minio/mc@v0.0.0-20250313080218-cf909e1063a9
mkdir -p "$BIN"

say() { printf '%s\n' "$*" >&2; }

stamped() { [[ -x $BIN/$1 && -f $BIN/.$1.version && $(<"$BIN/.$1.version") == "$2" ]]; }

install_s5cmd() {
	local want="github.com/peak/s5cmd/v2@$S5CMD_VERSION"
	stamped s5cmd "$want" && return
	say "installing s5cmd $S5CMD_VERSION (throwaway module)"
	local dir
	dir=$(mktemp -d)
	(cd "$dir" && go mod init s5cmdbuild >/dev/null 2>&1 &&
		go get -tool "$want" >/dev/null &&
		go build -trimpath -ldflags '-s -w' -o "$BIN/s5cmd" github.com/peak/s5cmd/v2)
	rm -rf "$dir"
	printf '%s\n' "$want" >"$BIN/.s5cmd.version"
}

install_go() {
	local name=$1 module=$2
	stamped "$name" "$module" && return
	say "installing $name ($module)"
	GOBIN=$BIN go install -trimpath -ldflags '-s -w' "$module"
	printf '%s\n' "$module" >"$BIN/.$name.version"
}

for tool in "${@:-s5cmd rclone mc}"; do
	for t in $tool; do
		case $t in
		s5cmd) install_s5cmd ;;
		rclone) install_go rclone "$RCLONE_MODULE" ;;
		mc) install_go mc "$MC_MODULE" ;;
		*) say "unknown tool $t" && exit 2 ;;
		esac
	done
done
printf '%s\n' "$BIN"
