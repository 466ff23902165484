#!/usr/bin/env bash
# Layer compression: hoist's fixed-block parallel gzip against one gzip stream of the same
# tree (size ratio and time), in one run. Usage: bench/compression.sh [DIR] (default /usr/include).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
src="${1:-/usr/include}"
[ -n "${HOIST_BIN:-}" ] || cargo build --release --quiet --manifest-path "$root/Cargo.toml"
hoist="${HOIST_BIN:-$root/target/release/hoist}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/ctx"
cp -a "$src" "$work/ctx/data"
printf 'FROM scratch\nCOPY data /data\n' > "$work/ctx/Dockerfile"

now() { python3 -c 'import time; print(time.monotonic())'; }

t0=$(now)
SOURCE_DATE_EPOCH=0 HOIST_CACHE_DIR="$work/cache" "$hoist" --progress quiet build "$work/ctx" -o "oci:$work/out" >/dev/null
t1=$(now)
layer=$(python3 - "$work/out" <<'PY'
import json, sys, os
out = sys.argv[1]
index = json.load(open(f"{out}/index.json"))
manifest = json.load(open(f"{out}/blobs/sha256/" + index["manifests"][0]["digest"].split(":")[1]))
print(max(l["size"] for l in manifest["layers"]))
PY
)
t2=$(now)
single=$(tar -C "$work/ctx" --sort=name -cf - data | gzip -6 | wc -c)
t3=$(now)
raw=$(tar -C "$work/ctx" --sort=name -cf - data | wc -c)

PYTHONPATH="$root/bench" python3 - "$raw" "$layer" "$single" "$t0" "$t1" "$t2" "$t3" <<'PY'
import sys
import report
raw, layer, single = map(int, sys.argv[1:4])
t0, t1, t2, t3 = map(float, sys.argv[4:8])
print(f"tree: {raw/1e6:.1f} MB uncompressed")
print(f"hoist build (parallel gzip, fixed 1 MiB blocks): {layer/1e6:.2f} MB in {t1-t0:.2f} s (whole build)")
print(f"tar | gzip -6 (one stream):                     {single/1e6:.2f} MB in {t3-t2:.2f} s")
report.row("compression.sh", f"COPY {raw/1e6:.0f} MB tree (size ratio {layer/single:.3f})",
           "tar | gzip -6", t1 - t0, t3 - t2)
print(f"size ratio hoist/one-stream: {layer/single:.4f}; time ratio gzip/hoist: {(t3-t2)/(t1-t0):.2f}x")
PY
