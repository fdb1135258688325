#!/usr/bin/env bash
# Private Docker engine + stand-in images for regsweep's end-to-end tests.
#
#   docker-test-env.sh start DIR   start a private dockerd (root) whose state all lives
#                                  in DIR; prints DOCKER_HOST=unix://DIR/docker.sock
#   docker-test-env.sh images      (DOCKER_HOST set) import `registry:2` and
#                                  `regsweep-node:20` unless they already exist
#   docker-test-env.sh stop DIR    stop that dockerd, unmount what is left below DIR,
#                                  remove DIR
#
# No image can be pulled on the test machines, so both images are `docker import`ed
# from a rootfs assembled from host binaries (see /work/shared/TESTING.md).
# Keep DIR short (e.g. /tmp/rsd.XXXXXX): unix socket paths are limited to ~107 bytes.
# Progress goes to stderr; stdout carries only the DOCKER_HOST line of `start`.
set -euo pipefail

REGISTRY_IMAGE=${REGISTRY_IMAGE:-registry:2}
NODE_IMAGE=${NODE_IMAGE:-regsweep-node:20}
START_TIMEOUT=${START_TIMEOUT:-60}
STOP_TIMEOUT=${STOP_TIMEOUT:-30}

log() { printf 'docker-test-env: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
  cat >&2 <<'EOF'
usage: docker-test-env.sh start DIR | images | stop DIR
EOF
  exit 2
}

