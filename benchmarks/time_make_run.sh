#!/usr/bin/env bash
# Time `make run` end to end in a fresh clone: what a new user's first `make run` costs.
#
#   benchmarks/time_make_run.sh [WORK_DIR] [RESULT_MD]
#   benchmarks/time_make_run.sh --report-only WORK_DIR [RESULT_MD]   # rewrite the record of a finished run
#
# Clones this repository's HEAD into WORK_DIR/main (default /tmp/kdlib-make-run; WORK_DIR is
# deleted first) with ../shared linked beside it, runs `make run` there under /usr/bin/time
# (creating .venv, installing, writing the synthetic set, the reproduce run, its report, every
# notebook in full mode), samples the load average every 30 s, and writes a Markdown record
# (default benchmarks/results/make_run.md): the commit, the machine, the wall time of each
# phase (from the outputs' time stamps), each notebook's own time (papermill's record in the
# executed copy: two run at a time), user + system CPU time and the load.
# It needs no network beyond what `make venv` needs (the package index) and takes about an hour
# on 2 cores.
set -euo pipefail

repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
report_only=false
if [[ ${1:-} == --report-only ]]; then report_only=true; shift; [[ -n ${1:-} ]] || { echo "time_make_run.sh: --report-only needs WORK_DIR" >&2; exit 2; }; fi
work=${1:-/tmp/kdlib-make-run}
result=${2:-$repo/benchmarks/results/make_run.md}
shared=$(cd "$repo/.." && pwd)/shared
[[ -d $shared ]] || { echo "time_make_run.sh: $shared not found (the data beside the clone)" >&2; exit 1; }

stamp() { [[ -e $1 ]] && stat -c %Y "$1" || echo ""; }
phase() {  # name, from, to (epoch seconds; empty: unknown)
    if [[ -n $2 && -n $3 ]]; then
        printf '| %s | %d min %02d s |\n' "$1" $((($3 - $2) / 60)) $((($3 - $2) % 60))
    else
        printf '| %s | unknown |\n' "$1"
    fi
}
notebook_times() {  # one row per executed notebook: papermill's own duration
    python3 - "$1" <<'PY'
import json, sys
from pathlib import Path
for path in sorted(Path(sys.argv[1]).glob("[0-9][0-9]_*.ipynb")):
    duration = json.loads(path.read_text()).get("metadata", {}).get("papermill", {}).get("duration")
    print(f"| {path.stem} | {duration:.0f} s |" if duration is not None else f"| {path.stem} | unknown |")
PY
}

write_record() {  # everything from the files the run left in $work
    local main=$work/main start end status user system load peak tmp
    start=$(stamp "$work/start")
    end=$(stamp "$work/time.txt")
    status=$(awk -F': ' '/Exit status/ {print $2}' "$work/time.txt")
    user=$(awk -F': ' '/User time/ {print $2}' "$work/time.txt")
    system=$(awk -F': ' '/System time/ {print $2}' "$work/time.txt")
    load=$(awk '{print $2}' "$work/load.txt" | sort -n | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print "nan"}')
    peak=$(awk '{print $2}' "$work/load.txt" | sort -n | tail -1)
    mkdir -p "$(dirname "$result")"
    tmp=$(mktemp "$(dirname "$result")/.make_run.XXXXXX")
    {
        echo "# make run, end to end, from a fresh clone"
        echo
        echo "- command: \`benchmarks/time_make_run.sh\` (clone of commit \`$(git -C "$main" rev-parse --short HEAD)\`, then \`make run\` with its defaults)"
        echo "- date: $(date -u -d "@$start" '+%Y-%m-%d %H:%M UTC')"
        echo "- machine: $(uname -m), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(awk '/MemTotal/ {printf "%.0f GB", $2 / 1048576}' /proc/meminfo)"
        echo "- exit status: $status"
        echo "- load average (1 min) during the run: median $load, highest $peak (2 cores; about 2 is the run itself)"
        echo "- CPU time: user $user s, system $system s"
        echo
        echo "| phase | wall time |"
        echo "|---|---|"
        phase "create .venv and install (make venv)" "$start" "$(stamp "$main/.venv/.installed")"
        phase "write the synthetic set (kdlib synth --preset default)" "$(stamp "$main/.venv/.installed")" "$(stamp "$main/data/synthetic/.preset-default")"
        phase "kdlib reproduce + its report" "$(stamp "$main/data/synthetic/.preset-default")" "$(stamp "$main/results/synthetic/report/summary.md")"
        phase "every notebook in full mode (kdlib.notebooks --full)" "$(stamp "$main/results/synthetic/report/summary.md")" "$end"
        phase "**make run, total**" "$start" "$end"
        echo
        echo "Each notebook's own time (papermill's record in \`build/notebooks/\`; NB_JOBS notebooks run at once):"
        echo
        echo "| notebook | time |"
        echo "|---|---|"
        notebook_times "$main/build/notebooks"
        echo
        echo "The last lines of its log:"
        echo
        echo '```'
        tr '\r' '\n' < "$work/log" | grep -v '^[[:space:]]*$' | tail -n 5
        echo '```'
    } > "$tmp"
    mv "$tmp" "$result"
    echo "time_make_run.sh: wrote $result (make run exit status $status)"
    return "$status"  # the exit status of make run
}

if $report_only; then
    [[ -f $work/time.txt && -d $work/main ]] || { echo "time_make_run.sh: $work holds no finished run" >&2; exit 2; }
    write_record
    exit
fi

commit=$(git -C "$repo" rev-parse --short HEAD)
[[ -z $(git -C "$repo" status --porcelain --untracked-files=no) ]] || echo "time_make_run.sh: note: uncommitted changes are not in the clone ($commit)" >&2

rm -rf "$work"
mkdir -p "$work"
git clone -q "$repo" "$work/main"
ln -s "$shared" "$work/shared"
cd "$work/main"


( while true; do echo "$(date +%s) $(cut -d' ' -f1-3 /proc/loadavg)"; sleep 30; done ) > "$work/load.txt" 2>/dev/null &
sampler=$!
trap 'kill $sampler 2>/dev/null || true' EXIT

touch "$work/start"
/usr/bin/time -v -o "$work/time.txt" make run > "$work/log" 2>&1 || true
kill $sampler 2>/dev/null || true
write_record
