#!/usr/bin/env bash
# Benchmark (not a test): Dockerfile RUN steps. `hoist build --push` (isolation chroot) vs Docker's
# BuildKit (Debian's docker.io dockerd, started here) vs `buildah bud --isolation chroot`, each
# building AND pushing the same image to a local registry, measured in the same run on the same
# machine, tools alternating, medians of RUNS. Never fails on a slow result.
#
# Image: FROM the ~116 MB Debian minbase base of bench/build.sh (in the local registry), COPY a
# ~50 MB tar.gz (~10k small files, deterministic), then 10 file-heavy RUN steps using only the
# minbase's tools: untar it, delete half the files, chmod -R the tree, generate 3000 files, sed
# in place, tar a tree, cp -a / mv subtrees, truncate, chown -R (then a digest of the resulting
# trees, which the script compares across tools: all must agree), and a last, small step.
# Scenarios: cold (no caches anywhere) and warm (caches kept; a build-arg that only the LAST RUN
# sees changes before each round, so the first nine RUNs are cache hits).
# Targets (from the issue): hoist at least as fast as BuildKit cold, >=3x faster warm.
#
#   bench/run.sh                         RUNS=3, inputs prepared once in ~/.cache/hoist-bench
#   RUNS=1 bench/run.sh
#   SCENARIOS=warm bench/run.sh          any of: cold warm
#   BUILDAH_DRIVER=vfs bench/run.sh      buildah's storage driver (default overlay)
#   HOIST_BIN=/path/to/hoist bench/run.sh   measure that binary (no cargo build)
#   BENCH_LOGS=/tmp/run-logs bench/run.sh    keep every build's output there
#
# The tool handling (registry, private dockerd, buildah storage) follows bench/build.sh; the base
# is prepared exactly as there (same recipes, same cache), so either script reuses the other's.
set -euo pipefail

RUNS="${RUNS:-3}"
BENCH_CACHE="${BENCH_CACHE:-$HOME/.cache/hoist-bench}"
SCENARIOS="${SCENARIOS:-cold warm}"
BUILDAH_DRIVER="${BUILDAH_DRIVER:-overlay}"

root="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
hoist="${HOIST_BIN:-$root/target/release/hoist}"
# Absolute paths: the `docker` first on PATH may be a different (newer) client.
DOCKERD=/usr/sbin/dockerd
DOCKER=/usr/bin/docker

[ "$(id -u)" -eq 0 ] || { echo "bench/run.sh: run as root (hoist RUN, dockerd, buildah, debootstrap)" >&2; exit 1; }

# --- tools: install what is missing (Debian packages) --------------------------------------------
install_missing debootstrap=debootstrap buildah=buildah "$DOCKERD=docker.io" "$DOCKER=docker.io" \
  docker-registry=docker-registry curl=curl python3=python3 unshare=util-linux

tmp="$(mktemp -d)"
pids=()
cleanup() {
  if [ -n "${BENCH_LOGS:-}" ] && [ -d "$tmp/logs" ]; then mkdir -p "$BENCH_LOGS" && cp -a "$tmp/logs/." "$BENCH_LOGS/"; fi
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  unmount_under "$tmp"
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -z "${HOIST_BIN:-}" ]; then
  echo "building hoist (release)..." >&2
  cargo build --release --quiet --manifest-path "$root/Cargo.toml"
fi

# --- pinned inputs, prepared once into $BENCH_CACHE -----------------------------------------------
mkdir -p "$BENCH_CACHE"
cache="$(cd "$BENCH_CACHE" && pwd)"

# (1) the base, as bench/build.sh makes it (bench/lib.sh).
prepare_base "$cache"

# (2) the archive the RUN steps unpack: ~50 MB tar.gz of 10,240 files (1-12 KB; a fifth text,
# the rest mostly incompressible) in 32 dirs x 4 subdirs, plus symlinks and hard links; fixed
# seed, owner and mtime, so the same bytes on every machine. A new recipe remakes it.
data_recipe="run-data v1: 32x4x80 files, seed 20240601"
if [ "$(cat "$cache/run/recipe" 2>/dev/null)" != "$data_recipe" ] || [ ! -e "$cache/run/data.tar.gz" ]; then
  echo "preparing the RUN benchmark's archive..." >&2
  mkdir -p "$cache/run"
  rm -f "$cache/run/data.tar.gz" "$cache/run/recipe"
  python3 - "$cache/run/data.tar.gz.partial" <<'EOF'
import gzip, io, random, sys, tarfile
out = sys.argv[1]
rng = random.Random(20240601)
words = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor".split()
buf = io.BytesIO()

