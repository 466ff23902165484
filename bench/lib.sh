# Shared by the benchmarks (sourced): a local registry on a free port.
#
#   start_registry DIR    → sets REG=127.0.0.1:PORT, appends the pid to the caller's `pids`

start_registry() {
  local dir="$1" port
  port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  REG="127.0.0.1:$port"
  mkdir -p "$dir/storage"
  cat >"$dir/config.yml" <<CONF
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $dir/storage}, delete: {enabled: true}}
http: {addr: $REG, secret: x}
CONF
  docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do curl -fs "http://$REG/v2/" >/dev/null && return 0; sleep 0.1; done
  cat "$dir/log" >&2
  return 1
}
