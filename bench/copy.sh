#!/usr/bin/env bash
# Benchmark (not a test): `hoist copy` vs `skopeo copy`, registry -> registry, measured in the
# same run on the same machine, plus a plain-curl "ceiling" for the upload side.
#
# Image: one platform, 10 layers of LAYER_MB MiB of incompressible bytes (~200 MB by default),
# pushed to local registry A. Every timed run copies it into a *fresh* repository on local
# registry B (cross-registry, so no mounts; a new repo, so HEAD answers 404 and every blob is
# uploaded). Medians of RUNS runs each. Prints ratios; never fails on a slow result.
#
#   bench/copy.sh                  RUNS=5 LAYER_MB=20 by default
#   RUNS=3 LAYER_MB=10 bench/copy.sh
set -euo pipefail

RUNS="${RUNS:-5}"
LAYER_MB="${LAYER_MB:-20}"
LAYERS=10

root="$(cd "$(dirname "$0")/.." && pwd)"
hoist="${HOIST_BIN:-$root/target/release/hoist}"

for cmd in docker-registry skopeo curl python3 xargs; do
  command -v "$cmd" >/dev/null || { echo "bench/copy.sh: needs $cmd (scripts/test installs the stack)" >&2; exit 1; }
done

tmp="$(mktemp -d)"
# skopeo runs as `nobody` when we are root (see run_skopeo): it must reach the temp dir.
chmod 755 "$tmp"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "building hoist (release)..." >&2
[ -n "${HOIST_BIN:-}" ] || cargo build --release --quiet --manifest-path "$root/Cargo.toml"

# --- two registries on free loopback ports ------------------------------------------------------
read -r PA PB < <(python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
EOF
)

start_registry() { # name port
  mkdir -p "$tmp/$1/storage"
  cat >"$tmp/$1/config.yml" <<EOF
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $tmp/$1/storage}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$2, secret: x}
EOF
  docker-registry serve "$tmp/$1/config.yml" >"$tmp/$1/log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$2/v2/" >/dev/null && return 0
    sleep 0.1
  done
  echo "registry $1 did not come up on port $2:" >&2
  cat "$tmp/$1/log" >&2
  exit 1
}
start_registry regA "$PA"
start_registry regB "$PB"

# --- skopeo with an empty blob-info cache every run -----------------------------------------------
# skopeo remembers where it has seen each blob and would *mount* it from an earlier run's repo on
# registry B instead of uploading it. Its cache lives in $XDG_DATA_HOME or ~/.local/share (rootless)
# but in /var/lib/containers/cache for root, so as root we run it as `nobody` with a fresh
# XDG_DATA_HOME (leaving the system cache untouched). hoist has no such cache.
run_skopeo() {
  local home="$tmp/skopeo-home"
  rm -rf "$home" && mkdir -m 777 "$home"
  if [ "$(id -u)" -eq 0 ]; then
    setpriv --reuid=65534 --regid=65534 --clear-groups \
      env HOME="$home" XDG_DATA_HOME="$home/.local/share" skopeo "$@"
  else
    env HOME="$home" XDG_DATA_HOME="$home/.local/share" skopeo "$@"
  fi
}

# --- the image: an OCI layout written with the python stdlib --------------------------------------
echo "generating $LAYERS x $LAYER_MB MiB layers..." >&2
python3 - "$tmp/oci" "$LAYERS" "$LAYER_MB" <<'EOF'
import gzip, hashlib, io, json, os, platform, random, sys, tarfile

out, layers, mib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
blobs = os.path.join(out, "blobs", "sha256")
os.makedirs(blobs, exist_ok=True)

def put(data):
    d = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, d), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + d, "size": len(data)}

layer_descs, diff_ids = [], []
for i in range(layers):
    # Deterministic and incompressible: gzip cannot shrink it, so bytes on the wire ~= LAYER_MB.
    payload = random.Random(i).randbytes(mib << 20)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(f"layer{i}.bin")
        info.size, info.mtime, info.mode = len(payload), 0, 0o644
        tar.addfile(info, io.BytesIO(payload))
    raw = buf.getvalue()
    diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
    layer_descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        **put(gzip.compress(raw, compresslevel=1, mtime=0))})

arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
config = {"architecture": arch, "os": "linux", "config": {},
          "rootfs": {"type": "layers", "diff_ids": diff_ids}}
manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       **put(json.dumps(config).encode())},
            "layers": layer_descs}
mdesc = {"mediaType": manifest["mediaType"], **put(json.dumps(manifest).encode()),
         "annotations": {"org.opencontainers.image.ref.name": "bench"}}
with open(os.path.join(out, "index.json"), "w") as f:
    json.dump({"schemaVersion": 2, "manifests": [mdesc]}, f)
with open(os.path.join(out, "oci-layout"), "w") as f:
    json.dump({"imageLayoutVersion": "1.0.0"}, f)
# For the curl ceiling: the layer blobs, one hex digest a line, and their total size.
with open(os.path.join(out, "..", "layers.txt"), "w") as f:
    f.writelines(d["digest"].split(":")[1] + "\n" for d in layer_descs)
with open(os.path.join(out, "..", "bytes.txt"), "w") as f:
    f.write(str(sum(d["size"] for d in layer_descs)))
EOF
run_skopeo copy -q --dest-tls-verify=false "oci:$tmp/oci:bench" "docker://127.0.0.1:$PA/bench/src:latest"

src="127.0.0.1:$PA/bench/src:latest"
dst_base="127.0.0.1:$PB/bench"

