#!/usr/bin/env bash
# Object-store download benchmark: this tool against s5cmd, rclone (defaults
# and tuned) and mc, downloading from a MinIO on loopback.
#
#   bench/store/run.sh                 RUNS=3 by default; prints a Markdown table
#   RUNS=5 WORKLOADS="small big" bench/store/run.sh
#
# Workloads: 10,000 × 16 KiB objects (small), 1 × 2 GiB (big), 100 × 20 MiB
# (medium), and a re-run of small with nothing changed (rerun; each tool first
# fills its own destination, untimed). Runs alternate between the tools, the
# order rotating every round. Destinations are on a loop-mounted journaled
# ext4 (as root), MinIO's data on a tmpfs; both are removed at the end. Wall
# time and peak RSS come from GNU time.
#
# A peer's name followed by +sync (TOOLSET="initializer rclone rclone+sync")
# runs that peer and then a syncfs of the destination, timed together: the
# same durable result this tool reports. Those runs get their own ratio and
# are not counted as the fastest peer.
set -euo pipefail
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
WORK=${BENCH_WORK:-/tmp/initializer-bench-store}
RUNS=${RUNS:-3}
WORKLOADS=${WORKLOADS:-small big medium rerun}
TOOLSET=${TOOLSET:-initializer s5cmd rclone rclone-tuned mc}
MNT=$WORK/mnt
IMG=$WORK/ext4.img
DATA=$WORK/minio-data
RESULTS=$WORK/results.tsv
export BENCH_LOG=$WORK/tools.log

say() { printf '%s\n' "$*" >&2; }
die() {
	say "bench/store: $*"
	exit 1
}
[[ $(id -u) == 0 ]] || die "run as root (it mounts a loop file system)"
[[ -x /usr/bin/time ]] || die "GNU time (/usr/bin/time) is needed: apt-get install time"
mkdir -p "$WORK" "$DATA"
: >"$BENCH_LOG"

say "installing the servers and the reference tools (cached)"
bash "$ROOT/integration/servers.sh" install >&2
TB=$(bash "$ROOT/bench/tools.sh")
(cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$WORK/initializer" ./cmd/initializer)

MINIO_PID=
cleanup() {
	[[ -n $MINIO_PID ]] && kill "$MINIO_PID" 2>/dev/null && wait "$MINIO_PID" 2>/dev/null
	mountpoint -q "$DATA" && umount "$DATA"
	bench_fs_umount "$IMG" "$MNT"
	bench_release_memory
}
trap cleanup EXIT

# ------------------------------------------------------------ MinIO on tmpfs
mountpoint -q "$DATA" || mount -t tmpfs -o size=6g tmpfs "$DATA"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
EP=http://127.0.0.1:$PORT
export AWS_ACCESS_KEY_ID=benchadmin AWS_SECRET_ACCESS_KEY=benchsecret AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
HOME=$DATA MINIO_ROOT_USER=$AWS_ACCESS_KEY_ID MINIO_ROOT_PASSWORD=$AWS_SECRET_ACCESS_KEY MINIO_BROWSER=off MINIO_UPDATE=off \
	"$TB/minio" server "$DATA/store" --address "127.0.0.1:$PORT" --certs-dir "$DATA/certs" --quiet >"$WORK/minio.log" 2>&1 &
MINIO_PID=$!
for _ in $(seq 300); do curl -sf --noproxy '*' "$EP/minio/health/ready" >/dev/null && break; sleep 0.1; done
curl -sf --noproxy '*' "$EP/minio/health/ready" >/dev/null || die "MinIO did not start: $(tail "$WORK/minio.log")"

# ------------------------------------------------------------ seed
export MC_CONFIG_DIR=$WORK/mc MC_HOST_bench="http://$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY@127.0.0.1:$PORT"
SEED=$WORK/seed
if [[ ! -f $SEED/.done ]]; then
	say "generating the data set (10,000 × 16 KiB, 1 × 2 GiB, 100 × 20 MiB)"
	rm -rf "$SEED"
	python3 - "$SEED" <<'PY'
import os, sys
root = sys.argv[1]
def write(path, size):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 8 << 20)
            f.write(os.urandom(n))
            left -= n
for i in range(10000):
    write(f"{root}/small/d{i % 100:02d}/f{i:05d}.bin", 16 << 10)
write(f"{root}/big/blob.bin", 2 << 30)
for i in range(100):
    write(f"{root}/medium/m{i:03d}.bin", 20 << 20)
PY
	touch "$SEED/.done"
