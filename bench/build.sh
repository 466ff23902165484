#!/usr/bin/env bash
# Benchmark (not a test): `hoist build --push` vs Docker's BuildKit (Debian's docker.io dockerd,
# started here) vs `buildah bud`, each building AND pushing the same node project to a local
# registry, measured in the same run on the same machine, tools alternating, medians of RUNS.
#
# Project: FROM a ~116 MB Debian minbase image (in the local registry) + COPY node_modules
# (~94 MB, ~9.3k files, pinned npm packages) + COPY src (200 generated files) + ENV/WORKDIR/CMD.
# Scenarios: cold (no caches anywhere), warm (caches kept, one source line changed), cache from
# the registry (empty runner, hoist --cache-from vs BuildKit inline cache), and "the limit"
# (tar | gzip -6 | sha256sum of the COPY'd trees). Prints ratios; never fails on a slow result.
#
#   bench/build.sh                       RUNS=3, inputs prepared once in ~/.cache/hoist-bench
#   RUNS=1 BENCH_CACHE=/tmp/hb bench/build.sh
#   SCENARIOS="cold limit" bench/build.sh
#   BUILDAH_DRIVER=vfs bench/build.sh    buildah's storage driver (default overlay)
#   HOIST_BIN=/path/to/hoist bench/build.sh   measure that binary (no cargo build)
set -euo pipefail

RUNS="${RUNS:-3}"
BENCH_CACHE="${BENCH_CACHE:-$HOME/.cache/hoist-bench}"
SCENARIOS="${SCENARIOS:-cold warm cachefrom limit}"
BUILDAH_DRIVER="${BUILDAH_DRIVER:-overlay}"
SRC_FILES=200

root="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
# HOIST_BIN: a hoist binary to measure instead of building target/release/hoist.
hoist="${HOIST_BIN:-$root/target/release/hoist}"
# Absolute paths: the `docker` first on PATH may be a different (newer) client.
DOCKERD=/usr/sbin/dockerd
DOCKER=/usr/bin/docker

[ "$(id -u)" -eq 0 ] || { echo "bench/build.sh: run as root (dockerd, buildah, debootstrap)" >&2; exit 1; }

# --- tools: install what is missing (Debian packages) --------------------------------------------
install_missing debootstrap=debootstrap buildah=buildah "$DOCKERD=docker.io" "$DOCKER=docker.io" \
  docker-registry=docker-registry npm=npm curl=curl python3=python3 unshare=util-linux

tmp="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  unmount_under "$tmp"
  rm -rf "$tmp"
}
# dockerd (overlay2) and buildah may leave mounts behind; rm -rf must not walk into them.
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -z "${HOIST_BIN:-}" ]; then
  echo "building hoist (release)..." >&2
  cargo build --release --quiet --manifest-path "$root/Cargo.toml"
fi

# --- pinned inputs, prepared once into $BENCH_CACHE -----------------------------------------------
mkdir -p "$BENCH_CACHE"
cache="$(cd "$BENCH_CACHE" && pwd)"

# (1) node_modules: fixed top-level versions, chosen to give ~94 MB (apparent) in ~9.3k files.
# --ignore-scripts: no install scripts, so the tree is only what the registry serves.
mkdir -p "$cache/npm"
cat >"$tmp/package.json" <<'EOF'
{"name": "bench-app", "version": "1.0.0", "private": true,
 "dependencies": {"typescript": "5.4.5", "rxjs": "7.8.1", "@babel/core": "7.24.5",
  "webpack": "5.91.0", "eslint": "8.57.0", "express": "4.19.2", "prettier": "3.2.5",
  "sass": "1.77.2", "@types/node": "20.12.12"}}
EOF
if ! cmp -s "$tmp/package.json" "$cache/npm/package.json" || [ ! -e "$cache/npm/.done" ]; then
  echo "preparing node_modules (npm install)..." >&2
  rm -rf "$cache/npm/node_modules" "$cache/npm/package-lock.json" "$cache/npm/.done"
  cp "$tmp/package.json" "$cache/npm/package.json"
  (cd "$cache/npm" && npm install --no-audit --no-fund --ignore-scripts --loglevel=error >&2)
  touch "$cache/npm/.done"
fi

# (2) 200 source files, deterministic (a fixed seed), ~3 KB each.
if [ ! -e "$cache/src/.done" ]; then
  rm -rf "$cache/src"
  python3 - "$cache/src" "$SRC_FILES" <<'EOF'
