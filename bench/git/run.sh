#!/usr/bin/env bash
# Git clone benchmark: plain `git clone` against the initializer with its git
# CLI engine and with go-git, at --depth 1 and in full, over git:// and smart
# HTTP, on a generated repository (5,001 commits, 10,004 files, 6 × 4 MiB
# binary blobs, 300 tags; made once and cached).
#
#   bench/git/run.sh            RUNS=5 by default; prints a Markdown table
#   RUNS=3 TRANSPORTS=daemon bench/git/run.sh
#
# Runs alternate between the tools (the order rotates every round) so that
# drifts of the machine hit them alike. Wall time, CPU time (user + system,
# the whole process tree) and peak RSS come from GNU time (%e, %U + %S, %M:
# the largest process of the tree). On a shared, loaded machine the CPU time
# is the steadier figure. Clones land on a
# loop-mounted journaled ext4 (as root): the machines' root file system has
# no journal and makes file creation after deletions slow and erratic. It is
# unmounted and removed at the end. Work files: $BENCH_WORK
# (default /tmp/initializer-bench-git).
set -euo pipefail
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=${BENCH_WORK:-/tmp/initializer-bench-git}
RUNS=${RUNS:-5}
TRANSPORTS=${TRANSPORTS:-daemon http}
MODES=${MODES:-depth1 full}
TOOLS=${TOOLS:-git cli go-git}
BIN=$WORK/bin
SRV=$WORK/srv
MNT=$WORK/mnt
IMG=$WORK/ext4.img
RESULTS=$WORK/results.tsv

say() { printf '%s\n' "$*" >&2; }
die() {
	say "bench/git: $*"
	exit 1
}

[[ -x /usr/bin/time ]] || die "GNU time (/usr/bin/time) is needed: apt-get install time"
command -v git >/dev/null || die "git is needed"
mkdir -p "$BIN" "$SRV" "$MNT"

# ------------------------------------------------------------------ build
say "building the initializer and the smart HTTP server"
(cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$BIN/initializer" ./cmd/initializer)
(cd "$ROOT" && go build -o "$BIN/githttp" ./integration/servers/githttp)

# ------------------------------------------------------------------ repository
stamp=$(cat "$ROOT/bench/git/genrepo/main.go" | git hash-object --stdin)
if [[ ! -f $SRV/bench.git/.stamp || $(<"$SRV/bench.git/.stamp") != "$stamp" ]]; then
	say "generating the benchmark repository (about 10 s)"
	rm -rf "$SRV/bench.git"
	git init -q --bare -b main "$SRV/bench.git"
	(cd "$ROOT" && go run ./bench/git/genrepo) | git -C "$SRV/bench.git" fast-import --quiet
	git -C "$SRV/bench.git" repack -q -a -d -f
	git -C "$SRV/bench.git" config uploadpack.allowFilter true
	printf '%s\n' "$stamp" >"$SRV/bench.git/.stamp"
fi
REPO_DESC="$(git -C "$SRV/bench.git" rev-list --count main) commits, $(git -C "$SRV/bench.git" ls-tree -r main | wc -l) files, $(git -C "$SRV/bench.git" tag | wc -l) tags, $(git -C "$SRV/bench.git" count-objects -vH | awk '/size-pack/ {print $2 " " $3}') pack"
say "repository: $REPO_DESC"

# ------------------------------------------------------------------ servers
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 12000))
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || {
			printf '%s' "$p"
			return
		}
	done
}
PIDS=()
LOOPDEV=
cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
	if mountpoint -q "$MNT"; then umount "$MNT" || umount -l "$MNT" || true; fi
	[[ -n $LOOPDEV ]] && losetup -d "$LOOPDEV" 2>/dev/null || true
	rm -f "$IMG"
}
trap cleanup EXIT

DAEMON_PORT=$(free_port)
"$(git --exec-path)/git-daemon" --reuseaddr --listen=127.0.0.1 --port="$DAEMON_PORT" \
	--base-path="$SRV" --export-all "$SRV" >"$WORK/daemon.log" 2>&1 &
PIDS+=($!)
HTTP_PORT=$(free_port)
"$BIN/githttp" -addr "127.0.0.1:$HTTP_PORT" -root "$SRV" >"$WORK/githttp.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
	git ls-remote "git://127.0.0.1:$DAEMON_PORT/bench.git" >/dev/null 2>&1 &&
		git ls-remote "http://127.0.0.1:$HTTP_PORT/bench.git" >/dev/null 2>&1 && break
	sleep 0.1
done
git ls-remote "http://127.0.0.1:$HTTP_PORT/bench.git" >/dev/null || die "the git servers did not start"