fi
say "seeding MinIO"
"$TB/mc" mb -q bench/bench >/dev/null
for w in small big medium; do "$TB/mc" cp -q --recursive "$SEED/$w/" "bench/bench/$w/" >/dev/null; done

bench_fs_mount "$IMG" "$MNT" 6
cat >"$WORK/catalog.yaml" <<YAML
connections:
  - {name: small, kind: s3, schema: {bucket: "s3://bench/small"}}
  - {name: big, kind: s3, schema: {bucket: "s3://bench/big"}}
  - {name: medium, kind: s3, schema: {bucket: "s3://bench/medium"}}
YAML
export AWS_ENDPOINT_URL=$EP
export RCLONE_S3_PROVIDER=Minio RCLONE_S3_ENDPOINT=$EP RCLONE_S3_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID RCLONE_S3_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY RCLONE_S3_REGION=$AWS_REGION

# copy TOOL PREFIX DST: one full download.
copy() {
	local tool=$1 prefix=$2 dst=$3
	case $tool in
	*+sync) copy "${tool%+sync}" "$prefix" "$dst" && sync -f "$dst" ;;
	initializer) env ${INIT_ENV:-} "$WORK/initializer" --catalog "$WORK/catalog.yaml" --connection "$prefix" --path "$dst" --log-level warn ${INIT_FLAGS:-} ;;
	s5cmd) "$TB/s5cmd" --endpoint-url "$EP" cp "s3://bench/$prefix/*" "$dst/" ;;
	rclone) env -u AWS_CA_BUNDLE "$TB/rclone" copy ":s3:bench/$prefix" "$dst" ;;
	rclone-tuned) env -u AWS_CA_BUNDLE "$TB/rclone" copy --transfers 64 --checkers 64 --multi-thread-streams 16 ":s3:bench/$prefix" "$dst" ;;
	mc) "$TB/mc" cp -q --recursive "bench/bench/$prefix/" "$dst/" ;;
	esac
}

# resync TOOL PREFIX DST: the tool's way of bringing an existing copy up to date.
resync() {
	local tool=$1 prefix=$2 dst=$3
	case $tool in
	*+sync) resync "${tool%+sync}" "$prefix" "$dst" && sync -f "$dst" ;;
	s5cmd) "$TB/s5cmd" --endpoint-url "$EP" sync "s3://bench/$prefix/*" "$dst/" ;;
	mc) "$TB/mc" mirror -q "bench/bench/$prefix" "$dst" ;;
	*) copy "$@" ;;
	esac
}
export -f copy resync
export WORK TB EP
bench_hold_memory