import os, random, sys
out, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(42)
os.makedirs(os.path.join(out, "lib"), exist_ok=True)
for i in range(n):
    name = "index.js" if i == 0 else os.path.join("lib", f"module{i:03}.js")
    lines = [f"'use strict';", f"// module {i}", "const _ = require('rxjs');", ""]
    for f in range(rng.randint(20, 40)):
        a, b = rng.randint(1, 999), rng.randint(1, 999)
        lines.append(f"exports.fn{f} = function fn{f}(x) {{ return (x * {a} + {b}) % {a + b}; }};")
    with open(os.path.join(out, name), "w") as fh:
        fh.write("\n".join(lines) + "\n")
EOF
  touch "$cache/src/.done"
fi

# (3) the base (bench/lib.sh).
prepare_base "$cache"
rm -rf "$cache/base/oci" "$cache/base/Dockerfile"  # left by an earlier version of this script

# --- the local registry ------------------------------------------------------------------------
start_registry "$tmp/registry"
HOIST_TEST_LOOPBACK_ONLY=1 "$hoist" --progress quiet copy "oci:$cache/base/layout:bookworm" "$REG/base:bookworm" >&2

# --- the build context: a copy, since scenarios append lines to source files --------------------
ctx="$tmp/ctx"
mkdir -p "$ctx"
cp -a "$cache/npm/node_modules" "$ctx/node_modules"
cp -a "$cache/src" "$ctx/src"
rm -f "$ctx/src/.done"
cat >"$ctx/Dockerfile" <<EOF
FROM $REG/base:bookworm
ENV NODE_ENV=production PORT=8080
WORKDIR /app
COPY node_modules /app/node_modules
COPY src /app/src
LABEL org.opencontainers.image.title=bench-app
EXPOSE 8080
CMD ["node", "/app/src/index.js"]
EOF
edits=0
edit_src() { # a one-line change, to a different file each time
  edits=$((edits + 1))
  echo "exports.edit$edits = $edits;" >>"$ctx/src/lib/module$(printf %03d $((edits % (SRC_FILES - 1) + 1))).js"
}

# --- dockerd: start_dockerd, stop_dockerd and dk come from bench/lib.sh --------------------------
# A fresh daemon, not just `builder prune` + `image rm`: dockerd keeps, per layer, the
# repositories it pushed it to (v2 metadata) and would mount a cold run's layers from the
# previous run's repository instead of uploading them. A new data root forgets everything.

# --- buildah: storage and blob-info cache in a directory of ours --------------------------------
# As root, containers/image keeps its blob-info cache (which blob went to which repository, used
# to mount instead of upload) in /var/lib/containers/cache whatever --root says; a private mount
# namespace puts our directory there, leaving the system cache untouched.
run_buildah() { # state-dir image
  mkdir -p "$1/root" "$1/run" "$1/bic"
  unshare -m --propagation private bash -c '
    set -e
    state=$1 image=$2 driver=$3 ctx=$4
    mount --bind "$state/bic" /var/lib/containers/cache
    b() { buildah --root "$state/root" --runroot "$state/run" --storage-driver "$driver" "$@"; }
    b bud --isolation chroot --layers --tls-verify=false -t "$image" "$ctx"
    b push --tls-verify=false "$image" "docker://$image"
  ' _ "$1" "$2" "$BUILDAH_DRIVER" "$ctx"
}

# --- the three build+push commands --------------------------------------------------------------
# --json: one result line with hoist's cache counters (layers reused/built), for the report.
run_hoist() { # cache-dir image [extra flags]
  HOIST_CACHE_DIR="$1" HOIST_TEST_LOOPBACK_ONLY=1 "$hoist" --progress quiet --json build "$ctx" -t "$2" --push "${@:3}"
}
# The same with SOURCE_DATE_EPOCH=0. Without it, COPY's layer holds its parent directory (/app)
# stamped with the build's time, as BuildKit's does, so its bytes, and so hoist's content-keyed
# layer cache, change on every build; this shows what the cache does when layers can match.
run_hoist_sde() { SOURCE_DATE_EPOCH=0 run_hoist "$@"; }
run_docker() { # image [extra flags]
  dk build --network host --progress plain -t "$1" "${@:2}" "$ctx" && dk push "$1"
}

