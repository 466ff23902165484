#!/usr/bin/env bash
# Benchmark (not a test): `hoist mirror` vs `skopeo sync`, 20 images × 3 tags between two local
# registries, same run, tools alternating, medians of RUNS. Each image is the example base
# (examples/make-example-image: amd64 + arm64) plus one layer of its own (~1 MB, random),
# tagged 1.0.0, 1.1.0 and 2.0.0. Scenarios: cold (empty destination repositories) and
# unchanged (a re-run with nothing new). Targets (issue): cold ≥1.5×, no-change re-run ≥5×.
#
#   bench/mirror.sh            RUNS=3
#   HOIST_BIN=/path/to/hoist bench/mirror.sh
set -euo pipefail

RUNS="${RUNS:-3}"
IMAGES="${IMAGES:-20}"
root="$(cd "$(dirname "$0")/.." && pwd)"
hoist="${HOIST_BIN:-$root/target/release/hoist}"
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"

install_missing skopeo=skopeo docker-registry=docker-registry curl=curl python3=python3
[ -n "${HOIST_BIN:-}" ] || cargo build --release --quiet --manifest-path "$root/Cargo.toml"

tmp="$(mktemp -d)"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

start_registry "$tmp/up" && UP="$REG"
export HOIST_TEST_LOOPBACK_ONLY=1 HOIST_CACHE_DIR="$tmp/hoist-cache"

echo "preparing $IMAGES images x 3 tags upstream..." >&2
"$root/examples/make-example-image" "$tmp/base" latest >/dev/null 2>&1
for i in $(seq -w 1 "$IMAGES"); do
  ctx="$tmp/ctx/$i"
  mkdir -p "$ctx"
  head -c 1000000 /dev/urandom >"$ctx/blob"
  printf 'FROM oci-layout://%s:latest\nCOPY blob /blob\n' "$tmp/base" >"$ctx/Dockerfile"
  "$hoist" --progress quiet build "$ctx" --platform linux/amd64,linux/arm64 \
    -t "$UP/img$i:1.0.0" -t "$UP/img$i:1.1.0" -t "$UP/img$i:2.0.0" --push >/dev/null
done

yaml_hoist() { # destination-prefix
  echo "target: $1"
  echo "images:"
  for i in $(seq -w 1 "$IMAGES"); do
    printf '  - source: %s/img%s\n    tags: ["1.0.0", "1.1.0", "2.0.0"]\n' "$UP" "$i"
  done
}
yaml_skopeo() {
  echo "$UP:"
  echo "  tls-verify: false"
  echo "  images:"
  for i in $(seq -w 1 "$IMAGES"); do
    printf '    img%s: ["1.0.0", "1.1.0", "2.0.0"]\n' "$i"
  done
}
yaml_skopeo >"$tmp/skopeo.yaml"

results="$tmp/results"
timed() { # scenario tool command...
  local t0 t1
  t0="$(date +%s.%N)"
  "${@:3}" >"$tmp/last.log" 2>&1 || { echo "FAILED: $1/$2" >&2; grep -E "FAILED|error" "$tmp/last.log" | head -5 >&2; return 0; }
  t1="$(date +%s.%N)"
  echo "$1 $2 $(python3 -c "print($t1 - $t0)")" >>"$results"
}
run_hoist() { yaml_hoist "$1" >"$tmp/mirror.yaml"; "$hoist" --progress quiet mirror -f "$tmp/mirror.yaml" --jobs 8; }
run_skopeo() { skopeo sync --all --src yaml --dest docker --dest-tls-verify=false "$tmp/skopeo.yaml" "$1"; }

for n in $(seq "$RUNS"); do
  start_registry "$tmp/dest-$n" && DEST="$REG"
  # Alternate which tool goes first.
  if [ $((n % 2)) -eq 1 ]; then order="hoist skopeo"; else order="skopeo hoist"; fi
  for tool in $order; do
    case $tool in
      hoist) timed cold hoist run_hoist "$DEST/hoist"; timed unchanged hoist run_hoist "$DEST/hoist" ;;
      skopeo) timed cold skopeo run_skopeo "$DEST/skopeo"; timed unchanged skopeo run_skopeo "$DEST/skopeo" ;;
    esac
  done
  echo "  round $n/$RUNS done" >&2
done

PYTHONPATH="$root/bench" python3 - "$results" "$IMAGES" <<'PY'
import statistics, sys
import report
rows = [l.split() for l in open(sys.argv[1])]
med = lambda s, t: statistics.median(float(r[2]) for r in rows if r[0] == s and r[1] == t)
targets = {"cold": 1.5, "unchanged": 5.0}
print(f"\n{sys.argv[2]} images x 3 tags (amd64+arm64 indexes), medians")
print(f"{'scenario':<12}{'hoist s':>10}{'skopeo s':>10}{'skopeo/hoist':>14}")
for s in ("cold", "unchanged"):
    h, k = med(s, "hoist"), med(s, "skopeo")
    r = k / h
    report.row("mirror.sh", f"{s}, {sys.argv[2]} images × 3 tags", "skopeo sync", h, k, targets[s])
    print(f"{s:<12}{h:>10.2f}{k:>10.2f}{r:>13.2f}x  target >={targets[s]}x: {'met' if r >= targets[s] else 'not met'}")
PY
