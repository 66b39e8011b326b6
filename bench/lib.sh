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