: >"$RESULTS"
tools=($TOOLSET)
for w in $WORKLOADS; do
	prefix=$w
	[[ $w == rerun ]] && prefix=small
	for ((run = 0; run < RUNS; run++)); do
		for ((i = 0; i < ${#tools[@]}; i++)); do
			tool=${tools[$(((i + run) % ${#tools[@]}))]}
			[[ $w == big && ${tool%+sync} == rclone-tuned ]] && continue
			dst=$MNT/${tool/+/-}
			out=$(mktemp)
			if [[ $w == rerun ]]; then
				if [[ ! -d $dst/.filled ]]; then
					rm -rf "$dst"
					mkdir -p "$dst"
					copy "$tool" small "$dst" >/dev/null 2>>"$BENCH_LOG"
					mkdir -p "$dst/.filled"
				fi
				sync
				s0=$(bench_cpu_ticks "$MINIO_PID")
				bench_time "$out" bash -c 'resync "$@"' _ "$tool" "$prefix" "$dst"
			else
				rm -rf "$dst"
				mkdir -p "$dst"
				sync
				s0=$(bench_cpu_ticks "$MINIO_PID")
				bench_time "$out" bash -c 'copy "$@"' _ "$tool" "$prefix" "$dst"
				n=$(find "$dst" -type f | wc -l)
				printf '%s\t%s\tfiles=%s\n' "$w" "$tool" "$n" >>"$WORK/counts.log"
				rm -rf "$dst" # one download on the file system at a time: it stays small
			fi
			scpu=$(bench_cpu_since "$MINIO_PID" "$s0")
			read -r wall rss rc <"$out"
			rm -f "$out"
			[[ $rc == 0 ]] || say "$tool on $w exited $rc (see $BENCH_LOG)"
			printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$w" "$tool" "$wall" "$rss" "$rc" "$scpu" >>"$RESULTS"
			say "$w $tool run $((run + 1)): ${wall}s, $((rss / 1024)) MiB; MinIO ${scpu}s CPU"
		done
	done
	[[ $w == rerun ]] || rm -rf "${MNT:?}"/*
done

# The destination's own floor for the 2 GiB object: the same bytes written
# durably with no download at all (4 writers with O_DIRECT, then syncfs).
# This tool's time for the object cannot go below it; the peers, which do
# not wait for the disk, can.
FLOOR=-
if [[ " $WORKLOADS " == *" big "* ]]; then
	floors=()
	for ((run = 0; run < RUNS; run++)); do
		rm -f "$MNT/floor"
		sync
		t0=$(date +%s.%N)
		pids=()
		for i in 0 1 2 3; do
			dd if=/dev/zero of="$MNT/floor" bs=64M count=8 seek=$((i * 8)) oflag=direct conv=notrunc status=none &
			pids+=($!)
		done
		wait "${pids[@]}"
		sync -f "$MNT/floor"
		floors+=("$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.2f", b - a}')")
	done
	rm -f "$MNT/floor"
	FLOOR=$(printf '%s\n' "${floors[@]}" | median)
	say "big: writing 2 GiB durably without downloading: ${floors[*]} s"
fi

# ------------------------------------------------------------ report
{
	printf '\nObject-store download, MinIO on loopback (data on tmpfs), destination on a journaled ext4; median of %s runs, wall seconds (peak RSS MiB); ratio = initializer / fastest peer; a peer+sync is the peer then a syncfs of the destination, timed together, and has its own ratio.\n\n' "$RUNS"
	durable=
	[[ " ${tools[*]} " == *"+sync "* ]] && durable=1
	printf '| workload |'
	for t in "${tools[@]}"; do printf ' %s |' "$t"; done
	printf ' ratio |'
	[[ -n $durable ]] && printf ' ratio to +sync |'
	printf '\n|---|'
	for _ in "${tools[@]}"; do printf -- '---|'; done
	printf -- '---|'
	[[ -n $durable ]] && printf -- '---|'
	printf '\n'
	for w in $WORKLOADS; do
		printf '| %s |' "$w"
		best=
		bestsync=
		for t in "${tools[@]}"; do
			m=$(awk -F'\t' -v w="$w" -v t="$t" '$1==w && $2==t && $5==0 {print $3}' "$RESULTS" | median)
			r=$(awk -F'\t' -v w="$w" -v t="$t" '$1==w && $2==t {print $4}' "$RESULTS" | sort -n | tail -1)
			if [[ $m == - ]]; then printf ' – |'; else printf ' %s (%s) |' "$m" "$(((${r:-0}) / 1024))"; fi
			if [[ $t == *+sync && $m != - ]]; then
				if [[ -z $bestsync ]] || awk -v a="$m" -v b="$bestsync" 'BEGIN{exit !(a<b)}'; then bestsync=$m; fi
			elif [[ $t != initializer && $m != - ]]; then
				if [[ -z $best ]] || awk -v a="$m" -v b="$best" 'BEGIN{exit !(a<b)}'; then best=$m; fi
			fi
			[[ $t == initializer ]] && mine=$m
		done
		if [[ -n $best && $mine != - ]]; then printf ' %.2f |' "$(awk -v a="$mine" -v b="$best" 'BEGIN{print a/b}')"; else printf ' – |'; fi
		if [[ -n $durable ]]; then
			if [[ -n $bestsync && $mine != - ]]; then printf ' %.2f |' "$(awk -v a="$mine" -v b="$bestsync" 'BEGIN{print a/b}')"; else printf ' – |'; fi
		fi
		printf '\n'
	done
	if [[ $FLOOR != - ]]; then
		printf '\nThe destination'"'"'s floor for `big`: writing the 2 GiB durably with no download (4 writers with O_DIRECT, then syncfs) takes %s s (median of %s).\n' "$FLOOR" "$RUNS"
	fi
	printf '\nMinIO'"'"'s CPU seconds during each download (median), the server side of the same runs:\n\n| workload |'
	for t in "${tools[@]}"; do printf ' %s |' "$t"; done
	printf '\n|---|'
	for _ in "${tools[@]}"; do printf -- '---|'; done
	printf '\n'
	for w in $WORKLOADS; do
		printf '| %s |' "$w"
		for t in "${tools[@]}"; do
			m=$(awk -F'\t' -v w="$w" -v t="$t" '$1==w && $2==t && $5==0 {print $6}' "$RESULTS" | median)
			if [[ $m == - ]]; then printf ' – |'; else printf ' %s |' "$m"; fi
		done
		printf '\n'
	done
} | tee "$WORK/report.md"
