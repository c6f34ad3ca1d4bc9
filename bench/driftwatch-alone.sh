#!/usr/bin/env bash
# driftwatch alone on many series: --targets T generated targets of
# --series N series each (examples/target, gzip), one source per target,
# window 100, for --minutes M. Prints driftwatch's share of one core, CPU per
# sample and memory (Pss) per series in the steady state, whether every
# source was fetched every interval, and how long a gzip /metrics of all the
# series takes to fetch at the end and what it adds to the peak memory.
#
# Needs: curl and the release binaries, built unless --no-build:
#   cargo build --release --bin driftwatch --example target
#
# Usage: bench/driftwatch-alone.sh [--series N] [--targets T] [--minutes M]
#                                  [--interval S] [--port-base P] [--no-build]
set -euo pipefail

series=100000
targets=10
minutes=3
interval=15
port_base=19300
build=1

while [[ $# -gt 0 ]]; do
    case $1 in
        --series) series=$2; shift 2 ;;
        --targets) targets=$2; shift 2 ;;
        --minutes) minutes=$2; shift 2 ;;
        --interval) interval=$2; shift 2 ;;
        --port-base) port_base=$2; shift 2 ;;
        --no-build) build=0; shift ;;
        -h | --help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown flag $1" >&2; exit 64 ;;
    esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${CARGO_TARGET_DIR:-$root/target}/release
command -v curl >/dev/null || { echo "curl is not installed" >&2; exit 69; }
if ((build)); then
    (cd "$root" && cargo build --release --bin driftwatch --example target)
fi
target_port=$port_base
driftwatch_port=$((port_base + 1))
total=$((series * targets))

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

{
    echo "global:"
    echo "  interval: ${interval}s"
    echo "  timeout: $((interval * 2 / 3))s"
    echo "  body_size_limit: $((series / 1000 + 16))MiB"
    echo "  series_limit: $series"
    echo "  total_series_limit: $total"
    echo "detector:"
    echo "  window: 100"
    echo "sources:"
    for ((t = 0; t < targets; t++)); do
        echo "  - name: target-$t"
        echo "    scrape:"
        echo "      url: http://127.0.0.1:$target_port/metrics/$t?who=driftwatch-$t"
        echo "    watch:"
        for m in model_online_accuracy_ratio model_inference_latency_p99_seconds \
            model_prediction_error_rate model_feature_drift_psi; do
            echo "      - metric: $m"
        done
    done
} >"$work/driftwatch.yml"

"$bin/examples/target" --series "$series" --targets "$targets" \
    --listen "127.0.0.1:$target_port" --interval "$interval" 2>"$work/target.log" &
pids+=($!)
wait_for() { # $1: what, $2: command, $3: seconds
    local give_up=$((SECONDS + $3))
    until eval "$2" >/dev/null 2>&1; do
        ((SECONDS <= give_up)) || { echo "timed out waiting for $1" >&2; exit 1; }
        sleep 1
    done
}
wait_for "the target" "curl -sf http://127.0.0.1:$target_port/requests" 600

"$bin/driftwatch" --config.file="$work/driftwatch.yml" \
    --web.listen-address="127.0.0.1:$driftwatch_port" 2>"$work/driftwatch.log" &
pids+=($!)
pid=${pids[-1]}

fetches() { # total fetches of all sources, or of source $1
    curl -sf "http://127.0.0.1:$target_port/requests" |
        awk -v who="${1:-driftwatch-}" 'index($1, who) == 1 { s += $2 } END { print s + 0 }'
}
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
pss_kib() { awk '/^Pss:/ { print $2 }' "/proc/$1/smaps_rollup"; }

# Steady state: every source fetched twice (the first creates the series).
for ((t = 0; t < targets; t++)); do
    wait_for "two fetches of target $t" "[[ \$(fetches driftwatch-$t) -ge 2 ]]" $((interval * 4 + 300))
done
sleep $((interval / 2))

cpu0=$(cpu_ticks "$pid")
fetch0=$(fetches)
start=$(date +%s.%N)
load0=$(cut -d' ' -f1-3 /proc/loadavg)
echo "measuring $total series ($targets x $series) for $minutes min at ${interval}s (load $load0)" >&2
sleep $((minutes * 60))
cpu1=$(cpu_ticks "$pid")
fetch1=$(fetches)
end=$(date +%s.%N)
pss=$(pss_kib "$pid")
load1=$(cut -d' ' -f1-3 /proc/loadavg)
per_source=$(curl -sf "http://127.0.0.1:$target_port/requests" |
    awk '/^driftwatch-/ { print $2 }' | sort -n | sed -n '1p;$p' | tr '\n' ' ')

# After the measurement: the whole /metrics, gzip, as Prometheus fetches it,
# and the peak resident memory before and after (a render is held whole).
peak0=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status")
read -r metrics_seconds metrics_bytes < <(curl -s -o "$work/metrics.gz" \
    -H 'Accept-Encoding: gzip' -w '%{time_total} %{size_download}\n' \
    "http://127.0.0.1:$driftwatch_port/metrics")
peak1=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status")
tracked=$(gzip -dc "$work/metrics.gz" | awk '$1 == "driftwatch_series_tracked" { print $2 }')
skipped=$(gzip -dc "$work/metrics.gz" |
    awk '/^driftwatch_samples_skipped_total/ { s += $2 } END { print s + 0 }')

awk -v hz="$(getconf CLK_TCK)" -v c0="$cpu0" -v c1="$cpu1" -v f0="$fetch0" -v f1="$fetch1" \
    -v t0="$start" -v t1="$end" -v series="$series" -v total="$total" -v pss="$pss" \
    -v interval="$interval" -v minutes="$minutes" -v load0="$load0" -v load1="$load1" \
    -v per_source="$per_source" -v tracked="${tracked:-?}" -v skipped="$skipped" \
    -v ms="$metrics_seconds" -v mb="$metrics_bytes" -v cores="$(nproc)" \
    -v peak0="$peak0" -v peak1="$peak1" '
BEGIN {
    cpu = (c1 - c0) / hz; wall = t1 - t0; samples = (f1 - f0) * series
    printf "driftwatch alone: %d series (%d targets), %d s interval, window 100, %d min measured\n",
        total, total / series, interval, minutes
    printf "machine: %d cores, load average %s at start, %s at end\n", cores, load0, load1
    printf "CPU: %.2f s in %.1f s wall = %.1f%% of one core\n", cpu, wall, 100 * cpu / wall
    printf "samples: %d fetches, %d samples, %.3f us CPU per sample\n", f1 - f0, samples, cpu * 1e6 / samples
    printf "memory: Pss %.1f MiB = %.0f B per series\n", pss / 1024, pss * 1024 / total
    printf "fetches per source since start (fewest, most): %s; expected about %d in the measured %d min\n",
        per_source, minutes * 60 / interval, minutes
    printf "tracked series %s, samples skipped %s\n", tracked, skipped
    printf "GET /metrics (gzip): %.2f s, %.1f MB compressed\n", ms, mb / 1e6
    printf "peak resident memory: %.1f MiB before that GET, %.1f MiB after\n", peak0 / 1024, peak1 / 1024
}'