results="$tmp/results.txt"
: >"$results"
logs="$tmp/logs"
mkdir -p "$logs"
# timed SCENARIO TOOL IMAGE command...: wall time of build+push, then a check that the manifest
# is in the registry. A failure is recorded (and its log shown), the benchmark goes on.
timed() {
  local scen="$1" tool="$2" image="$3" log t0 t1 repo tag
  log="$logs/$scen-$tool-$(date +%s%N).log"
  t0="$(date +%s.%N)"
  if ! "${@:4}" >"$log" 2>&1; then
    echo "FAILED: $scen/$tool ($image); last lines of its output:" >&2
    tail -15 "$log" >&2
    echo "$scen $tool fail" >>"$results"
    return 0
  fi
  t1="$(date +%s.%N)"
  repo="${image#"$REG"/}"; tag="${repo##*:}"; repo="${repo%:*}"
  # The pushed manifest's layer sizes, to show that every tool pushed a comparable image.
  if ! size="$(curl -fsS \
      -H 'Accept: application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json' \
      "http://$REG/v2/$repo/manifests/$tag" |
      python3 -c 'import json, sys; print(sum(l["size"] for l in json.load(sys.stdin)["layers"]))')"; then
    echo "FAILED: $scen/$tool said ok but $image is not in the registry" >&2
    echo "$scen $tool fail" >>"$results"
    return 0
  fi
  local counters=""
  case $tool in hoist*) counters="$(grep '^{' "$log" | tail -1 | python3 -c '
import json, sys
c = json.load(sys.stdin).get("cache", {})
reused, built = c.get("layers_reused", 0), c.get("layers_built", 0)
print(f"{reused}/{reused + built}")' || true)" ;;
  esac
  echo "$scen $tool $(python3 -c "print($t1 - $t0)") $size $counters" >>"$results"
}
# untimed LOGNAME command...: a priming step; a failure is shown and the benchmark goes on.
untimed() {
  if ! "${@:2}" >"$logs/$1.log" 2>&1; then
    echo "FAILED (untimed step $1); last lines of its output:" >&2
    tail -15 "$logs/$1.log" >&2
  fi
}
# Round n runs the tools in a rotated order, so none always goes first (or last).
order() { local t=(hoist buildkit buildah); local k=$(($1 % 3)); echo "${t[@]:k} ${t[@]:0:k}"; }
has() { case " $SCENARIOS " in *" $1 "*) return 0 ;; esac; return 1; }

echo "context: $(du -sm --apparent-size "$ctx/node_modules" | cut -f1) MB in $(find "$ctx/node_modules" -type f | wc -l) node_modules files + $(find "$ctx/src" -type f | wc -l) src files; base $(du -m "$cache/base/rootfs.tar" | cut -f1) MB tar; registry $REG; RUNS=$RUNS" >&2

# --- 1. cold: no caches anywhere, a fresh repository each run -----------------------------------
if has cold; then
  for n in $(seq "$RUNS"); do
    for tool in $(order "$n"); do
      case $tool in
        hoist) timed cold hoist "$REG/bench/hoist-cold-$n:latest" run_hoist "$tmp/hc-cold-$n" "$REG/bench/hoist-cold-$n:latest"
               rm -rf "$tmp/hc-cold-$n" ;;
        buildkit) start_dockerd
                  timed cold buildkit "$REG/bench/docker-cold-$n:latest" run_docker "$REG/bench/docker-cold-$n:latest"
                  stop_dockerd ;;
        buildah) timed cold buildah "$REG/bench/buildah-cold-$n:latest" run_buildah "$tmp/bh-cold-$n" "$REG/bench/buildah-cold-$n:latest"
                 unmount_under "$tmp/bh-cold-$n"; rm -rf "$tmp/bh-cold-$n" ;;
      esac
    done
    echo "  cold: round $n/$RUNS done" >&2
  done
fi

