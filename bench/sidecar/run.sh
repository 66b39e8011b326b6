#!/usr/bin/env bash
# Sidecar benchmark (issue 6): uploads to a private MinIO of
#   - 10,000 files of 16 KiB, and
#   - 1 file of 2 GiB,
# by `initializer sidecar` (one run: start, flush everything, exit), `s5cmd cp`
# and `rclone copy`, alternating the order each repetition; then the cost of
# one idle cycle of the sidecar over 100,000 unchanged files (CPU time and
# wall), and its peak RSS.
#
# The data and MinIO's storage live on a loop-mounted journaled ext4 made
# for the run and torn down after it (the machines' root file system makes
# file creation erratic, see shared/reference/test-servers.md), so this
# needs root. Results go to stdout and to $OUT (default /tmp/bench-sidecar.md).
#
#   bench/sidecar/run.sh               REPS=3 by default
#   REPS=1 SMALL=2000 BIG_MIB=256 bench/sidecar/run.sh   a quick look
set -euo pipefail
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"
REPS=${REPS:-3}
SMALL=${SMALL:-10000}
SMALL_SIZE=${SMALL_SIZE:-16384}
BIG_MIB=${BIG_MIB:-2048}
IDLE_FILES=${IDLE_FILES:-100000}
IDLE_SECONDS=${IDLE_SECONDS:-20}
WORKLOADS=${WORKLOADS-small big}   # upload workloads; IDLE=0 skips the idle measurement
IDLE=${IDLE:-1}
TOOLS_RUN=${TOOLS_RUN:-initializer s5cmd rclone}
OUT=${OUT:-/tmp/bench-sidecar.md}
WORK=${BENCH_WORK:-/tmp/bench-sidecar}

[[ $(id -u) == 0 ]] || { echo "bench/sidecar: needs root for the loop-mounted ext4" >&2; exit 1; }
for t in losetup mkfs.ext4 mount curl; do
	command -v "$t" >/dev/null || { echo "bench/sidecar: $t is missing" >&2; exit 1; }
done
[[ -x /usr/bin/time ]] || apt-get install -y -qq --no-install-recommends time >/dev/null

echo "== tools"
bash "$REPO/integration/servers.sh" install >/dev/null
BIN=$(bash "$REPO/bench/tools.sh" s5cmd rclone | tail -n1)

cleanup() {
	set +e
	[[ -n ${SIDECAR_PID:-} ]] && kill "$SIDECAR_PID" 2>/dev/null && wait "$SIDECAR_PID" 2>/dev/null
	[[ -n ${MINIO_PID:-} ]] && kill "$MINIO_PID" 2>/dev/null && wait "$MINIO_PID" 2>/dev/null
	if mountpoint -q "$WORK/minio-tmpfs"; then umount "$WORK/minio-tmpfs"; fi
	if mountpoint -q "$WORK/mnt"; then umount "$WORK/mnt"; fi
	[[ -n ${LOOP:-} ]] && losetup -d "$LOOP"
	rm -rf "$WORK"
	bench_release_memory
}
trap cleanup EXIT
rm -rf "$WORK"
mkdir -p "$WORK/mnt" "$WORK/bin"

echo "== build"
(cd "$REPO" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$WORK/bin/initializer" ./cmd/initializer &&
	go build -o "$WORK/bin/benchutil" ./bench/sidecar/benchutil)
INIT=$WORK/bin/initializer
UTIL=$WORK/bin/benchutil

echo "== loop-mounted ext4"
# Journaled, initialised at once, its image written once and accessed by the
# loop device with direct I/O, as for the downloads (bench/lib.sh).
bench_fs_mount "$WORK/img" "$WORK/mnt" 32
LOOP=$BENCH_LOOP
M=$WORK/mnt

free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 12000))
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
	done
}

echo "== MinIO"
PORT=$(free_port)
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-$RANDOM$RANDOM AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
export S3_ENDPOINT=http://127.0.0.1:$PORT
MINIO_DATA=$M/minio
if [[ ${MINIO_TMPFS:-0} == 1 ]]; then
	# For comparison only: MinIO's storage in memory, where its writes cost no disk.
	MINIO_DATA=$WORK/minio-tmpfs
	mkdir -p "$MINIO_DATA"
	mount -t tmpfs -o size=12g tmpfs "$MINIO_DATA"
fi
mkdir -p "$MINIO_DATA" "$M/minio-home"
HOME=$M/minio-home MINIO_API_DELETE_CLEANUP_INTERVAL=24h MINIO_ROOT_USER=$AWS_ACCESS_KEY_ID MINIO_ROOT_PASSWORD=$AWS_SECRET_ACCESS_KEY MINIO_BROWSER=off MINIO_UPDATE=off \
	"$BIN/minio" server "$MINIO_DATA" --address "127.0.0.1:$PORT" --certs-dir "$M/minio-home/certs" --quiet >"$WORK/minio.log" 2>&1 &
MINIO_PID=$!
for _ in $(seq 300); do curl -sf "$S3_ENDPOINT/minio/health/ready" && break; sleep 0.1; done
"$UTIL" mb bench

