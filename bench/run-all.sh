#!/usr/bin/env bash
# All benchmarks in one run, on the binary the release ships (static, musl), then one markdown
# table of hoist against BuildKit, buildah and skopeo with the machine it ran on:
# bench/results.md (and stdout). Run as root. RUNS (default 3) goes to every benchmark;
# BENCHES picks some of: copy compression build run mirror.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
target=x86_64-unknown-linux-musl
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
install_missing musl-gcc=musl-tools
rustup target list --installed | grep -qx "$target" || rustup target add "$target" >&2
echo "building hoist (release, $target)..." >&2
cargo build --release --quiet --target "$target" --manifest-path "$root/Cargo.toml"
export HOIST_BIN="$root/target/$target/release/hoist"
export RUNS="${RUNS:-3}"
export BENCH_REPORT
BENCH_REPORT="$(mktemp)"
trap 'rm -f "$BENCH_REPORT"' EXIT
for bench in ${BENCHES:-copy compression build run mirror}; do
  echo "=== bench/$bench.sh" >&2
  "$root/bench/$bench.sh" >&2 || echo "bench/$bench.sh failed; its rows are missing" >&2
done
python3 "$root/bench/report.py" "$BENCH_REPORT" | tee "$root/bench/results.md"
