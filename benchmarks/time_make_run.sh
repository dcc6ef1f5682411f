#!/usr/bin/env bash
# Time `make run` end to end in a fresh clone: what a new user's first `make run` costs.
#
#   benchmarks/time_make_run.sh [WORK_DIR] [RESULT_MD]
#
# Clones this repository's HEAD into WORK_DIR/main (default /tmp/kdlib-make-run; WORK_DIR is
# deleted first) with ../shared linked beside it, runs `make run` there under /usr/bin/time
# (creating .venv, installing, writing the synthetic set, the reproduce run, its report, every
# notebook in full mode), samples the load average every 30 s, and writes a Markdown record
# (default benchmarks/results/make_run.md): the commit, the machine, the wall time of each
# phase (from the log's and the outputs' time stamps), user + system CPU time and the load.
# It needs no network beyond what `make venv` needs (the package index) and takes about an hour
# on 2 cores.
set -euo pipefail

repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
work=${1:-/tmp/kdlib-make-run}
result=${2:-$repo/benchmarks/results/make_run.md}
shared=$(cd "$repo/.." && pwd)/shared
[[ -d $shared ]] || { echo "time_make_run.sh: $shared not found (the data beside the clone)" >&2; exit 1; }
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

start=$(date +%s)
status=0
/usr/bin/time -v -o "$work/time.txt" make run > "$work/log" 2>&1 || status=$?
end=$(date +%s)
kill $sampler 2>/dev/null || true

stamp() { [[ -e $1 ]] && stat -c %Y "$1" || echo ""; }
phase() {  # name, from, to (epoch seconds; empty: unknown)
    [[ -n $2 && -n $3 ]] && printf '| %s | %d min %02d s |\n' "$1" $((($3 - $2) / 60)) $((($3 - $2) % 60)) \
        || printf '| %s | unknown |\n' "$1"
}
venv_done=$(stamp .venv/.installed)
data_done=$(stamp data/synthetic/.preset-default)
repro_done=$(stamp results/synthetic/report/summary.md)
user=$(awk -F': ' '/User time/ {print $2}' "$work/time.txt")
system=$(awk -F': ' '/System time/ {print $2}' "$work/time.txt")
load=$(awk '{print $2}' "$work/load.txt" | sort -n | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print "nan"}')
peak=$(awk '{print $2}' "$work/load.txt" | sort -n | tail -1)

mkdir -p "$(dirname "$result")"
tmp=$(mktemp "$(dirname "$result")/.make_run.XXXXXX")
{
    echo "# make run, end to end, from a fresh clone"
    echo
    echo "- command: \`benchmarks/time_make_run.sh\` (clone of commit \`$commit\`, then \`make run\` with its defaults)"
    echo "- date: $(date -u -d "@$start" '+%Y-%m-%d %H:%M UTC')"
    echo "- machine: $(uname -m), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(awk '/MemTotal/ {printf "%.0f GB", $2 / 1048576}' /proc/meminfo)"
    echo "- exit status: $status"
    echo "- load average (1 min) during the run: median $load, highest $peak (2 cores; about 2 is the run itself)"
    echo "- CPU time: user $user s, system $system s"
    echo
    echo "| phase | wall time |"
    echo "|---|---|"
    phase "create .venv and install (make venv)" "$start" "$venv_done"
    phase "write the synthetic set (kdlib synth --preset default)" "$venv_done" "$data_done"
    phase "kdlib reproduce + its report" "$data_done" "$repro_done"
    phase "every notebook in full mode (kdlib.notebooks --full)" "$repro_done" "$end"
    phase "**make run, total**" "$start" "$end"
    echo
    echo "The last lines of its log:"
    echo
    echo '```'
    tr '\r' '\n' < "$work/log" | grep -v '^[[:space:]]*$' | tail -n 5
    echo '```'
} > "$tmp"
mv "$tmp" "$result"
echo "time_make_run.sh: wrote $result (make run exit status $status)"
exit "$status"