echo "== data"
"$UTIL" files "$M/small" "$SMALL" "$SMALL_SIZE"
mkdir -p "$M/big"
"$UTIL" file "$M/big/model.bin" $((BIG_MIB << 20))
sync
bench_hold_memory

mkdir -p "$WORK/secret"
printf '%s' "$AWS_ACCESS_KEY_ID" >"$WORK/secret/AWS_ACCESS_KEY_ID"
printf '%s' "$AWS_SECRET_ACCESS_KEY" >"$WORK/secret/AWS_SECRET_ACCESS_KEY"
printf '%s' "$AWS_REGION" >"$WORK/secret/AWS_REGION"
printf '%s' "$S3_ENDPOINT" >"$WORK/secret/AWS_ENDPOINT_URL"
cat >"$WORK/catalog.yaml" <<EOF
connections:
  - name: bench
    kind: s3
    schema: {bucket: "s3://bench"}
    secret: {name: bench, mountPath: $WORK/secret}
  - name: local
    kind: host_path
    schema: {hostPath: $M/store, mountPath: $M/store}
EOF
touch "$WORK/ended"
RCLONE_REMOTE=":s3,provider=Minio,endpoint='$S3_ENDPOINT',access_key_id=$AWS_ACCESS_KEY_ID,secret_access_key=$AWS_SECRET_ACCESS_KEY,region=$AWS_REGION:bench"

# run_tool TOOL WORKLOAD PREFIX: uploads the workload's folder; prints "wall user sys maxrss_kib".
run_tool() {
	local tool=$1 wl=$2 prefix=$3 src=$M/$2
	local tf=$WORK/time.txt
	case $tool in
	initializer | initializer:*)
		# initializer:--flag=value,--other=value runs a variant with extra flags.
		local variant=()
		[[ $tool == initializer:* ]] && IFS=, read -r -a variant <<<"${tool#initializer:}"
		env ${SIDECAR_ENV:-} /usr/bin/time -f '%e %U %S %M' -o "$tf" "$INIT" sidecar --catalog "$WORK/catalog.yaml" -c bench \
			--path "$src" --prefix "$prefix" --state none --until-file "$WORK/ended" --grace 60m \
			--log-level warn ${SIDECAR_FLAGS:-} "${variant[@]}" 2>"$WORK/tool.log"
		;;
	s5cmd)
		/usr/bin/time -f '%e %U %S %M' -o "$tf" "$BIN/s5cmd" --endpoint-url "$S3_ENDPOINT" \
			cp "$src/*" "s3://bench/$prefix/" >/dev/null 2>"$WORK/tool.log"
		;;
	rclone)
		local extra=()
		[[ $wl == small ]] && extra=(--transfers 64)
		env -u AWS_CA_BUNDLE /usr/bin/time -f '%e %U %S %M' -o "$tf" "$BIN/rclone" copy "$src" "$RCLONE_REMOTE/$prefix" \
			"${extra[@]}" --config /dev/null 2>"$WORK/tool.log"
		;;
	esac || { echo "$tool failed:" >&2; tail -20 "$WORK/tool.log" >&2; exit 1; }
	cat "$tf"
}

# quiesce: empties MinIO's trash (it moves deleted objects there and, left
# to itself, removes them every few minutes in the background, in the middle
# of whichever run is going on then; its interval is set to a day below)
# and writes back what is dirty, so that no run shares the disk with the
# clean-up of the run before it.
quiesce() {
	find "$MINIO_DATA/.minio.sys/tmp/.trash" -mindepth 1 -delete 2>/dev/null || true
	sync
}

declare -A WALL USER SYS RSS
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