# --- the ceiling: monolithic blob uploads with curl -----------------------------------------------
# POST to open an upload, PUT the whole blob with its digest. `Expect:` is cleared so curl does
# not wait for a 100-continue before sending the body.
export BLOBS="$tmp/oci/blobs/sha256"
upload_blob() { # repo-url hex
  local loc sep
  loc="$(curl -fsS -o /dev/null -D - -X POST "$1/blobs/uploads/" | tr -d '\r' |
    awk 'tolower($1) == "location:" { print $2 }')"
  case "$loc" in /*) loc="${1%%/v2/*}$loc" ;; esac  # relative Location: resolve against the host
  case "$loc" in *\?*) sep='&' ;; *) sep='?' ;; esac
  curl -fsS -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' -H 'Expect:' \
    --data-binary "@$BLOBS/$2" "$loc${sep}digest=sha256:$2"
}
export -f upload_blob

# --- timed runs ---------------------------------------------------------------------------------
results="$tmp/results.txt"
: >"$results"
timed() { # label command...
  local t0 t1
  t0="$(date +%s.%N)"
  "${@:2}" || return  # explicit: errexit is off when the caller tests our status
  t1="$(date +%s.%N)"
  echo "$1 $t0 $t1" >>"$results"
}
# hoist's one-line summary ("N MB sent, 0 mounted, 0 already there") goes to stderr with the log.
run_hoist() { HOIST_TEST_LOOPBACK_ONLY=1 "$hoist" --progress quiet copy "$src" "$dst_base/hoist-$1:latest" >&2; }
run_skopeo_copy() {
  run_skopeo copy -q --src-tls-verify=false --dest-tls-verify=false \
    "docker://$src" "docker://$dst_base/skopeo-$1:latest"
}
curl_seq() { while read -r d; do upload_blob "http://127.0.0.1:$PB/v2/bench/curl-seq-$1" "$d"; done <"$tmp/layers.txt"; }
curl_par() { xargs -P 8 -n 1 bash -c 'upload_blob "$0" "$1"' "http://127.0.0.1:$PB/v2/bench/curl-par-$1" <"$tmp/layers.txt"; }
# A copy that "succeeded" without leaving the manifest behind would make its time meaningless.
check_copied() { curl -fsS -o /dev/null -I -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
  "http://127.0.0.1:$PB/v2/bench/$1/manifests/latest"; }

mb="$(python3 -c "print(round($(cat "$tmp/bytes.txt") / 1e6))")"
echo "running $RUNS rounds: $LAYERS layers, $mb MB of layer blobs, 127.0.0.1:$PA -> 127.0.0.1:$PB" >&2
for n in $(seq "$RUNS"); do
  # Alternate which tool goes first so neither always runs on a warmer (or busier) machine.
  if [ $((n % 2)) -eq 1 ]; then order="hoist skopeo"; else order="skopeo hoist"; fi
  for tool in $order; do
    if [ "$tool" = hoist ]; then
      if ! timed hoist run_hoist "$n"; then
        echo "hoist copy failed (run $n); command:" >&2
        echo "  HOIST_TEST_LOOPBACK_ONLY=1 $hoist --progress quiet copy $src $dst_base/hoist-$n:latest" >&2
        exit 1
      fi
    else
      timed skopeo run_skopeo_copy "$n"
    fi
    check_copied "$tool-$n"
  done
  timed curl-seq curl_seq "$n"
  timed curl-par curl_par "$n"
  echo "  round $n/$RUNS done" >&2
done

# --- report -------------------------------------------------------------------------------------
PYTHONPATH="$root/bench" python3 - "$results" "$(cat "$tmp/bytes.txt")" <<'EOF'
import statistics, sys
import report
from collections import defaultdict

times = defaultdict(list)
for line in open(sys.argv[1]):
    label, t0, t1 = line.split()
    times[label].append(float(t1) - float(t0))
total = int(sys.argv[2])
med = {k: statistics.median(v) for k, v in times.items()}

print(f"\n{'':24}{'median s':>10}{'MB/s':>10}   runs (s)")
names = [("hoist", "hoist copy"), ("skopeo", "skopeo copy"),
         ("curl-seq", "curl upload, sequential"), ("curl-par", "curl upload, -P 8")]
for key, name in names:
    runs = " ".join(f"{t:.2f}" for t in times[key])
    print(f"{name:24}{med[key]:10.2f}{total / 1e6 / med[key]:10.1f}   {runs}")

ratio = med["skopeo"] / med["hoist"]
ceiling = med["curl-par"]
pct = 100 * ceiling / med["hoist"]
print(f"\nhoist is {ratio:.2f}x skopeo (skopeo_time / hoist_time)")
print(f"ceiling (parallel curl upload of the same {total / 1e6:.0f} MB into registry B): {ceiling:.2f} s;"
      f" hoist runs at {pct:.0f}% of the ceiling's throughput")
# A copy much faster than the bare upload cannot have uploaded every blob (a mount or skip).
for key in ("hoist", "skopeo"):
    if min(times[key]) < 0.5 * ceiling:
        print(f"warning: a {key} run took under half the ceiling's time: were blobs skipped or mounted?")
# The target is either row's: >=1.5x skopeo, or hoist within 10% of the ceiling.
report.row("copy.sh", f"registry to registry, {total / 1e6:.0f} MB", "skopeo", med["hoist"],
           med["skopeo"], 1.5)
report.row("copy.sh", f"registry to registry, {total / 1e6:.0f} MB", "curl -P 8 upload (ceiling)",
           med["hoist"], ceiling, 0.9)
met = ratio >= 1.5 or pct >= 90
print(f"target: >=1.5x skopeo, or within 10% of the ceiling"
      f" (this run: {ratio:.2f}x, {pct:.0f}% of ceiling: {'met' if met else 'not met'})")
EOF
