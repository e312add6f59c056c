#!/usr/bin/env bash
# The command line against the tools people use (issue 15), with hyperfine:
#   walk: `morsel walk --type f --name '*.h' DIR` against
#         `find DIR -type f -name '*.h'` and `fdfind -u -t f -g '*.h' DIR`,
#         and with --parallel (targets: <= 0.7x find; --parallel <= 1.0x fdfind);
#   progress: the same walk (--count) on a pseudo-terminal made by script(1),
#         with the progress line and with --no-progress (target: <= 1% cost).
# Each hyperfine run has every contender of its comparison; ROUNDS runs
# (default 5) alternate which comes first, and the ratios are of the
# medians over all rounds. Output goes to /dev/null (hyperfine's default).
#   bench/cli.sh [MORSEL [DIR]]     defaults: build-bench/morsel, /usr
set -euo pipefail
morsel=$(realpath "${1:-build-bench/morsel}")
dir=${2:-/usr}
rounds=${ROUNDS:-5}
runs=${RUNS:-10}
out=${OUT:-bench/out}
mkdir -p "$out"
echo "machine: nproc $(nproc),$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), $(date -u +%F)"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"

walk=(find "find $dir -type f -name '*.h'"
      morsel "$morsel walk --no-progress --type f --name '*.h' $dir"
      fdfind "fdfind -u -t f -g '*.h' $dir"
      morsel-parallel "$morsel walk --no-progress --parallel --type f --name '*.h' $dir")
progress=(progress-off "script -qec '$morsel walk --count --no-progress $dir' /dev/null"
          progress-on "script -qec '$morsel walk --count $dir' /dev/null")

# run NAME CONTENDERS...: ROUNDS hyperfine runs, the contenders' order
# rotated each round; one JSON export per round.
run() {
  local name=$1; shift
  local -a c=("$@")
  local n=$((${#c[@]} / 2))
  for ((r = 0; r < rounds; r++)); do
    local -a args=()
    for ((i = 0; i < n; i++)); do
      local k=$(((i + r) % n))
      args+=(-n "${c[2 * k]}" "${c[2 * k + 1]}")
    done
    hyperfine -N --style basic --warmup 2 --runs "$runs" --export-json "$out/cli-$name-$r.json" \
      "${args[@]}" >/dev/null
  done
}

run walk "${walk[@]}"
run progress "${progress[@]}"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

/usr/bin/python3 - "$out" "$rounds" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
cpu = {}
def medians(name):
    times = {}
    for r in range(rounds):
        for res in json.load(open(f"{out}/cli-{name}-{r}.json"))["results"]:
            times.setdefault(res["command"], []).extend(res["times"])
            cpu.setdefault(res["command"], []).append(res["user"] + res["system"])
    return {k: statistics.median(v) for k, v in times.items()}
def show(m):
    for k, v in m.items():
        c = statistics.median(cpu[k])
        print(f"{k:16s} median {v * 1e3:8.1f} ms wall, {c * 1e3:8.1f} ms CPU (user + system)")
w = medians("walk")
show(w)
c = {k: statistics.median(v) for k, v in cpu.items()}
print(f"CPU time: morsel / find {c['morsel'] / c['find']:.3f}, "
      f"--parallel / fdfind {c['morsel-parallel'] / c['fdfind']:.3f}")
print(f"morsel walk / find             {w['morsel'] / w['find']:.3f}  (target <= 0.7)")
print(f"morsel walk / fdfind           {w['morsel'] / w['fdfind']:.3f}")
print(f"morsel walk --parallel / fdfind {w['morsel-parallel'] / w['fdfind']:.3f}  (target <= 1.0)")
print(f"morsel walk --parallel / find   {w['morsel-parallel'] / w['find']:.3f}")
p = medians("progress")
show(p)
c = {k: statistics.median(v) for k, v in cpu.items()}
print(f"CPU time: progress on / off {c['progress-on'] / c['progress-off']:.4f}")
print(f"progress on / off              {p['progress-on'] / p['progress-off']:.4f}  (target <= 1.01)")
PY