for wl in $WORKLOADS; do
	case $wl in
	small) want="$SMALL $((SMALL * SMALL_SIZE))" ;;
	big) want="1 $((BIG_MIB << 20))" ;;
	esac
	# One untimed upload first, so no tool pays for the fresh file system.
	run_tool s5cmd "$wl" "warmup-$wl" >/dev/null
	"$UTIL" rm bench "warmup-$wl/"
	quiesce
	read -r -a tools <<<"$TOOLS_RUN"
	nt=${#tools[@]}
	for rep in $(seq "$REPS"); do
		for i in $(seq 0 $((nt - 1))); do
			tool=${tools[$(((i + rep - 1) % nt))]}
			prefix=$wl-$rep-$i
			s0=$(bench_cpu_ticks "$MINIO_PID")
			d0=$(bench_disk_stats "$LOOP")
			read -r wall user sys rss < <(run_tool "$tool" "$wl" "$prefix")
			scpu=$(bench_cpu_since "$MINIO_PID" "$s0")
			disk=$(bench_disk_since "$LOOP" "$d0")
			got=$("$UTIL" count bench "$prefix/")
			[[ $got == "$want" ]] || { echo "$tool $wl: the bucket holds '$got', want '$want'" >&2; exit 1; }
			"$UTIL" rm bench "$prefix/"
			quiesce
			printf '%-8s %-12s rep %d: %6.2f s wall, %6.2f s user, %5.2f s sys, %6d KiB max RSS; MinIO %5.2f s CPU; disk %s\n' "$wl" "$tool" "$rep" "$wall" "$user" "$sys" "$rss" "$scpu" "$disk"
			WALL[$wl.$tool]+="$wall "
			USER[$wl.$tool]+="$user "
			SYS[$wl.$tool]+="$sys "
			RSS[$wl.$tool]+="$rss "
		done
	done
done

if [[ $IDLE == 0 ]]; then
	for wl in $WORKLOADS; do for tool in "${tools[@]}"; do echo "$wl $tool: ${WALL[$wl.$tool]:-}(user ${USER[$wl.$tool]:-})"; done; done
	exit 0
fi
echo "== idle cycles over $IDLE_FILES unchanged files"
"$UTIL" files "$M/idle" "$IDLE_FILES" 1024
mkdir -p "$M/store"
MPORT=$(free_port)
# shellcheck disable=SC2086
env ${SIDECAR_ENV:-} "$INIT" sidecar --catalog "$WORK/catalog.yaml" -c local --path "$M/idle" --prefix run --interval 1s \
	--metrics-addr "127.0.0.1:$MPORT" --log-level warn ${SIDECAR_FLAGS:-} 2>"$WORK/idle.log" &
SIDECAR_PID=$!
metric() { curl -s "http://127.0.0.1:$MPORT/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
t0=$SECONDS
until [[ $(metric initializer_sidecar_pending_files 2>/dev/null) == 0 && $(metric initializer_sidecar_watched_files) == "$IDLE_FILES" ]]; do
	sleep 0.5
	((SECONDS - t0 < 1800)) || { echo "the initial upload did not finish" >&2; exit 1; }
done
first_upload=$((SECONDS - t0))
c_start=$(metric initializer_sidecar_cycles_total)
until [[ $(metric initializer_sidecar_cycles_total) -ge $((c_start + 2)) ]]; do sleep 0.2; done
c0=$(metric initializer_sidecar_cycles_total)
cpu0=$(bench_cpu_ticks "$SIDECAR_PID")
walls=()
for _ in $(seq "$IDLE_SECONDS"); do
	sleep 1
	walls+=("$(metric initializer_sidecar_cycle_duration_seconds)")
done
c1=$(metric initializer_sidecar_cycles_total)
cpu1=$(bench_cpu_ticks "$SIDECAR_PID")
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$SIDECAR_PID/status")
rss_idle=$(awk '/VmRSS/ {print $2}' "/proc/$SIDECAR_PID/status")
kill -TERM "$SIDECAR_PID"
wait "$SIDECAR_PID" || { echo "the idle sidecar failed" >&2; tail "$WORK/idle.log" >&2; exit 1; }
SIDECAR_PID=
hz=$(getconf CLK_TCK)
idle_cpu_ms=$(awk -v a="$cpu0" -v b="$cpu1" -v n=$((c1 - c0)) -v hz="$hz" 'BEGIN { printf "%.0f", (b - a) * 1000 / hz / n }')
idle_wall_ms=$(printf '%s\n' "${walls[@]}" | awk '{s += $1} END { printf "%.0f", s * 1000 / NR }')

{
	echo "### Sidecar: results ($(date -u +%F), $(nproc) cores, load average at the end $(cut -d' ' -f1-3 /proc/loadavg))"
	echo
	echo "Median of $REPS runs, wall seconds (user + sys CPU seconds; peak RSS):"
	echo
	echo "| workload | initializer sidecar | s5cmd cp | rclone copy | sidecar ÷ fastest peer |"
	echo "|---|---|---|---|---|"
	for wl in $WORKLOADS; do
		label="$SMALL × $((SMALL_SIZE / 1024)) KiB"
		[[ $wl == big ]] && label="1 × $BIG_MIB MiB"
		row="| $label |"
		for tool in initializer s5cmd rclone; do
			# shellcheck disable=SC2086
			w=$(median ${WALL[$wl.$tool]:-}); u=$(median ${USER[$wl.$tool]:-}); s=$(median ${SYS[$wl.$tool]:-}); r=$(median ${RSS[$wl.$tool]:-})
			row+=" $w s ($(awk -v u="$u" -v s="$s" 'BEGIN {printf "%.1f", u + s}') s CPU; $((r / 1024)) MiB) |"
			eval "M_$tool=$w"
		done
		# shellcheck disable=SC2154
		ratio=$(awk -v a="$M_initializer" -v b="$M_s5cmd" -v c="$M_rclone" 'BEGIN { f = (b < c ? b : c); printf "%.2f", a / f }')
		echo "$row $ratio× |"
	done
	echo
	echo "Idle cycle over $IDLE_FILES unchanged files (sidecar, $IDLE_SECONDS s of 1 s cycles after the first upload, which took ${first_upload} s to a host_path store): **${idle_cpu_ms} ms CPU and ${idle_wall_ms} ms wall per cycle**; RSS ${rss_idle} KiB while idle, peak ${hwm} KiB over the whole run."
	echo
	echo "All runs: $(for wl in $WORKLOADS; do for tool in initializer s5cmd rclone; do printf '%s/%s: %s; ' "$wl" "$tool" "${WALL[$wl.$tool]:-}"; done; done)"
} | tee "$OUT"