# ------------------------------------------------------------------ file system
FS="loop-mounted journaled ext4"
if [[ $(id -u) == 0 ]] && command -v losetup >/dev/null && command -v mkfs.ext4 >/dev/null; then
	rm -f "$IMG"
	truncate -s 8G "$IMG"
	mkfs.ext4 -q -F "$IMG"
	LOOPDEV=$(losetup --find --show "$IMG")
	mount "$LOOPDEV" "$MNT"
else
	FS="$(df -T "$WORK" | awk 'NR==2 {print $2}') under $WORK (not root: no loop mount; figures are noisier)"
	say "warning: $FS"
fi
DEST=$MNT/dest

# ------------------------------------------------------------------ runs
url_of() {
	case $1 in
	daemon) printf 'git://127.0.0.1:%s/bench.git' "$DAEMON_PORT" ;;
	http) printf 'http://127.0.0.1:%s/bench.git' "$HTTP_PORT" ;;
	esac
}

# one TOOL MODE URL: runs one clone and prints "seconds rss_kib cpu_seconds".
one() {
	local tool=$1 mode=$2 url=$3 out=$WORK/time.out
	local depth=() flags=
	if [[ $mode == depth1 ]]; then
		depth=(--depth 1)
		flags='--depth 1'
	fi
	rm -rf "$DEST"
	sync
	case $tool in
	git)
		/usr/bin/time -f '%e %M %U %S' -o "$out" git clone -q "${depth[@]}" "$url" "$DEST"
		;;
	cli | go-git)
		/usr/bin/time -f '%e %M %U %S' -o "$out" env \
			POLYAXON_CONNECTIONS_CATALOG="{\"connections\":[{\"name\":\"bench\",\"kind\":\"git\",\"schema\":{\"url\":\"$url\"}}]}" \
			"$BIN/initializer" --connection bench --path "$DEST" --git-engine "$tool" --flags "$flags" --log-level warn
		;;
	esac
	[[ $(git -C "$DEST" rev-parse HEAD) == "$HEAD" ]] || die "$tool $mode: wrong HEAD"
	tail -n 1 "$out" | awk '{printf "%s %s %.2f\n", $1, $2, $3 + $4}'
}

HEAD=$(git -C "$SRV/bench.git" rev-parse main)
: >"$RESULTS"
read -r -a tools <<<"$TOOLS"
for transport in $TRANSPORTS; do
	url=$(url_of "$transport")
	for mode in $MODES; do
		one git "$mode" "$url" >/dev/null # warm the server's caches
		for ((run = 0; run < RUNS; run++)); do
			n=${#tools[@]}
			for ((k = 0; k < n; k++)); do
				tool=${tools[$(((k + run) % n))]}
				read -r secs rss cpu < <(one "$tool" "$mode" "$url")
				printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$transport" "$mode" "$tool" "$secs" "$rss" "$cpu" >>"$RESULTS"
				say "$transport $mode run $((run + 1))/$RUNS $tool: $secs s, CPU $cpu s, $((rss / 1024)) MiB"
			done
		done
	done
done
rm -rf "$DEST"

# ------------------------------------------------------------------ report
median() { sort -n | awk '{a[NR] = $1} END {if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
# col TRANSPORT MODE TOOL N: the median of column N.
col() { awk -F'\t' -v t="$1" -v m="$2" -v x="$3" -v n="$4" '$1 == t && $2 == m && $3 == x {print $n}' "$RESULTS" | median; }
printf '\nRepository: %s. Destination: %s. %s runs each, alternating; medians. Load average at the end: %s.\n\n' \
	"$REPO_DESC" "$FS" "$RUNS" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '| transport | clone | tool | wall s | CPU s | peak RSS MiB | wall vs git | CPU vs git | RSS vs git |\n'
printf '| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n'
for transport in $TRANSPORTS; do
	for mode in $MODES; do
		gs=$(col "$transport" "$mode" git 4)
		gr=$(col "$transport" "$mode" git 5)
		gc=$(col "$transport" "$mode" git 6)
		for tool in "${tools[@]}"; do
			s=$(col "$transport" "$mode" "$tool" 4)
			r=$(col "$transport" "$mode" "$tool" 5)
			c=$(col "$transport" "$mode" "$tool" 6)
			case $tool in
			git) name='git clone' ;;
			cli) name='initializer, cli engine' ;;
			*) name="initializer, $tool" ;;
			esac
			awk -v t="$transport" -v m="${mode/depth1/--depth 1}" -v n="$name" -v s="$s" -v r="$r" -v c="$c" -v gs="$gs" -v gr="$gr" -v gc="$gc" \
				'BEGIN {printf "| %s | %s | %s | %.2f | %.2f | %.0f | %.2f× | %.2f× | %.2f× |\n", t, m, n, s, c, r / 1024, s / gs, c / gc, r / gr}'
		done
	done
done