# --- 2. warm: caches kept, one source line changed before each round -----------------------------
# Pushes go to one repository per tool (a new tag each round), as a CI pipeline would.
if has warm; then
  echo "  warm: priming each tool's cache (untimed)..." >&2
  start_dockerd
  untimed warm-prime-hoist run_hoist "$tmp/hc-warm" "$REG/bench/hoist-warm:0"
  untimed warm-prime-hoist-sde run_hoist_sde "$tmp/hc-sde-warm" "$REG/bench/hoist-sde-warm:0"
  untimed warm-prime-docker run_docker "$REG/bench/docker-warm:0"
  untimed warm-prime-buildah run_buildah "$tmp/bh-warm" "$REG/bench/buildah-warm:0"
  for n in $(seq "$RUNS"); do
    edit_src
    for tool in $(order "$n"); do
      case $tool in
        hoist) timed warm hoist "$REG/bench/hoist-warm:$n" run_hoist "$tmp/hc-warm" "$REG/bench/hoist-warm:$n"
               timed warm hoist-sde0 "$REG/bench/hoist-sde-warm:$n" run_hoist_sde "$tmp/hc-sde-warm" "$REG/bench/hoist-sde-warm:$n" ;;
        buildkit) timed warm buildkit "$REG/bench/docker-warm:$n" run_docker "$REG/bench/docker-warm:$n" ;;
        buildah) timed warm buildah "$REG/bench/buildah-warm:$n" run_buildah "$tmp/bh-warm" "$REG/bench/buildah-warm:$n" ;;
      esac
    done
    echo "  warm: round $n/$RUNS done" >&2
  done
  stop_dockerd
  unmount_under "$tmp/bh-warm"; rm -rf "$tmp/bh-warm" "$tmp/hc-warm" "$tmp/hc-sde-warm"
fi

# --- 3. an empty runner with a cache in the registry ----------------------------------------------
# The caches are written once from the current sources; every round then changes one line and
# builds on an empty runner: hoist with a new HOIST_CACHE_DIR and --cache-from the artifact a
# previous hoist run wrote with --cache-to; BuildKit on a fresh dockerd with --cache-from an
# image built with BUILDKIT_INLINE_CACHE=1. Fresh repositories each run. (buildah: not run.)
if has cachefrom; then
  echo "  cache from registry: writing the caches (untimed)..." >&2
  untimed cachefrom-prime-hoist run_hoist "$tmp/hc-src" "$REG/bench/hoist-cachesrc:latest" \
    --cache-to "$REG/bench/cache:latest"
  untimed cachefrom-prime-hoist-sde run_hoist_sde "$tmp/hc-src-sde" "$REG/bench/hoist-sde-cachesrc:latest" \
    --cache-to "$REG/bench/cache-sde:latest"
  rm -rf "$tmp/hc-src" "$tmp/hc-src-sde"
  start_dockerd
  untimed cachefrom-prime-docker run_docker "$REG/bench/app:cachesrc" --build-arg BUILDKIT_INLINE_CACHE=1
  stop_dockerd
  for n in $(seq "$RUNS"); do
    edit_src
    for tool in $(order "$n"); do
      case $tool in
        hoist) timed cachefrom hoist "$REG/bench/hoist-cf-$n:latest" run_hoist "$tmp/hc-cf-$n" \
                 "$REG/bench/hoist-cf-$n:latest" --cache-from "$REG/bench/cache:latest"
               rm -rf "$tmp/hc-cf-$n"
               timed cachefrom hoist-sde0 "$REG/bench/hoist-sde-cf-$n:latest" run_hoist_sde "$tmp/hc-sde-cf-$n" \
                 "$REG/bench/hoist-sde-cf-$n:latest" --cache-from "$REG/bench/cache-sde:latest"
               rm -rf "$tmp/hc-sde-cf-$n" ;;
        buildkit) start_dockerd
                  timed cachefrom buildkit "$REG/bench/docker-cf-$n:latest" run_docker \
                    "$REG/bench/docker-cf-$n:latest" --cache-from "$REG/bench/app:cachesrc"
                  stop_dockerd ;;
      esac
    done
    echo "  cache from registry: round $n/$RUNS done" >&2
  done
fi

# --- 4. the limit: compress and hash the new bytes alone ----------------------------------------
if has limit; then
  timed_limit() { # label compressor...
    local t0 t1
    t0="$(date +%s.%N)"
    tar -C "$ctx" -cf - node_modules src | "${@:2}" | sha256sum >/dev/null
    t1="$(date +%s.%N)"
    echo "limit $1 $(python3 -c "print($t1 - $t0)")" >>"$results"
  }
  for n in $(seq "$RUNS"); do
    timed_limit gzip gzip -6
    if command -v pigz >/dev/null; then timed_limit pigz pigz -6; fi
  done
fi

# --- report -------------------------------------------------------------------------------------
tar -C "$ctx" -cf - node_modules src | wc -c >"$tmp/newbytes"
PYTHONPATH="$root/bench" python3 - "$results" "$(cat "$tmp/newbytes")" "$(nproc)" <<'EOF'
import report
import statistics, sys
from collections import defaultdict