def add(tar, name, kind=tarfile.REGTYPE, data=b"", mode=0o644, link=""):
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname = kind, mode, 1700000000, 0, 0, "root", "root"
    ti.linkname, ti.size = link, len(data)
    tar.addfile(ti, io.BytesIO(data) if kind == tarfile.REGTYPE else None)

with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
    for d in range(32):
        for s in range(4):
            sub = f"d{d:02}/s{s}"
            if s == 0:
                add(tar, f"d{d:02}", tarfile.DIRTYPE, mode=0o755)
            add(tar, sub, tarfile.DIRTYPE, mode=0o755)
            for f in range(80):
                n = rng.randint(1024, 12 * 1024)
                if f % 5 == 0:
                    text = []
                    while sum(map(len, text)) < n:
                        text.append(" ".join(rng.choice(words) for _ in range(12)) + "\n")
                    add(tar, f"{sub}/f{f:04}.txt", data="".join(text)[:n].encode())
                else:
                    add(tar, f"{sub}/f{f:04}.dat", data=rng.randbytes(n - n // 8) + b"x" * (n // 8))
            add(tar, f"{sub}/link-a", tarfile.SYMTYPE, link="f0001.dat")
            add(tar, f"{sub}/link-b", tarfile.SYMTYPE, link="f0002.dat")
            add(tar, f"{sub}/hard-a", tarfile.LNKTYPE, link=f"{sub}/f0003.dat")
            add(tar, f"{sub}/hard-b", tarfile.LNKTYPE, link=f"{sub}/f0004.dat")
with open(out, "wb") as f:
    f.write(gzip.compress(buf.getvalue(), compresslevel=6, mtime=0))
EOF
  mv "$cache/run/data.tar.gz.partial" "$cache/run/data.tar.gz"
  echo "$data_recipe" >"$cache/run/recipe"
fi

# --- the local registry ------------------------------------------------------------------------
start_registry "$tmp/registry"
HOIST_TEST_LOOPBACK_ONLY=1 "$hoist" --progress quiet copy "oci:$cache/base/layout:bookworm" "$REG/base:bookworm" >&2

# --- the build context: the archive and the Dockerfile ------------------------------------------
# Only the last RUN sees STAMP (an ARG is in the environment, and so in the cache key, of every
# RUN after its declaration): changing --build-arg STAMP=... invalidates that step alone.
ctx="$tmp/ctx"
mkdir -p "$ctx"
cp "$cache/run/data.tar.gz" "$ctx/data.tar.gz"
cat >"$ctx/Dockerfile" <<EOF
FROM $REG/base:bookworm
COPY data.tar.gz /tmp/data.tar.gz
# 1. untar the archive (~10k files, ~65 MB)
RUN mkdir /data && tar -xzf /tmp/data.tar.gz -C /data && rm /tmp/data.tar.gz
# 2. delete half of the files (the even-numbered ones)
RUN find /data -type f -name 'f*[02468].*' -delete
# 3. chmod the tree: every remaining file and directory changes mode
RUN chmod -R g+w,o-rwx /data
# 4. 3000 small generated files
RUN mkdir /gen && cd /gen && for i in \$(seq 3000); do echo "generated file \$i" >"g\$i.txt"; done
# 5. edit the text files in place
RUN find /data -name '*.txt' -exec sed -i 's/lorem/LOREM/g' {} +
# 6. tar a tree, then delete part of it
RUN tar -C /gen -cf /opt/gen.tar . && rm -f /gen/g1*.txt
# 7. copy a subtree, rename another
RUN cp -a /data/d00 /data/d00-copy && mv /data/d01 /data/d01-moved
# 8. truncate files, tighten directories, add a link
RUN find /data -type f -name '*1.dat' -exec truncate -s 1000 {} + && find /data -type d -name s3 -exec chmod 0700 {} + && ln -s /data/d02 /data-d02
# 9. chown two subtrees; then a digest of the resulting trees (the script compares it across tools)
RUN chown -R 1000:1000 /data/d03 /data/d04 && cd / && { find data gen -printf '%y %m %U:%G %p %l\n' | LC_ALL=C sort; find data gen -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum; } | sha256sum | cut -c1-16 >/tree.sha256
ARG STAMP=0
# 10. the only step that sees STAMP: small files
RUN echo "build \$STAMP" >/stamp && mkdir -p /etc/app && seq 200 | sed 's/.*/key&=value&/' >/etc/app/config
EOF

# --- dockerd: start_dockerd, stop_dockerd and dk come from bench/lib.sh --------------------------

# --- the three build+push commands, each with STAMP as its argument -----------------------------
# buildah: storage and blob-info cache in a directory of ours (a private mount namespace puts it
# over /var/lib/containers/cache, the system one is untouched; see bench/build.sh).
run_buildah() { # state-dir image stamp
  mkdir -p "$1/root" "$1/run" "$1/bic"
  unshare -m --propagation private bash -c '
    set -e
    state=$1 image=$2 stamp=$3 driver=$4 ctx=$5
    mount --bind "$state/bic" /var/lib/containers/cache
    b() { buildah --root "$state/root" --runroot "$state/run" --storage-driver "$driver" "$@"; }
    b bud --isolation chroot --layers --tls-verify=false --build-arg "STAMP=$stamp" -t "$image" "$ctx"
    b push --tls-verify=false "$image" "docker://$image"
  ' _ "$1" "$2" "$3" "$BUILDAH_DRIVER" "$ctx"
}
# --json: one result line with hoist's cache counters (layers reused/built), for the report.
run_hoist() { # cache-dir image stamp
  HOIST_CACHE_DIR="$1" HOIST_TEST_LOOPBACK_ONLY=1 "$hoist" --progress quiet --json build "$ctx" \
    -t "$2" --push --isolation chroot --build-arg "STAMP=$3"
}
run_docker() { # image stamp
  dk build --network host --progress plain --build-arg "STAMP=$2" -t "$1" "$ctx" && dk push "$1"
}

results="$tmp/results.txt"
: >"$results"
logs="$tmp/logs"
mkdir -p "$logs"
# Reads the pushed image back from the registry: its compressed layer total, its layer count and
# /tree.sha256 (the digest of /data and /gen that RUN 9 wrote; looked for from the top layer
# down), to check that every tool pushed the same result.
image_facts() { # repo tag
  python3 - "$REG" "$1" "$2" <<'EOF'
import io, json, sys, tarfile, urllib.request
reg, repo, tag = sys.argv[1:]
accept = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"
req = urllib.request.Request(f"http://{reg}/v2/{repo}/manifests/{tag}", headers={"Accept": accept})
layers = json.load(urllib.request.urlopen(req))["layers"]
tree = "?"
for layer in reversed(layers):
    blob = urllib.request.urlopen(f"http://{reg}/v2/{repo}/blobs/{layer['digest']}").read()
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:*") as t:
        for m in t:
            if m.name.lstrip("./") == "tree.sha256" and m.isfile():
                tree = t.extractfile(m).read().decode().strip()
    if tree != "?":
        break
print(sum(l["size"] for l in layers), len(layers), tree)
EOF
}
# timed SCENARIO TOOL IMAGE command...: wall time of build+push, then the image's facts. A failure
# is recorded (and its log shown), the benchmark goes on.
timed() {
  local scen="$1" tool="$2" image="$3" log t0 t1 repo tag facts counters=""
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
  if ! facts="$(image_facts "$repo" "$tag")"; then
    echo "FAILED: $scen/$tool said ok but $image cannot be read back from the registry" >&2
    echo "$scen $tool fail" >>"$results"
    return 0
  fi
  if [ "$tool" = hoist ]; then
    counters="$(grep '^{' "$log" | tail -1 | python3 -c '
import json, sys
c = json.load(sys.stdin).get("cache", {})
reused, built = c.get("layers_reused", 0), c.get("layers_built", 0)
print(f"{reused}/{reused + built}")' || true)"
  fi
  echo "$scen $tool $(python3 -c "print($t1 - $t0)") $facts $counters" >>"$results"
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

echo "context: $(du -m "$ctx/data.tar.gz" | cut -f1) MB archive of $(tar -tzf "$ctx/data.tar.gz" | wc -l) entries; base $(du -m "$cache/base/rootfs.tar" | cut -f1) MB tar; registry $REG; RUNS=$RUNS" >&2

# --- 1. cold: no caches anywhere, a fresh repository each run -----------------------------------
if has cold; then
  for n in $(seq "$RUNS"); do
    for tool in $(order "$n"); do
      case $tool in
        hoist) timed cold hoist "$REG/run/hoist-cold-$n:latest" run_hoist "$tmp/hc-cold-$n" "$REG/run/hoist-cold-$n:latest" 0
               unmount_under "$tmp/hc-cold-$n"; rm -rf "$tmp/hc-cold-$n" ;;
        buildkit) start_dockerd
                  timed cold buildkit "$REG/run/docker-cold-$n:latest" run_docker "$REG/run/docker-cold-$n:latest" 0
                  stop_dockerd ;;
        buildah) timed cold buildah "$REG/run/buildah-cold-$n:latest" run_buildah "$tmp/bh-cold-$n" "$REG/run/buildah-cold-$n:latest" 0
                 unmount_under "$tmp/bh-cold-$n"; rm -rf "$tmp/bh-cold-$n" ;;
      esac
    done
    echo "  cold: round $n/$RUNS done" >&2
  done
