"""Benchmark results as rows for bench/run-all.sh's markdown table.

Each benchmark's summary calls row(); with BENCH_REPORT set, the row is appended to that file
(JSON lines). `python3 bench/report.py FILE` prints the table, with the machine it ran on.
"""
import json
import os
import platform
import subprocess
import sys


def row(bench, scenario, peer, hoist_s, peer_s, target=None):
    """One comparison: hoist's and a peer's median seconds; target = minimum peer/hoist."""
    path = os.environ.get("BENCH_REPORT")
    if not path:
        return
    with open(path, "a") as f:
        f.write(json.dumps({"bench": bench, "scenario": scenario, "peer": peer,
                            "hoist_s": hoist_s, "peer_s": peer_s, "target": target}) + "\n")


def machine():
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.machine())
    mem_kb = next(int(line.split()[1]) for line in open("/proc/meminfo")
                  if line.startswith("MemTotal"))
    try:
        distro = next(line.split("=", 1)[1].strip().strip('"') for line in open("/etc/os-release")
                      if line.startswith("PRETTY_NAME="))
    except (OSError, StopIteration):
        distro = "unknown"
    hoist = subprocess.run(["git", "log", "-1", "--format=%h %cs"], capture_output=True,
                           text=True).stdout.strip()
    return (f"{os.cpu_count()} × {cpu}, {mem_kb / 2**20:.1f} GiB RAM, {distro}, "
            f"Linux {platform.release()}; hoist {hoist}")


def table(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    out = [f"Machine: {machine()}", "",
           "| benchmark | scenario | peer | hoist s | peer s | peer/hoist | target |",
           "|---|---|---|---|---|---|---|"]
    cell = lambda text: str(text).replace("|", "\\|")
    for r in rows:
        ratio = r["peer_s"] / r["hoist_s"] if r["hoist_s"] else float("inf")
        target = "" if r["target"] is None else (
            f"≥{r['target']}× {'met' if ratio >= r['target'] else 'not met'}")
        out.append(f"| {r['bench']} | {cell(r['scenario'])} | {cell(r['peer'])} | {r['hoist_s']:.2f} | "
                   f"{r['peer_s']:.2f} | {ratio:.2f}× | {target} |")
    return "\n".join(out)


if __name__ == "__main__":
    print(table(sys.argv[1]))