# Absolute path of DIR without requiring it to exist; refuses dangerous values.
abs_dir() {
  local d=$1
  [[ -n $d ]] || die "DIR is empty"
  [[ $d == /* ]] || d="$PWD/$d"
  d=${d%/}
  case "$d" in
    "" | / | /tmp | /root | /home | /var | /usr | /etc | /run) die "refusing DIR '$1'" ;;
  esac
  printf '%s' "$d"
}

# Alive = exists and is not a zombie (an exited dockerd may wait a while to be reaped
# when its parent is gone and init is slow to reap).
pid_alive() {
  local st
  [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null || return 1
  st=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ $st != Z ]]
}

read_pid() { [[ -s $1/pid ]] && tr -dc '0-9' <"$1/pid" || true; }

docker_ok() { DOCKER_HOST="unix://$1/docker.sock" timeout 10 docker info >/dev/null 2>&1; }

# ---------------------------------------------------------------------------
cmd_start() {
  local dir pid sock deadline
  dir=$(abs_dir "${1:-}")
  sock="$dir/docker.sock"
  # containerd's socket ($dir/exec/containerd/containerd.sock) is the longest one.
  (( ${#dir} + 32 <= 100 )) || die "DIR '$dir' is too long for unix socket paths; use e.g. /tmp/rsd.XXXXXX"
  command -v dockerd >/dev/null || die "dockerd not found (apt-get install docker.io)"
  command -v docker >/dev/null || die "docker CLI not found"
  mkdir -p "$dir"

  pid=$(read_pid "$dir")
  if pid_alive "$pid" && docker_ok "$dir"; then
    log "dockerd already running in $dir (pid $pid)"
    printf 'DOCKER_HOST=unix://%s\n' "$sock"
    return 0
  fi
  if pid_alive "$pid"; then
    log "dockerd pid $pid in $dir does not answer; restarting it"
    cmd_stop_daemon "$dir"
  fi
  rm -f "$dir/pid" "$sock"

  log "starting dockerd in $dir (log: $dir/dockerd.log)"
  # Own session, no inherited stdio: a caller reading our stdout (vitest's globalSetup)
  # must see EOF when this script exits, not when dockerd does.
  setsid dockerd --iptables=false --bridge=none \
    --data-root "$dir/data" --exec-root "$dir/exec" \
    --pidfile "$dir/pid" -H "unix://$sock" \
    </dev/null >>"$dir/dockerd.log" 2>&1 &
  local spawned=$!
  disown "$spawned" 2>/dev/null || true

  deadline=$((SECONDS + START_TIMEOUT))
  until docker_ok "$dir"; do
    if ! pid_alive "$spawned"; then
      tail -n 30 "$dir/dockerd.log" >&2 || true
      die "dockerd exited during startup (see $dir/dockerd.log)"
    fi
    if (( SECONDS >= deadline )); then
      tail -n 30 "$dir/dockerd.log" >&2 || true
      die "dockerd did not answer within ${START_TIMEOUT}s (see $dir/dockerd.log)"
    fi
    sleep 0.5
  done
  log "dockerd ready (pid $(read_pid "$dir")) after $((SECONDS))s"
  printf 'DOCKER_HOST=unix://%s\n' "$sock"
}

# ---------------------------------------------------------------------------
# Engine processes (containerd, shims, runc, dockerd) whose command line names DIR.
# Only engine binaries are considered, so a shell whose command line merely
# mentions DIR is safe.
engine_pids() {
  local dir=$1 p comm cmdline
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    comm=$(cat "/proc/$p/comm" 2>/dev/null) || continue
    case "$comm" in
      containerd | containerd-shim* | runc | dockerd | docker-proxy) ;;
      *) continue ;;
    esac
    pid_alive "$p" || continue
    cmdline=$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null) || continue
    case "$cmdline" in
      *"$dir/"*) printf '%s\n' "$p" ;;
    esac
  done
  return 0
}

# Direct children of the given pids (container init processes under a shim).
children_of() {
  local p ppid
  local -A parent=()
  for p in "$@"; do parent[$p]=1; done
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    [[ -n ${parent[$p]:-} ]] && continue
    ppid=$(awk '/^PPid:/ { print $2 }' "/proc/$p/status" 2>/dev/null) || continue
    [[ -n $ppid && -n ${parent[$ppid]:-} ]] && pid_alive "$p" && printf '%s\n' "$p"
  done
  return 0
}

# Cgroup directories (every mounted hierarchy) of a container process: only
# non-root paths ending in a 64-hex container id, e.g. /sys/fs/cgroup/freezer/docker/<id>.
container_cgroup_dirs() {
  local pid=$1 ctrls path mnt type opts
  while IFS=: read -r _ ctrls path; do
    [[ $path =~ /[0-9a-f]{64}$ ]] || continue
    while read -r _ mnt type opts _; do
      if [[ -z $ctrls && $type == cgroup2 ]] ||
        [[ -n $ctrls && $type == cgroup && ",$opts," == *",${ctrls%%,*},"* ]]; then
        [[ -d $mnt$path ]] && printf '%s\n' "$mnt$path"
      fi
    done </proc/mounts
  done <"/proc/$pid/cgroup" 2>/dev/null
  return 0
}

wait_gone() { # wait_gone SECONDS PID...
  local limit=$1 deadline p alive
  shift
  deadline=$((SECONDS + limit))
  while :; do
    alive=0
    for p in "$@"; do pid_alive "$p" && alive=1; done
    (( alive )) || return 0
    (( SECONDS < deadline )) || return 1
    sleep 0.2
  done
}

cmd_stop_daemon() {
  local dir=$1 pid
  pid=$(read_pid "$dir")
  if pid_alive "$pid" && docker_ok "$dir"; then
    # dockerd stops containers on shutdown too; removing them first makes that
    # deterministic (paused ones included) and keeps the shutdown short.
    local ids
    ids=$(DOCKER_HOST="unix://$dir/docker.sock" timeout 20 docker ps -aq 2>/dev/null | tr '\n' ' ' || true)
    if [[ -n ${ids// /} ]]; then
      log "removing containers: $ids"
      # shellcheck disable=SC2086
      DOCKER_HOST="unix://$dir/docker.sock" timeout 60 docker rm -f $ids >/dev/null 2>&1 || true
    fi
  fi
  if pid_alive "$pid"; then
    log "stopping dockerd pid $pid"
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_gone "$STOP_TIMEOUT" "$pid"; then
      log "dockerd pid $pid still alive after ${STOP_TIMEOUT}s; SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      wait_gone 10 "$pid" || die "cannot kill dockerd pid $pid"
    fi
  fi
  # containerd (started by dockerd) normally exits with it; shims outlive a killed
  # containerd on purpose, and so do their containers. Kill the containers' init
  # processes (test containers, nothing to save), then the engine processes.
  local engine kids
  engine=$(engine_pids "$dir" | tr '\n' ' ')
  [[ -n ${engine// /} ]] || return 0
  # shellcheck disable=SC2086
  kids=$(children_of $engine | tr '\n' ' ')
  if [[ -n ${kids// /} ]]; then
    log "killing leftover container processes: $kids"
    local cgdirs k d
    cgdirs=$(for k in $kids; do container_cgroup_dirs "$k"; done | sort -u)
    # shellcheck disable=SC2086
    kill -KILL $kids 2>/dev/null || true
    # A paused container is frozen: SIGKILL only lands once its cgroup is thawed.
    while IFS= read -r d; do
      [[ -n $d ]] || continue
      [[ -f $d/freezer.state ]] && echo THAWED >"$d/freezer.state" 2>/dev/null || true
      [[ -f $d/cgroup.freeze ]] && echo 0 >"$d/cgroup.freeze" 2>/dev/null || true
    done <<<"$cgdirs"
    # shellcheck disable=SC2086
    wait_gone 10 $kids || log "warning: container processes still alive: $kids"
    while IFS= read -r d; do
      [[ -n $d ]] && rmdir "$d" 2>/dev/null || true
    done <<<"$cgdirs"
  fi
  log "terminating leftover engine processes: $engine"
  # shellcheck disable=SC2086
  kill -TERM $engine 2>/dev/null || true
  # shellcheck disable=SC2086
  if ! wait_gone 10 $engine; then
    # shellcheck disable=SC2086
    kill -KILL $engine 2>/dev/null || true
    # shellcheck disable=SC2086
    wait_gone 5 $engine || true
  fi
}

mounts_below() { # deepest first
  local dir=$1
  awk -v d="$dir" '{ m = $2; gsub(/\\040/, " ", m); if (m == d || index(m, d "/") == 1) print length(m) "\t" m }' /proc/mounts |
    sort -rn | cut -f2-
}

cmd_stop() {
  local dir m left
  dir=$(abs_dir "${1:-}")
  if [[ ! -e $dir ]]; then
    log "$dir does not exist; nothing to stop"
    return 0
  fi
  cmd_stop_daemon "$dir"

  for _ in 1 2 3; do
    left=$(mounts_below "$dir")
    [[ -n $left ]] || break
    while IFS= read -r m; do
      [[ -n $m ]] || continue
      log "unmounting $m"
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done <<<"$left"
  done
  left=$(mounts_below "$dir")
  [[ -z $left ]] || die "still mounted below $dir: $left"

  rm -rf --one-file-system -- "$dir"
  log "removed $dir"
}

# ---------------------------------------------------------------------------
# Copies every library `ldd BIN` lists (and the dynamic loader) into ROOT at its path.
copy_libs() {
  local root=$1 bin=$2 lib
  while IFS= read -r lib; do
    [[ -n $lib && -e $lib ]] || continue
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done < <(ldd "$bin" | awk '/=>/ { if ($3 ~ /^\//) print $3; next } $1 ~ /^\// { print $1 }')
}

# busybox as BIN_DIR/busybox plus applet symlinks.
add_busybox() {
  local root=$1 bindir=$2 a bb
  shift 2
  bb=$(command -v busybox) || die "busybox not found (apt-get install busybox-static)"
  if ldd "$bb" >/dev/null 2>&1; then
    die "$bb is dynamically linked; install busybox-static"
  fi
  mkdir -p "$root$bindir"
  cp -L "$bb" "$root$bindir/busybox"
  for a in "$@"; do
    [[ -e $root$bindir/$a ]] || ln -s busybox "$root$bindir/$a"
  done
}

add_etc_basics() {
  local root=$1
  mkdir -p "$root/etc" "$root/root" "$root/tmp"
  chmod 1777 "$root/tmp"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
}

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

APPLETS=(sh ash cat ls sleep mkdir env echo rm cp mv ln du find grep sed head tail wc
  touch true false test ps kill id chmod chown stat sort tar gzip gunzip xargs which wget)

build_registry_image() {
  local root=$1 bin
  bin=$(command -v docker-registry || true)
  [[ -n $bin ]] || die "docker-registry not found (apt-get install docker-registry)"
  bin=$(readlink -f "$bin")
  mkdir -p "$root/bin" "$root/etc/docker/registry" "$root/var/lib/registry"
  cp -L "$bin" "$root/bin/registry"
  copy_libs "$root" "$bin"
  add_busybox "$root" /bin "${APPLETS[@]}"
  add_etc_basics "$root"

  cat >"$root/entrypoint.sh" <<'EOF'
#!/bin/sh
set -e

case "$1" in
    *.yaml|*.yml) set -- registry serve "$@" ;;
    serve|garbage-collect|help|-*) set -- registry "$@" ;;
esac

exec "$@"
EOF
  chmod 755 "$root/entrypoint.sh"

  cat >"$root/etc/docker/registry/config.yml" <<'EOF'
version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
EOF

  tar -C "$root" --numeric-owner -cf - . | docker import \
    --change 'ENTRYPOINT ["/entrypoint.sh"]' \
    --change 'CMD ["/etc/docker/registry/config.yml"]' \
    --change 'VOLUME /var/lib/registry' \
    --change 'EXPOSE 5000' \
    --change 'ENV PATH=/bin' \
    --message "regsweep stand-in for registry:2 ($("$bin" --version 2>/dev/null || echo unknown))" \
    - "$REGISTRY_IMAGE" >/dev/null
}

build_node_image() {
  local root=$1 node npm_cli npm_root npx_cli
  node=$(command -v node || true)
  [[ -n $node ]] || die "node not found"
  node=$(readlink -f "$node")
  mkdir -p "$root/usr/bin" "$root/usr/lib/node_modules" "$root/usr/local/bin" "$root/bin" "$root/etc/ssl/certs"
  cp -L "$node" "$root/usr/bin/node"
  copy_libs "$root" "$node"

  # npm: wherever it really lives on the host, it goes to /usr/lib/node_modules/npm.
  if [[ -d /usr/lib/node_modules ]]; then
    cp -a /usr/lib/node_modules/. "$root/usr/lib/node_modules/"
  fi
  if command -v npm >/dev/null; then
    npm_cli=$(readlink -f "$(command -v npm)")
    # .../npm/bin/npm-cli.js -> .../npm
    npm_root=$(dirname "$(dirname "$npm_cli")")
    if [[ ! -d $root/usr/lib/node_modules/npm/bin ]]; then
      rm -rf "$root/usr/lib/node_modules/npm"
      cp -a "$npm_root/." "$root/usr/lib/node_modules/npm/" 2>/dev/null ||
        { mkdir -p "$root/usr/lib/node_modules/npm" && cp -a "$npm_root/." "$root/usr/lib/node_modules/npm/"; }
    fi
  fi
  npm_cli=/usr/lib/node_modules/npm/bin/npm-cli.js
  npx_cli=/usr/lib/node_modules/npm/bin/npx-cli.js
  if [[ -f $root$npm_cli ]]; then
    ln -sfn ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/bin/npm"
    [[ -f $root$npx_cli ]] && ln -sfn ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/bin/npx"
  else
    log "warning: npm not found on the host; $NODE_IMAGE has node only"
  fi

  add_busybox "$root" /bin "${APPLETS[@]}"
  ln -sfn ../../bin/busybox "$root/usr/bin/env"
  add_etc_basics "$root"
  [[ -f /etc/ssl/certs/ca-certificates.crt ]] || die "/etc/ssl/certs/ca-certificates.crt missing (apt-get install ca-certificates)"
  cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"

  tar -C "$root" --numeric-owner -cf - . | docker import \
    --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
    --change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV HOME=/root' \
    --change 'WORKDIR /' \
    --change 'CMD ["node"]' \
    --message "regsweep node base ($("$node" --version))" \
    - "$NODE_IMAGE" >/dev/null
}

check_image() { # check_image IMAGE CMD... : runs it once, quietly
  local out
  if ! out=$(docker run --rm --network host "$@" 2>&1); then
    printf '%s\n' "$out" >&2
    die "smoke test failed: docker run $*"
  fi
  log "  docker run $* -> $(printf '%s' "$out" | head -n1)"
}

cmd_images() {
  [[ -n ${DOCKER_HOST:-} ]] || die "DOCKER_HOST is not set"
  docker info >/dev/null 2>&1 || die "docker at $DOCKER_HOST does not answer"
  local tmp
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/regsweep-rootfs.XXXXXX")
  # shellcheck disable=SC2064
  trap "rm -rf -- '$tmp'" EXIT

  if image_exists "$REGISTRY_IMAGE"; then
    log "$REGISTRY_IMAGE present"
  else
    log "importing $REGISTRY_IMAGE"
    build_registry_image "$tmp/registry"
    check_image "$REGISTRY_IMAGE" --version
  fi

  if image_exists "$NODE_IMAGE"; then
    log "$NODE_IMAGE present"
  else
    log "importing $NODE_IMAGE"
    build_node_image "$tmp/node"
    check_image "$NODE_IMAGE" node -e 'console.log(1)'
    if [[ -e $tmp/node/usr/bin/npm ]]; then
      check_image "$NODE_IMAGE" npm --version
    fi
  fi
}

# ---------------------------------------------------------------------------
case "${1:-}" in
  start) [[ $# -eq 2 ]] || usage; cmd_start "$2" ;;
  stop) [[ $# -eq 2 ]] || usage; cmd_stop "$2" ;;
  images) [[ $# -eq 1 ]] || usage; cmd_images ;;
  *) usage ;;
esac
