# Shared by the benchmarks (sourced): a local registry on a free port.
#
#   start_registry DIR    → sets REG=127.0.0.1:PORT, appends the pid to the caller's `pids`

# install_missing COMMAND=PACKAGE...: installs (Debian) the packages of the commands not found
# here; a COMMAND may be an absolute path.
install_missing() {
  local pair need=()
  for pair in "$@"; do
    command -v "${pair%%=*}" >/dev/null 2>&1 || need+=("${pair#*=}")
  done
  [ "${#need[@]}" -gt 0 ] || return 0
  echo "installing ${need[*]}..." >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
}

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

# The Debian base of build.sh and run.sh, prepared once into CACHE/base: debootstrap
# --variant=minbase bookworm from the mirror apt uses here, tarred without /dev's nodes (the
# runtime provides /dev) and apt's package lists and caches (~80 MB that Debian's own images
# drop too), so ~120 MB; then wrapped as the one layer of an OCI layout, in the tar's own order
# (a hard link must follow its target). A changed recipe makes it again.
prepare_base() { # cache-dir
  local cache="$1"
base_recipe="minbase bookworm; excludes: dev/* var/lib/apt/lists/* var/cache/apt/*.bin,archives/*.deb"
if [ ! -e "$cache/base/rootfs.tar" ] || [ "$(cat "$cache/base/recipe" 2>/dev/null)" != "$base_recipe" ]; then
  mirror="$(python3 - <<'EOF'
import glob, re
for f in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*")):
    try:
        text = open(f).read()
    except OSError:
        continue
    for m in re.finditer(r"(?m)^\s*(?:deb\s+(?:\[[^\]]*\]\s+)?|URIs:\s*)(\S+)", text):
        url = m.group(1).rstrip("/")
        if url.endswith("/debian"):
            print(url)
            raise SystemExit
print("http://deb.debian.org/debian")
EOF
)"
  echo "preparing the base: debootstrap --variant=minbase bookworm from $mirror..." >&2
  part="$cache/base/rootfs.partial"
  mkdir -p "$cache/base"
  unmount_under "$part"
  rm -rf "$part"
  debootstrap --variant=minbase bookworm "$part" "$mirror" >"$cache/base/debootstrap.log" 2>&1 ||
    { tail -20 "$cache/base/debootstrap.log" >&2; exit 1; }
  unmount_under "$part"
  tar --numeric-owner --exclude='./dev/*' --exclude='./var/lib/apt/lists/*' \
    --exclude='./var/cache/apt/*.bin' --exclude='./var/cache/apt/archives/*.deb' \
    -C "$part" -cf "$cache/base/rootfs.tar.partial" .
  mv "$cache/base/rootfs.tar.partial" "$cache/base/rootfs.tar"
  echo "$base_recipe" >"$cache/base/recipe"
  rm -rf "$part" "$cache/base/layout"
fi
layout_recipe="1 gzip -6 layer, config with history"  # a new recipe rebuilds the layout
if [ "$(cat "$cache/base/layout/recipe" 2>/dev/null)" != "$layout_recipe" ]; then
  rm -rf "$cache/base/layout" "$cache/base/layout.partial"
  python3 - "$cache/base/rootfs.tar" "$cache/base/layout.partial" <<'EOF'
import gzip, hashlib, json, os, platform, sys
rootfs, out = sys.argv[1], sys.argv[2]
blobs = os.path.join(out, "blobs", "sha256")
os.makedirs(blobs, exist_ok=True)

def put(data):
    d = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, d), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + d, "size": len(data)}

raw = open(rootfs, "rb").read()
layer = put(gzip.compress(raw, compresslevel=6, mtime=0))
arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
config = {"architecture": arch, "os": "linux", "created": "1970-01-01T00:00:00Z",
          "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                     "Cmd": ["bash"]},
          "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]},
          # buildah insists on one non-empty history entry per layer
          "history": [{"created": "1970-01-01T00:00:00Z",
                       "created_by": "debootstrap --variant=minbase bookworm"}]}
manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       **put(json.dumps(config).encode())},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **layer}]}
mdesc = {"mediaType": manifest["mediaType"], **put(json.dumps(manifest).encode()),
         "annotations": {"org.opencontainers.image.ref.name": "bookworm"}}
with open(os.path.join(out, "index.json"), "w") as f:
    json.dump({"schemaVersion": 2, "manifests": [mdesc]}, f)
with open(os.path.join(out, "oci-layout"), "w") as f:
    json.dump({"imageLayoutVersion": "1.0.0"}, f)
EOF
  echo "$layout_recipe" >"$cache/base/layout.partial/recipe"
  mv "$cache/base/layout.partial" "$cache/base/layout"
fi
}

# dockerd (overlay2), buildah and hoist RUN steps may leave mounts under a directory: rm -rf must
# not walk into them.
unmount_under() {
  awk -v p="$1/" 'index($2, p) == 1 { print $2 }' /proc/mounts | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

# A private dockerd under $tmp ("fresh" = a new data root each start), with `dk` its client;
# uses the caller's $tmp, $DOCKERD, $DOCKER and `pids`.
dockerd_pid=""
dockerd_n=0
docker_args=()
# Not exported: DOCKER_CONFIG in the environment would be read by buildah and hoist too.
dk() { DOCKER_BUILDKIT=1 "$DOCKER" "${docker_args[@]}" "$@"; }
start_dockerd() {
  stop_dockerd
  dockerd_n=$((dockerd_n + 1))
  local d="$tmp/d$dockerd_n"  # short: socket paths under the exec root must stay < 108 bytes
  mkdir -p "$d/client"
  echo '{}' >"$d/daemon.json"  # our own config: a host /etc/docker/daemon.json cannot interfere
  "$DOCKERD" --bridge=none --iptables=false --ip6tables=false --config-file "$d/daemon.json" \
    --host "unix://$d/docker.sock" --data-root "$d/data" --exec-root "$d/exec" \
    --pidfile "$d/docker.pid" >"$d/dockerd.log" 2>&1 &
  dockerd_pid=$!
  pids+=("$dockerd_pid")
  docker_args=(-H "unix://$d/docker.sock" --config "$d/client")
  for _ in $(seq 300); do
    dk version >/dev/null 2>&1 && return 0
    kill -0 "$dockerd_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "dockerd did not come up:" >&2
  tail -30 "$d/dockerd.log" >&2
  exit 1
}
stop_dockerd() {
  [ -n "$dockerd_pid" ] || return 0
  kill "$dockerd_pid" 2>/dev/null || true
  wait "$dockerd_pid" 2>/dev/null || true
  local p rest=()  # forget its pid: cleanup must not signal a recycled one
  for p in "${pids[@]}"; do [ "$p" = "$dockerd_pid" ] || rest+=("$p"); done
  pids=("${rest[@]}")
  dockerd_pid=""
  unmount_under "$tmp/d$dockerd_n"
  rm -rf "$tmp/d$dockerd_n"
}
