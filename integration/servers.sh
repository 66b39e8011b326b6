#!/usr/bin/env bash
# Installs and runs the real servers the integration tests talk to, all on
# 127.0.0.1: MinIO (S3), Azurite (Azure blob), fake-gcs-server (GCS), git over
# smart HTTP, git:// and SSH, and a distribution registry.
#
#   integration/servers.sh install   build/install the pinned tools (cached) and git-lfs (apt)
#   integration/servers.sh start     install, then (re)start every server and write the env file
#   integration/servers.sh stop      stop the servers recorded in the state dir
#   integration/servers.sh env       print the env file's path
#
# Tools are cached in $INITIALIZER_TOOLS (default ~/.cache/initializer-test-tools),
# server data, logs, pid files and the env file live in $INITIALIZER_STATE
# (default /tmp/initializer-servers). Ports are picked at random among free ones;
# INITIALIZER_PORT_<NAME> pins one (MINIO, AZURITE, GCS, GITHTTP, GITDAEMON,
# GITSSH, REGISTRY, REGISTRY_DEBUG).
set -euo pipefail

export GOTOOLCHAIN=local
export GOFLAGS=-buildvcs=false

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
TOOLS=${INITIALIZER_TOOLS:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/initializer-test-tools}
STATE=${INITIALIZER_STATE:-/tmp/initializer-servers}
case $TOOLS in /*) ;; *) TOOLS=$PWD/$TOOLS ;; esac
case $STATE in /*) ;; *) STATE=$PWD/$STATE ;; esac
BIN=$TOOLS/bin

MINIO_MODULE=github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c
FAKE_GCS_MODULE=github.com/fsouza/fake-gcs-server@v1.56.1
REGISTRY_MODULE=github.com/distribution/distribution/v3/cmd/registry@v3.1.2
CRANE_MODULE=github.com/google/go-containerregistry/cmd/crane@v0.22.1
AZURITE_VERSION=3.37.0
GO_TOOL_LDFLAGS='-s -w'

SERVERS=(minio azurite gcs githttp gitdaemon gitssh registry)

# Azurite's well-known development account.
AZURE_ACCOUNT=devstoreaccount1
AZURE_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='

say() { printf '%s\n' "$*"; }
die() {
	printf 'servers.sh: %s\n' "$*" >&2
	exit 1
}
now() { printf '%s' "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# ---------------------------------------------------------------- install

# go_tool NAME MODULE@VERSION: go install into $BIN unless the stamp matches.
go_tool() {
	local name=$1 module=$2
	local stamp="$BIN/.$name.version" want="$module ldflags=$GO_TOOL_LDFLAGS"
	if [[ -x $BIN/$name && -f $stamp && $(<"$stamp") == "$want" ]]; then
		say "  $name: cached ($module)"
		return
	fi
	local t0
	t0=$(now)
	rm -f "$stamp"
	GOBIN=$BIN go install -ldflags="$GO_TOOL_LDFLAGS" "$module" ||
		die "go install $module failed"
	printf '%s\n' "$want" >"$stamp"
	say "  $name: built $module in $(elapsed "$t0") s"
}

azurite_installed() {
	local pkg=$TOOLS/node/node_modules/azurite/package.json
	[[ -x $TOOLS/node/node_modules/.bin/azurite-blob && -f $pkg ]] &&
		grep -q "\"version\": \"$AZURITE_VERSION\"" "$pkg"
}

# npm_install_azurite runs in the background; it writes its result to files.
npm_install_azurite() {
	local t0 rc=0
	t0=$(now)
	mkdir -p "$TOOLS/node"
	npm install --prefix "$TOOLS/node" --no-audit --no-fund \
		"azurite@$AZURITE_VERSION" >"$TOOLS/npm.log" 2>&1 || rc=$?
	printf '%s\n' "$(elapsed "$t0")" >"$TOOLS/npm.seconds"
	return "$rc"
}

# helpers_stale: true when the project's helper servers must be rebuilt.
helpers_stale() {
	local stamp=$BIN/.helpers.source name
	[[ -f $stamp && $(<"$stamp") == "$REPO_ROOT" ]] || return 0
	for name in githttp gitssh htpasswd; do
		[[ -x $BIN/$name ]] || return 0
	done
	[[ -z $(find "$SCRIPT_DIR/servers" "$REPO_ROOT/go.mod" "$REPO_ROOT/go.sum" \
		-newer "$BIN/.helpers.source" -print -quit) ]] || return 0
	return 1
}

build_helpers() {
	if ! helpers_stale; then
		say "  helpers: up to date (githttp gitssh htpasswd)"
		return
	fi
	local t0 tmp name
	t0=$(now)
	tmp=$(mktemp -d "$BIN/.build.XXXXXX")
	(cd "$REPO_ROOT" && go build -o "$tmp/" ./integration/servers/...) || {
		rm -rf "$tmp"
		die "building the helper servers in $REPO_ROOT/integration/servers failed"
	}
	for name in githttp gitssh htpasswd; do
		mv -f "$tmp/$name" "$BIN/$name"
	done
	rm -rf "$tmp"
	printf '%s\n' "$REPO_ROOT" >"$BIN/.helpers.source"
	say "  helpers: built githttp gitssh htpasswd in $(elapsed "$t0") s"
}

# apt_tool CMD PACKAGE: install Debian's PACKAGE unless CMD is on PATH
# already (the package is its own cache); apt's output goes to a log.
apt_tool() {
	local cmd=$1 pkg=$2 t0 log=$TOOLS/apt-$2.log updated=
	if command -v "$cmd" >/dev/null; then
		say "  $pkg: installed ($(tool_version "$cmd"))"
		return
	fi
	command -v apt-get >/dev/null || die "$cmd is not installed and there is no apt-get: install $pkg"
	((EUID == 0)) || die "$cmd is not installed: run as root or apt-get install $pkg"
	t0=$(now)
	: >"$log"
	# A fresh machine's package lists may be empty: update them only then,
	# or when they are too old for the install to fetch the package.
	if [[ -z $(apt-cache policy "$pkg" 2>/dev/null | awk '$1 == "Candidate:" && $2 != "(none)"') ]]; then
		apt_get update || apt_failed "apt-get update"
		updated=1
	fi
	if ! apt_get install --no-install-recommends "$pkg"; then
		[[ -z $updated ]] || apt_failed "apt-get install $pkg"
		apt_get update || apt_failed "apt-get update"
		apt_get install --no-install-recommends "$pkg" || apt_failed "apt-get install $pkg"
	fi
	command -v "$cmd" >/dev/null || die "$cmd missing after apt-get install $pkg"
	say "  $pkg: apt-get installed $(tool_version "$cmd") in $(elapsed "$t0") s"
}

# tool_version CMD: the first word of `CMD version`, e.g. git-lfs/3.3.0.
tool_version() { "$1" version 2>/dev/null | awk 'NR == 1 { print $1 }'; }

apt_failed() {
	tail -n 20 "$log" >&2
	die "$1 failed (log: $log)"
}

# apt_get ARGS...: quiet, non-interactive apt-get, output appended to the
# calling apt_tool's $log, waiting for another apt to release its lock.
apt_get() {
	DEBIAN_FRONTEND=noninteractive apt-get -y -qq -o DPkg::Lock::Timeout=120 "$@" >>"$log" 2>&1
}

cmd_install() {
	local t0 npm_pid=
	t0=$(now)
	command -v go >/dev/null || die "go is not installed"
	command -v git >/dev/null || die "git is not installed"
	mkdir -p "$BIN"
	say "install: tools in $TOOLS"

	if azurite_installed; then
		say "  azurite: cached ($AZURITE_VERSION)"
	else
		command -v npm >/dev/null || die "npm is not installed (needed for Azurite)"
		say "  azurite: npm install azurite@$AZURITE_VERSION (background)"
		npm_install_azurite &
		npm_pid=$!
	fi

	# git lfs for the git handler's LFS tests; Debian's package also puts
	# the filter.lfs config in /etc/gitconfig.
	apt_tool git-lfs git-lfs
	build_helpers
	go_tool minio "$MINIO_MODULE"
	go_tool fake-gcs-server "$FAKE_GCS_MODULE"
	go_tool registry "$REGISTRY_MODULE"
	go_tool crane "$CRANE_MODULE"

	if [[ -n $npm_pid ]]; then
		if ! wait "$npm_pid"; then
			tail -n 30 "$TOOLS/npm.log" >&2 || true
			die "npm install azurite@$AZURITE_VERSION failed (log: $TOOLS/npm.log)"
		fi
		azurite_installed || die "azurite $AZURITE_VERSION missing after npm install"
		say "  azurite: installed in $(<"$TOOLS/npm.seconds") s"
	fi
	say "install: done in $(elapsed "$t0") s"
}

# ---------------------------------------------------------------- processes

# proc_field PID N: field N (1-based, after the command name) of /proc/PID/stat.
proc_field() {
	local stat
	{ read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
	stat=${stat##*) }
	local -a f
	read -r -a f <<<"$stat"
	printf '%s' "${f[$(($2 - 1))]}"
}

# alive PID: the process exists and is not a zombie.
alive() {
	local state
	state=$(proc_field "$1" 1 2>/dev/null) || return 1
	[[ -n $state && $state != Z && $state != X ]]
}

# recorded_pid NAME: the PID recorded for NAME if it still runs the process we
# started (same start time), else nothing.
recorded_pid() {
	local name=$1 pid start
	[[ -f $STATE/$name.pid ]] || return 1
	pid=$(<"$STATE/$name.pid")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	alive "$pid" || return 1
	if [[ -f $STATE/$name.start ]]; then
		start=$(proc_field "$pid" 20) || return 1
		[[ $start == "$(<"$STATE/$name.start")" ]] || return 1
	fi
	printf '%s' "$pid"
}

cmd_stop() {
	local name pid pids=() names=() i deadline
	[[ -d $STATE ]] || return 0
	for name in "${SERVERS[@]}"; do
		if pid=$(recorded_pid "$name"); then
			kill -TERM "$pid" 2>/dev/null || true
			pids+=("$pid")
			names+=("$name")
		fi
	done
	deadline=$((SECONDS + 10))
	for i in "${!pids[@]}"; do
		while alive "${pids[$i]}" && ((SECONDS < deadline)); do
			sleep 0.1
		done
		if alive "${pids[$i]}"; then
			say "stop: ${names[$i]} (pid ${pids[$i]}) ignored SIGTERM for 10 s, sending SIGKILL"
			kill -KILL "${pids[$i]}" 2>/dev/null || true
		fi
	done
	deadline=$((SECONDS + 5))
	for i in "${!pids[@]}"; do
		while alive "${pids[$i]}" && ((SECONDS < deadline)); do sleep 0.1; done
		if alive "${pids[$i]}"; then
			say "stop: ${names[$i]} (pid ${pids[$i]}) survived SIGKILL" >&2
		fi
	done
	for name in "${SERVERS[@]}"; do
		rm -f "$STATE/$name.pid" "$STATE/$name.start"
	done
	if ((${#pids[@]})); then
		say "stop: stopped ${names[*]}"
	else
		say "stop: nothing running in $STATE"
	fi
}

# launch NAME CMD...: start CMD in the background with its output in
# $STATE/logs/NAME.log and record its PID. Secrets reach CMD through
# environment assignments in front of launch, never through its arguments.
launch() {
	local name=$1
	shift
	nohup "$@" </dev/null >"$STATE/logs/$name.log" 2>&1 9>&- &
	local pid=$!
	printf '%s\n' "$pid" >"$STATE/$name.pid"
	proc_field "$pid" 20 >"$STATE/$name.start" 2>/dev/null || rm -f "$STATE/$name.start"
}

# wait_ready NAME CHECK...: poll CHECK every 0.1 s for at most 30 s.
wait_ready() {
	local name=$1 pid i
	shift
	pid=$(<"$STATE/$name.pid")
	for ((i = 0; i < 300; i++)); do
		if "$@" >/dev/null 2>&1; then
			return 0
		fi
		if ! alive "$pid"; then
			say "start: $name (pid $pid) exited; last lines of $STATE/logs/$name.log:" >&2
			tail -n 30 "$STATE/logs/$name.log" >&2 || true
			die "$name failed to start"
		fi
		sleep 0.1
	done
	say "start: $name (pid $pid) not ready after 30 s; last lines of $STATE/logs/$name.log:" >&2
	tail -n 30 "$STATE/logs/$name.log" >&2 || true
	die "$name did not become ready"
}

http_ok() { curl -sf --noproxy '*' --max-time 2 -o /dev/null "$1"; }
tcp_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
registry_ready() {
	http_ok "http://127.0.0.1:$PORT_REGISTRY_DEBUG/debug/health" &&
		[[ $(curl -s --noproxy '*' --max-time 2 -o /dev/null -w '%{http_code}' \
			"http://127.0.0.1:$PORT_REGISTRY/v2/") == 401 ]]
}

# ---------------------------------------------------------------- ports

declare -A TAKEN=()

# port_in_use PORT: some TCP socket (IPv4 or IPv6, any state) uses local PORT.
port_in_use() {
	local hex
	hex=$(printf '%04X' "$1")
	awk -v p=":$hex" 'FNR > 1 && substr($2, length($2) - 4) == p { found = 1 }
		END { exit !found }' /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# pick_port VAR NAME: set VAR to INITIALIZER_PORT_NAME or a free random port.
pick_port() {
	local var=$1 name=$2 override_var="INITIALIZER_PORT_$2" port
	if [[ -n ${!override_var:-} ]]; then
		port=${!override_var}
		if [[ ! $port =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
			die "$override_var=$port is not a port number"
		fi
		if [[ -n ${TAKEN[$port]:-} ]] || port_in_use "$port"; then
			die "$override_var=$port: port $port on 127.0.0.1 is already in use; free it or pick another"
		fi
	else
		local tries
		for ((tries = 0; tries < 200; tries++)); do
			port=$((20000 + RANDOM % 12000))
			[[ -z ${TAKEN[$port]:-} ]] && ! port_in_use "$port" && break
		done
		((tries < 200)) || die "no free port found for $name"
	fi
	TAKEN[$port]=1
	printf -v "$var" '%s' "$port"
}

# ---------------------------------------------------------------- servers

random_secret() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }

start_minio() {
	mkdir -p "$DATA/minio" "$DATA/minio-home" "$DATA/minio-certs"
	HOME="$DATA/minio-home" MINIO_ROOT_USER="$S3_USER" MINIO_ROOT_PASSWORD="$S3_PASSWORD" \
		MINIO_BROWSER=off MINIO_UPDATE=off \
		launch minio "$BIN/minio" server "$DATA/minio" --address "127.0.0.1:$PORT_MINIO" \
		--certs-dir "$DATA/minio-certs" --quiet
}
ready_minio() { wait_ready minio http_ok "http://127.0.0.1:$PORT_MINIO/minio/health/ready"; }

start_azurite() {
	mkdir -p "$DATA/azurite"
	launch azurite "$TOOLS/node/node_modules/.bin/azurite-blob" \
		--blobHost 127.0.0.1 --blobPort "$PORT_AZURITE" --location "$DATA/azurite" \
		--skipApiVersionCheck --loose --disableTelemetry --silent
}
ready_azurite() { wait_ready azurite tcp_open "$PORT_AZURITE"; }

start_gcs() {
	launch gcs "$BIN/fake-gcs-server" -scheme http -host 127.0.0.1 -port "$PORT_GCS" \
		-backend memory -public-host "127.0.0.1:$PORT_GCS" \
		-external-url "http://127.0.0.1:$PORT_GCS" -log-level warn
}
ready_gcs() { wait_ready gcs http_ok "http://127.0.0.1:$PORT_GCS/_internal/healthcheck"; }

start_githttp() {
	GITHTTP_PASSWORD="$GIT_HTTP_PASSWORD" launch githttp "$BIN/githttp" -addr "127.0.0.1:$PORT_GITHTTP" -root "$GIT_ROOT" \
		-user "$GIT_HTTP_USER" -password-env GITHTTP_PASSWORD
}
ready_githttp() { wait_ready githttp http_ok "http://127.0.0.1:$PORT_GITHTTP/healthz"; }

start_gitdaemon() {
	launch gitdaemon "$(git --exec-path)/git-daemon" --reuseaddr --listen=127.0.0.1 \
		--port="$PORT_GITDAEMON" --base-path="$GIT_ROOT" --export-all \
		--informative-errors "$GIT_ROOT"
}
git_ls_remote() { GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1 git ls-remote "$1"; }
ready_gitdaemon() { wait_ready gitdaemon git_ls_remote "git://127.0.0.1:$PORT_GITDAEMON/smoke.git"; }

start_gitssh() {
	mkdir -p "$DATA/ssh"
	ssh-keygen -q -t ed25519 -N '' -C initializer-test-host -f "$DATA/ssh/host_ed25519"
	ssh-keygen -q -t ed25519 -N '' -C initializer-test-client -f "$DATA/ssh/id_ed25519"
	cp "$DATA/ssh/id_ed25519.pub" "$DATA/ssh/authorized_keys"
	launch gitssh "$BIN/gitssh" -addr "127.0.0.1:$PORT_GITSSH" -root "$GIT_ROOT" \
		-authorized-keys "$DATA/ssh/authorized_keys" -host-key "$DATA/ssh/host_ed25519"
}
# keyscan_gitssh writes known_hosts; it fails until the server answers.
keyscan_gitssh() {
	ssh-keyscan -t ed25519 -p "$PORT_GITSSH" 127.0.0.1 >"$DATA/ssh/known_hosts" 2>/dev/null &&
		[[ -s $DATA/ssh/known_hosts ]]
}
ready_gitssh() { wait_ready gitssh keyscan_gitssh; }

start_registry() {
	mkdir -p "$DATA/registry/storage"
	HTPASSWD_PASSWORD=$REGISTRY_PASSWORD "$BIN/htpasswd" -password-env HTPASSWD_PASSWORD \
		"$REGISTRY_USER" >"$DATA/registry/htpasswd"
	cat >"$DATA/registry/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $DATA/registry/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$PORT_REGISTRY
  secret: $(random_secret 16)
  debug:
    addr: 127.0.0.1:$PORT_REGISTRY_DEBUG
auth:
  htpasswd:
    realm: initializer-test
    path: $DATA/registry/htpasswd
EOF
	OTEL_TRACES_EXPORTER=none OTEL_METRICS_EXPORTER=none OTEL_LOGS_EXPORTER=none \
		launch registry "$BIN/registry" serve "$DATA/registry/config.yml"
}
ready_registry() { wait_ready registry registry_ready; }

# seed_git_repo: a bare smoke.git with two commits on main, a branch feature
# with one more, and an annotated tag v1.0.0. Dates are fixed so the hashes
# are the same on every run.
seed_git_repo() {
	local work=$DATA/seed
	rm -rf "$work" "$GIT_ROOT/smoke.git"
	mkdir -p "$work" "$GIT_ROOT"
	(
		export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
		export GIT_AUTHOR_NAME="Initializer Test" GIT_AUTHOR_EMAIL=test@initializer.invalid
		export GIT_COMMITTER_NAME="Initializer Test" GIT_COMMITTER_EMAIL=test@initializer.invalid
		cd "$work"
		git init -q -b main .
		printf '# smoke\n' >README.md
		mkdir -p docs
		printf 'hello\n' >docs/hello.txt
		git add README.md docs/hello.txt
		GIT_AUTHOR_DATE='2024-01-01T00:00:00Z' GIT_COMMITTER_DATE='2024-01-01T00:00:00Z' \
			git commit -q -m "first commit"
		printf 'second\n' >>README.md
		git add README.md
		GIT_AUTHOR_DATE='2024-01-02T00:00:00Z' GIT_COMMITTER_DATE='2024-01-02T00:00:00Z' \
			git commit -q -m "second commit"
		GIT_COMMITTER_DATE='2024-01-02T00:00:00Z' git tag -a v1.0.0 -m "release v1.0.0"
		git checkout -q -b feature
		printf 'feature\n' >feature.txt
		git add feature.txt
		GIT_AUTHOR_DATE='2024-01-03T00:00:00Z' GIT_COMMITTER_DATE='2024-01-03T00:00:00Z' \
			git commit -q -m "feature commit"
		git checkout -q main
		git clone -q --bare "$work" "$GIT_ROOT/smoke.git"
		git --git-dir="$GIT_ROOT/smoke.git" remote remove origin
		git --git-dir="$GIT_ROOT/smoke.git" config http.receivepack true
	)
	rm -rf "$work"
}

# ---------------------------------------------------------------- env file

# env_line KEY VALUE: a shell-quoted KEY='VALUE' line.
env_line() {
	local v=${2//\'/\'\\\'\'}
	printf "%s='%s'\n" "$1" "$v"
}

write_env() {
	local tmp=$STATE/env.tmp name pids=()
	for name in "${SERVERS[@]}"; do
		pids+=("$name:$(<"$STATE/$name.pid")")
	done
	{
		say "# Written by integration/servers.sh start; source it or parse KEY='value' lines."
		env_line INITIALIZER_STATE "$STATE"
		env_line TOOLS_BIN "$BIN"
		env_line S3_ENDPOINT "http://127.0.0.1:$PORT_MINIO"
		env_line AWS_ACCESS_KEY_ID "$S3_USER"
		env_line AWS_SECRET_ACCESS_KEY "$S3_PASSWORD"
		env_line AWS_REGION us-east-1
		env_line AWS_EC2_METADATA_DISABLED true
		env_line AZURE_ACCOUNT_NAME "$AZURE_ACCOUNT"
		env_line AZURE_ACCOUNT_KEY "$AZURE_KEY"
		env_line AZURE_BLOB_ENDPOINT "http://127.0.0.1:$PORT_AZURITE/$AZURE_ACCOUNT"
		env_line AZURE_STORAGE_CONNECTION_STRING "DefaultEndpointsProtocol=http;AccountName=$AZURE_ACCOUNT;AccountKey=$AZURE_KEY;BlobEndpoint=http://127.0.0.1:$PORT_AZURITE/$AZURE_ACCOUNT;"
		env_line STORAGE_EMULATOR_HOST "127.0.0.1:$PORT_GCS"
		env_line GCS_ENDPOINT "http://127.0.0.1:$PORT_GCS"
		env_line GIT_ROOT "$GIT_ROOT"
		env_line GIT_SMOKE_REPO smoke.git
		env_line GIT_HTTP_URL "http://127.0.0.1:$PORT_GITHTTP"
		env_line GIT_HTTP_USER "$GIT_HTTP_USER"
		env_line GIT_HTTP_PASSWORD "$GIT_HTTP_PASSWORD"
		env_line GIT_DAEMON_URL "git://127.0.0.1:$PORT_GITDAEMON"
		env_line GIT_SSH_URL "ssh://git@127.0.0.1:$PORT_GITSSH"
		env_line GIT_SSH_KEY "$DATA/ssh/id_ed25519"
		env_line GIT_SSH_KNOWN_HOSTS "$DATA/ssh/known_hosts"
		env_line REGISTRY_URL "http://127.0.0.1:$PORT_REGISTRY"
		env_line REGISTRY_HOST "127.0.0.1:$PORT_REGISTRY"
		env_line REGISTRY_USER "$REGISTRY_USER"
		env_line REGISTRY_PASSWORD "$REGISTRY_PASSWORD"
		env_line SERVER_LOGS "$STATE/logs"
		env_line SERVER_PIDS "${pids[*]}"
	} >"$tmp"
	chmod 600 "$tmp"
	mv -f "$tmp" "$STATE/env"
}

# start_failed stops whatever a failed start had launched; logs are kept.
start_failed() {
	local rc=$?
	((rc != 0)) || return 0
	say "start: failed; stopping the servers started so far (logs in $STATE/logs)" >&2
	cmd_stop >&2 || true
	exit "$rc"
}

cmd_start() {
	local t0 t1 name tool
	t0=$(now)
	cmd_install
	for tool in curl ssh-keygen ssh-keyscan; do
		command -v "$tool" >/dev/null || die "$tool is not installed"
	done

	mkdir -p "$STATE"
	exec 9>"$STATE/.lock"
	flock -n 9 || die "another servers.sh is using $STATE"
	cmd_stop
	trap start_failed EXIT

	t1=$(now)
	DATA=$STATE/data
	GIT_ROOT=$DATA/git
	rm -rf "$DATA" "$STATE/logs" "$STATE/env"
	mkdir -p "$DATA" "$STATE/logs"

	pick_port PORT_MINIO MINIO
	pick_port PORT_AZURITE AZURITE
	pick_port PORT_GCS GCS
	pick_port PORT_GITHTTP GITHTTP
	pick_port PORT_GITDAEMON GITDAEMON
	pick_port PORT_GITSSH GITSSH
	pick_port PORT_REGISTRY REGISTRY
	pick_port PORT_REGISTRY_DEBUG REGISTRY_DEBUG

	S3_USER=initializer
	S3_PASSWORD=$(random_secret 16)
	GIT_HTTP_USER=git
	GIT_HTTP_PASSWORD=$(random_secret 12)
	REGISTRY_USER=initializer
	REGISTRY_PASSWORD=$(random_secret 12)

	seed_git_repo
	for name in "${SERVERS[@]}"; do
		"start_$name"
	done
	for name in "${SERVERS[@]}"; do
		"ready_$name"
	done
	write_env
	trap - EXIT

	say "start: servers ready in $(elapsed "$t1") s (total $(elapsed "$t0") s)"
	printf '  %-10s pid %-7s %s\n' \
		minio "$(<"$STATE/minio.pid")" "s3   http://127.0.0.1:$PORT_MINIO" \
		azurite "$(<"$STATE/azurite.pid")" "blob http://127.0.0.1:$PORT_AZURITE/$AZURE_ACCOUNT" \
		gcs "$(<"$STATE/gcs.pid")" "gcs  http://127.0.0.1:$PORT_GCS" \
		githttp "$(<"$STATE/githttp.pid")" "git  http://127.0.0.1:$PORT_GITHTTP/smoke.git" \
		gitdaemon "$(<"$STATE/gitdaemon.pid")" "git  git://127.0.0.1:$PORT_GITDAEMON/smoke.git" \
		gitssh "$(<"$STATE/gitssh.pid")" "git  ssh://git@127.0.0.1:$PORT_GITSSH/smoke.git" \
		registry "$(<"$STATE/registry.pid")" "oci  http://127.0.0.1:$PORT_REGISTRY (debug :$PORT_REGISTRY_DEBUG)"
	say "  env file: $STATE/env"
}

cmd_stop_locked() {
	[[ -d $STATE ]] || {
		say "stop: nothing running in $STATE"
		return 0
	}
	exec 9>"$STATE/.lock"
	flock -w 60 9 || die "another servers.sh is using $STATE"
	cmd_stop
}

case ${1:-} in
install) cmd_install ;;
start) cmd_start ;;
stop) cmd_stop_locked ;;
env) say "$STATE/env" ;;
*)
	say "usage: $0 install|start|stop|env" >&2
	exit 2
	;;
esac