fi

# --- 2. warm: caches kept, only the last RUN invalidated before each round ------------------------
# Pushes go to one repository per tool (a new tag each round), as a CI pipeline would.
if has warm; then
  echo "  warm: priming each tool's cache (untimed)..." >&2
  start_dockerd
  untimed warm-prime-hoist run_hoist "$tmp/hc-warm" "$REG/run/hoist-warm:0" 0
  untimed warm-prime-docker run_docker "$REG/run/docker-warm:0" 0
  untimed warm-prime-buildah run_buildah "$tmp/bh-warm" "$REG/run/buildah-warm:0" 0
  for n in $(seq "$RUNS"); do
    for tool in $(order "$n"); do
      case $tool in
        hoist) timed warm hoist "$REG/run/hoist-warm:$n" run_hoist "$tmp/hc-warm" "$REG/run/hoist-warm:$n" "$n" ;;
        buildkit) timed warm buildkit "$REG/run/docker-warm:$n" run_docker "$REG/run/docker-warm:$n" "$n" ;;
        buildah) timed warm buildah "$REG/run/buildah-warm:$n" run_buildah "$tmp/bh-warm" "$REG/run/buildah-warm:$n" "$n" ;;
      esac
    done
    echo "  warm: round $n/$RUNS done" >&2
  done
  stop_dockerd
  unmount_under "$tmp/bh-warm"; unmount_under "$tmp/hc-warm"; rm -rf "$tmp/bh-warm" "$tmp/hc-warm"
