# Shared by the benchmark scripts: a journaled ext4 for destinations, and
# timing of one command (wall seconds and peak RSS of its largest process).

# bench_fs_mount IMG MNT GIB: a loop-mounted journaled ext4 of GIB GiB at MNT
# (as root). The machines' root file system has no journal, which makes
# creating files after deleting others slow and erratic (see the reference
# notes). So that the file system behaves as one on a real volume:
# - the loop device does direct I/O on its image file (BENCH_LOOP_DIO=off for
#   a buffered one): data written back go to the disk once, rather than into
#   a second page cache (the image file's) and then through the root file
#   system's much slower write-back;
# - every block of the image is written once first (BENCH_IMG_PREFILL=off
#   for a sparse image): writes then land on blocks the root file system
#   has already allocated, not into holes it must allocate during the runs;
# - mkfs initialises the inode tables and the journal at once, not in the
#   background (ext4lazyinit) while the runs write.
bench_fs_mount() {
	local img=$1 mnt=$2 gib=$3
	bench_fs_umount "$img" "$mnt"
	mkdir -p "$mnt"
	if [[ ${BENCH_IMG_PREFILL:-on} == on ]]; then
		dd if=/dev/zero of="$img" bs=64M count=$((gib * 16)) oflag=direct status=none
	else
		truncate -s "${gib}G" "$img"
	fi
	mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$img"
	BENCH_LOOP=$(losetup --find --show --direct-io="${BENCH_LOOP_DIO:-on}" "$img")
	mount "$BENCH_LOOP" "$mnt"
}

bench_fs_umount() {
	local img=$1 mnt=$2
	if mountpoint -q "$mnt" 2>/dev/null; then
		umount "$mnt"
	fi
	local dev
	for dev in $(losetup -j "$img" 2>/dev/null | cut -d: -f1); do
		losetup -d "$dev"
	done
	rm -f "$img"
}

# bench_time OUT CMD...: runs CMD, appends "wall_seconds peak_rss_kib exit" to OUT.
bench_time() {
	local out=$1
	shift
	local tf
	tf=$(mktemp)
	local rc=0
	/usr/bin/time -o "$tf" -f '%e %M' "$@" >/dev/null 2>>"${BENCH_LOG:-/dev/null}" || rc=$?
	printf '%s %s\n' "$(tail -n1 "$tf")" "$rc" >>"$out"
	rm -f "$tf"
	return 0
}

# median of the numbers on stdin
median() { sort -g | awk '{a[NR]=$1} END { if (NR==0) print "-"; else if (NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2 }'; }

# bench_cpu_ticks PID: the CPU time (user + system) PID has used so far, in clock ticks.
bench_cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# bench_cpu_since PID TICKS: the CPU seconds PID has used since bench_cpu_ticks gave TICKS.
bench_cpu_since() { awk -v a="$2" -v b="$(bench_cpu_ticks "$1")" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", (b - a) / hz}'; }

# bench_disk_stats DEV: the write counters of block device DEV (/dev/loopN):
# writes completed, sectors written, flushes completed.
bench_disk_stats() { awk -v d="${1#/dev/}" '$3 == d {print $8, $10, $19}' /proc/diskstats; }

# bench_disk_since DEV STATS: what DEV wrote since bench_disk_stats gave STATS.
bench_disk_since() {
	awk -v d="${1#/dev/}" -v s="$2" '$3 == d { split(s, a, " "); printf "%d writes, %.0f MiB, %d flushes", $8 - a[1], ($10 - a[2]) / 2048, $19 - a[3] }' /proc/diskstats
}

# bench_hold_memory: keeps the memory that runs free inside this machine for
# the benchmark, and bench_release_memory (call it at exit) undoes it.
# Virtual machines with virtio-balloon free page reporting hand memory back
# to the host about 2 s after it is freed, in 2 MiB blocks; the next write
# to such a page costs a page fault in the host. A run that starts while a
# previous run's download (deleted after it) is being handed back pays that
# for every page it fills: a 2 GiB download took 2–3 s instead of 1.1 s,
# whichever tool ran, depending on its place in the rotation and on the
# pauses between runs rather than on the tool. Raising the reporting order
# above the allocator's largest stops the reporting; the pages already
# handed back are then touched once (a tmpfs filled and dropped), so the
# first run does not pay for them either. Without page reporting (a
# physical machine, most cloud VMs) or with BENCH_HOLD_MEMORY=off, this does
# nothing.
BENCH_REPORTING=/sys/module/page_reporting/parameters/page_reporting_order
BENCH_REPORTING_WAS=
bench_hold_memory() {
	[[ ${BENCH_HOLD_MEMORY:-on} == on && -w $BENCH_REPORTING ]] || return 0
	BENCH_REPORTING_WAS=$(cat "$BENCH_REPORTING")
	echo 11 >"$BENCH_REPORTING" # MAX_PAGE_ORDER is 10: no free block is ever reported
	local warm gib
	warm=$(mktemp -d)
	gib=$(awk '/MemAvailable/ {g = int($2 / 1048576) - 4; print (g > 8 ? 8 : (g < 0 ? 0 : g))}' /proc/meminfo)
	if ((gib > 0)) && mount -t tmpfs -o size="${gib}g" tmpfs "$warm"; then
		dd if=/dev/zero of="$warm/fill" bs=64M count=$((gib * 16)) status=none || true
		umount "$warm"
	fi
	rmdir "$warm"
	echo "bench: free page reporting to the host held off during the runs (order $BENCH_REPORTING_WAS → 11), $gib GiB of freed memory touched once" >&2
}
bench_release_memory() {
	[[ -n $BENCH_REPORTING_WAS ]] && echo "$BENCH_REPORTING_WAS" >"$BENCH_REPORTING"
	BENCH_REPORTING_WAS=
}