times, failed, sizes, counters = defaultdict(list), defaultdict(int), {}, defaultdict(list)
for line in open(sys.argv[1]):
    scen, tool, t, *rest = line.split()
    if t == "fail":
        failed[scen, tool] += 1
    else:
        times[scen, tool].append(float(t))
        if rest:
            sizes[scen, tool] = int(rest[0])
        if len(rest) > 1:
            counters[scen, tool].append(rest[1])
newbytes, cores = int(sys.argv[2]), int(sys.argv[3])
med = {k: statistics.median(v) for k, v in times.items()}

def cell(key):
    if key not in med:
        return f"{'failed' if failed[key] else '-':>10}", "all runs failed" if failed[key] else ""
    runs = " ".join(f"{t:.2f}" for t in times[key])
    if counters[key]:
        runs += f"  (layers reused/total: {' '.join(counters[key])})"
    if failed[key]:
        runs += f" ({failed[key]} failed)"
    return f"{med[key]:10.2f}", runs

# image MB: the compressed layers in the pushed manifest (base included), last run.
titles = {"cold": "1. cold (build+push)", "warm": "2. warm, 1 line changed",
          "cachefrom": "3. empty runner, cache from registry"}
# targets: (scenario, peer) -> minimum peer_time / hoist_time
targets = {("cold", "buildkit"): 5, ("cold", "buildah"): 5, ("warm", "buildkit"): 3,
           ("warm", "buildah"): 10}
verdicts = []
print(f"\n{'scenario':38}{'tool':12}{'median s':>10}{'peer/hoist':>12}{'image MB':>10}   runs (s)")
for scen, title in titles.items():
    tools = [t for t in ("hoist", "buildkit", "buildah", "hoist-sde0")
             if (scen, t) in med or failed[scen, t]]
    if not tools:
        continue
    for i, tool in enumerate(tools):
        m, runs = cell((scen, tool))
        ratio = ""
        if tool in ("buildkit", "buildah") and (scen, tool) in med and (scen, "hoist") in med:
            r = med[scen, tool] / med[scen, "hoist"]
            ratio = f"{r:.2f}x"
            report.row("build.sh", titles[scen][3:], tool, med[scen, "hoist"], med[scen, tool],
                       targets.get((scen, tool)))
            if (scen, tool) in targets:
                goal = targets[scen, tool]
                verdicts.append(f"{scen}: hoist vs {tool}: {r:.2f}x (target >={goal}x: "
                                f"{'met' if r >= goal else 'not met'})")
        elif (scen, tool) in targets:
            verdicts.append(f"{scen}: hoist vs {tool}: no ratio (a tool failed): not met")
        mb = f"{sizes[scen, tool] / 1e6:.1f}" if (scen, tool) in sizes else ""
        print(f"{title if i == 0 else '':38}{tool:12}{m}{ratio:>12}{mb:>10}   {runs}")
if any(k[0] == "limit" for k in times):
    title = f"4. limit: tar|gzip -6|sha256, {newbytes / 1e6:.0f} MB"
    for i, tool in enumerate(t for t in ("gzip", "pigz") if ("limit", t) in med):
        m, runs = cell(("limit", tool))
        name = "gzip" if tool == "gzip" else f"pigz({cores})"
        print(f"{title if i == 0 else '':38}{name:12}{m}{'':>22}   {runs}")
print()
for scen in ("cold", "warm"):
    if (scen, "hoist") in med and ("limit", "gzip") in med:
        report.row("build.sh", f"{scen} vs the limit", "gzip -6 + sha256 of the new bytes",
                   med[scen, "hoist"], med["limit", "gzip"])
        print(f"{scen}: hoist build+push takes {med[scen, 'hoist'] / med['limit', 'gzip']:.2f}x the time"
              f" of one gzip -6 + sha256 stream over the {newbytes / 1e6:.0f} MB of new bytes")
for v in verdicts:
    print(v)
for scen in ("warm", "cachefrom"):
    if (scen, "hoist-sde0") in med and (scen, "buildkit") in med:
        print(f"{scen}, info: with SOURCE_DATE_EPOCH=0 hoist takes {med[scen, 'hoist-sde0']:.2f} s:"
              f" buildkit/hoist {med[scen, 'buildkit'] / med[scen, 'hoist-sde0']:.2f}x", end="")
        if (scen, "buildah") in med:
            print(f", buildah/hoist {med[scen, 'buildah'] / med[scen, 'hoist-sde0']:.2f}x", end="")
        print()
EOF