fi

# --- report -------------------------------------------------------------------------------------
PYTHONPATH="$root/bench" python3 - "$results" <<'EOF'
import report
import statistics, sys
from collections import defaultdict

times, failed, facts, counters = defaultdict(list), defaultdict(int), {}, defaultdict(list)
trees = defaultdict(set)
for line in open(sys.argv[1]):
    scen, tool, t, *rest = line.split()
    if t == "fail":
        failed[scen, tool] += 1
        continue
    times[scen, tool].append(float(t))
    size, nlayers, tree = rest[:3]
    facts[scen, tool] = (int(size), int(nlayers))
    trees[tool].add(tree)
    if len(rest) > 3:
        counters[scen, tool].append(rest[3])
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

titles = {"cold": "1. cold (build+push)", "warm": "2. warm, last RUN changed"}
# targets: (scenario, peer) -> minimum peer_time / hoist_time; buildah's ratios are info only
targets = {("cold", "buildkit"): 1, ("warm", "buildkit"): 3}
verdicts = []
print(f"\n{'scenario':30}{'tool':10}{'median s':>10}{'peer/hoist':>12}{'image MB':>10}{'layers':>8}   runs (s)")
for scen, title in titles.items():
    tools = [t for t in ("hoist", "buildkit", "buildah") if (scen, t) in med or failed[scen, t]]
    for i, tool in enumerate(tools):
        m, runs = cell((scen, tool))
        ratio = ""
        if tool != "hoist" and (scen, tool) in med and (scen, "hoist") in med:
            r = med[scen, tool] / med[scen, "hoist"]
            ratio = f"{r:.2f}x"
            report.row("run.sh", titles[scen][3:], tool, med[scen, "hoist"], med[scen, tool],
                       targets.get((scen, tool)))
            if (scen, tool) in targets:
                goal = targets[scen, tool]
                verdicts.append(f"{scen}: hoist vs {tool}: {r:.2f}x (target >={goal}x: "
                                f"{'met' if r >= goal else 'not met'})")
        elif (scen, tool) in targets:
            verdicts.append(f"{scen}: hoist vs {tool}: no ratio (a tool failed): not met")
        mb, nl = (f"{facts[scen, tool][0] / 1e6:.1f}", str(facts[scen, tool][1])) if (scen, tool) in facts else ("", "")
        print(f"{title if i == 0 else '':30}{tool:10}{m}{ratio:>12}{mb:>10}{nl:>8}   {runs}")
print()
for v in verdicts:
    print(v)
# Every tool's RUN 9 wrote a digest of /data and /gen (names, types, modes, owners, link
# targets, file contents) into /tree.sha256; the tools must agree.
shown = ", ".join(f"{t}={'/'.join(sorted(v))}" for t, v in sorted(trees.items()))
agree = len(set().union(*trees.values())) == 1 if trees else False
print(f"result check (/tree.sha256 of each pushed image): {shown}: {'same' if agree else 'DIFFERENT'}")
EOF
