#!/usr/bin/env bash
# driftwatch side by side with Prometheus on the same generated target.
#
# Starts examples/target (N series, gzip), then for the same minutes:
#   - Prometheus scraping it, no rules ("ingest"),
#   - Prometheus scraping it with the z-score recording rule
#       (m - avg_over_time(m[W])) / stddev_over_time(m[W]),  W = 100 samples
#     ("ingest+rule"),
#   - driftwatch scraping it with window 100.
# It reads each process's CPU time (utime+stime, /proc/PID/stat) and
# proportional memory (Pss, /proc/PID/smaps_rollup) at the start of the
# steady state and at the end, counts each scraper's fetches at the target
# (so nothing asks the processes being measured), and prints CPU per sample,
# memory per series and the ratios.
#
# Needs: prometheus (Debian's package), curl, and the release binaries,
# built unless --no-build:  cargo build --release --bin driftwatch --example target
#
# Usage: bench/vs-prometheus.sh [--series N] [--minutes M] [--interval S]
#                               [--port-base P] [--no-build] [--keep]
set -euo pipefail

series=100000
minutes=5
interval=15
port_base=19100
build=1
keep=0
window=100

usage() {
    sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'
}

while [[ $# -gt 0 ]]; do
    case $1 in
        --series) series=$2; shift 2 ;;
        --minutes) minutes=$2; shift 2 ;;
        --interval) interval=$2; shift 2 ;;
        --port-base) port_base=$2; shift 2 ;;
        --no-build) build=0; shift ;;
        --keep) keep=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "unknown flag $1" >&2; usage >&2; exit 64 ;;
    esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${CARGO_TARGET_DIR:-$root/target}/release
for program in prometheus curl; do
    command -v "$program" >/dev/null || {
        echo "$program is not installed (apt-get install -y $program)" >&2
        exit 69
    }
done
if ((build)); then
    (cd "$root" && cargo build --release --bin driftwatch --example target)
fi

target_port=$port_base
ingest_port=$((port_base + 1))
rules_port=$((port_base + 2))
driftwatch_port=$((port_base + 3))
for port in "$target_port" "$ingest_port" "$rules_port" "$driftwatch_port"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "port $port is taken; choose another --port-base" >&2
        exit 69
    fi
done

work=$(mktemp -d)
pids=()
cleanup() {
    # Only the processes this script started, by their ids.
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if ((keep)); then echo "logs and data kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

range=$((window * interval))s
metrics=(model_online_accuracy_ratio model_inference_latency_p99_seconds
    model_prediction_error_rate model_feature_drift_psi)

# --- Configurations --------------------------------------------------------

prometheus_config() { # $1: who, $2: rule file or empty
    cat <<EOF
global:
  scrape_interval: ${interval}s
  evaluation_interval: ${interval}s
${2:+rule_files: [$2]}
scrape_configs:
  - job_name: target
    scrape_timeout: $((interval * 2 / 3))s
    params: {who: [$1]}
    static_configs: [{targets: ['127.0.0.1:$target_port']}]
EOF
}

{
    echo "groups:"
    echo "  - name: zscore"
    echo "    rules:"
    for m in "${metrics[@]}"; do
        echo "      - record: $m:zscore"
        echo "        expr: ($m - avg_over_time($m[$range])) / stddev_over_time($m[$range])"
    done
} >"$work/rules.yml"
prometheus_config prometheus-ingest "" >"$work/ingest.yml"
prometheus_config prometheus-rules "$work/rules.yml" >"$work/rules-prometheus.yml"

{
    echo "global:"
    echo "  interval: ${interval}s"
    echo "  timeout: $((interval * 2 / 3))s"
    echo "  body_size_limit: $((series / 1000 + 16))MiB"
    echo "  series_limit: $series"
    echo "  total_series_limit: $series"
    echo "detector:"
    echo "  window: $window"
    echo "sources:"
    echo "  - name: bench"
    echo "    scrape:"
    echo "      url: http://127.0.0.1:$target_port/metrics?who=driftwatch"
    echo "    watch:"
    for m in "${metrics[@]}"; do echo "      - metric: $m"; done
} >"$work/driftwatch.yml"

# --- Processes -------------------------------------------------------------

"$bin/examples/target" --series "$series" --listen "127.0.0.1:$target_port" \
    --interval "$interval" 2>"$work/target.log" &
pids+=($!)

# Waits until $2 (a command) succeeds, for at most $3 seconds.
wait_for() { # $1: what, $2: command, $3: seconds
    local give_up=$((SECONDS + $3))
    until eval "$2" >/dev/null 2>&1; do
        if ((SECONDS > give_up)); then
            echo "timed out waiting for $1; logs in $work" >&2
            keep=1
            exit 1
        fi
        sleep 1
    done
}
wait_for "the target" "curl -sf http://127.0.0.1:$target_port/requests" 300

start_prometheus() { # $1: name, $2: config, $3: port
    prometheus --config.file="$2" --storage.tsdb.path="$work/$1-data" \
        --web.listen-address="127.0.0.1:$3" --log.level=warn 2>"$work/$1.log" &
    pids+=($!)
}
start_prometheus ingest "$work/ingest.yml" "$ingest_port"
ingest_pid=${pids[-1]}
start_prometheus rules "$work/rules-prometheus.yml" "$rules_port"
rules_pid=${pids[-1]}
"$bin/driftwatch" --config.file="$work/driftwatch.yml" \
    --web.listen-address="127.0.0.1:$driftwatch_port" 2>"$work/driftwatch.log" &
pids+=($!)
driftwatch_pid=${pids[-1]}

fetches() { # $1: who
    curl -sf "http://127.0.0.1:$target_port/requests" | awk -v who="$1" '$1 == who { print $2 }'
}
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
pss_kib() { awk '/^Pss:/ { print $2 }' "/proc/$1/smaps_rollup"; }

# Steady state: every scraper has fetched twice (the first fetch creates
# the series), and half an interval later, between fetches.
for who in prometheus-ingest prometheus-rules driftwatch; do
    wait_for "two fetches by $who" "[[ \$(fetches $who) -ge 2 ]]" $((interval * 4 + 120))
done
sleep $((interval / 2))

names=(prometheus-ingest prometheus-rules driftwatch)
procs=("$ingest_pid" "$rules_pid" "$driftwatch_pid")
declare -A cpu0 fetch0
for i in 0 1 2; do
    cpu0[$i]=$(cpu_ticks "${procs[$i]}")
    fetch0[$i]=$(fetches "${names[$i]}")
done
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
echo "measuring $series series for $minutes min at ${interval}s (load $load_start, $(nproc) cores)" >&2
sleep $((minutes * 60))

hz=$(getconf CLK_TCK)
declare -A cpu_us mem_b samples
for i in 0 1 2; do
    ticks=$(($(cpu_ticks "${procs[$i]}") - cpu0[$i]))
    n=$(($(fetches "${names[$i]}") - fetch0[$i]))
    cpu_us[$i]=$(awk -v t="$ticks" -v hz="$hz" 'BEGIN { print t * 1e6 / hz }')
    samples[$i]=$((n * series))
    mem_b[$i]=$(($(pss_kib "${procs[$i]}") * 1024))
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# --- Checks that each did the whole job -----------------------------------

tracked=$(curl -sf "http://127.0.0.1:$driftwatch_port/metrics" |
    awk '$1 == "driftwatch_series_tracked" { print $2 }')
zscores=$(curl -sf "http://127.0.0.1:$rules_port/api/v1/query" \
    --data-urlencode 'query=count({__name__=~".+:zscore"})' |
    sed -n 's/.*"value":\[[^,]*,"\([0-9]*\)"\].*/\1/p')
rule_seconds=$(curl -sf "http://127.0.0.1:$rules_port/metrics" |
    awk '/^prometheus_rule_group_last_duration_seconds/ { print $2 }')

# --- Report ----------------------------------------------------------------

awk -v series="$series" -v minutes="$minutes" -v interval="$interval" \
    -v window="$window" -v range="$range" \
    -v load0="$load_start" -v load1="$load_end" -v cores="$(nproc)" \
    -v tracked="${tracked:-?}" -v zscores="${zscores:-?}" \
    -v rule_seconds="${rule_seconds:-?}" \
    -v c0="${cpu_us[0]}" -v c1="${cpu_us[1]}" -v c2="${cpu_us[2]}" \
    -v s0="${samples[0]}" -v s1="${samples[1]}" -v s2="${samples[2]}" \
    -v m0="${mem_b[0]}" -v m1="${mem_b[1]}" -v m2="${mem_b[2]}" '
function per(a, b) { return b > 0 ? a / b : 0 }
BEGIN {
    fill = int(minutes * 60 / interval) + 2
    if (fill > window) fill = window
    printf "driftwatch vs Prometheus: %d series, %d s interval, window %d samples ([%s]), %d min measured\n",
        series, interval, window, range, minutes
    printf "machine: %d cores, load average %s at start, %s at end\n", cores, load0, load1
    printf "driftwatch tracks %s series; Prometheus records %s z-scores, last evaluation %s s\n\n",
        tracked, zscores, rule_seconds
    printf "%-24s %12s %14s %14s %14s\n", "", "CPU s", "samples", "CPU/sample", "memory/series"
    cpu[0] = per(c0, s0); cpu[1] = per(c1, s1); cpu[2] = per(c2, s2)
    mem[0] = per(m0, series); mem[1] = per(m1, series); mem[2] = per(m2, series)
    name[0] = "Prometheus ingest"; name[1] = "Prometheus ingest+rule"; name[2] = "driftwatch"
    c[0] = c0; c[1] = c1; c[2] = c2; s[0] = s0; s[1] = s1; s[2] = s2
    for (i = 0; i < 3; i++)
        printf "%-24s %12.2f %14d %11.3f us %11.0f B\n", name[i], c[i] / 1e6, s[i], cpu[i], mem[i]
    printf "\nCPU per sample, driftwatch / Prometheus ingest:      %.4f (target <= 0.2)\n", per(cpu[2], cpu[0])
    printf "CPU per sample, driftwatch / Prometheus ingest+rule: %.4f (target <= 0.01)\n", per(cpu[2], cpu[1])
    printf "memory per series, driftwatch / Prometheus ingest:   %.4f (target <= 0.33)\n", per(mem[2], mem[0])
    printf "memory per series, driftwatch / Prometheus ingest+rule: %.4f\n", per(mem[2], mem[1])
    printf "rule cost (ingest+rule minus ingest): %.1f us per series per evaluation\n",
        per(c1 - c0 * per(s1, s0), s1)
    if (fill < window) {
        printf "\nWindows hold up to %d of %d samples after this run: the rule ranges and\n", fill, window
        printf "driftwatch rings are not yet full, and Prometheus holds few samples per\n"
        printf "series in its head; run --minutes %d or more for the full-window steady state.\n",
            int(window * interval / 60) + 2
    } else {
        printf "\nWindows are full (%d samples) by the end of this run.\n", window
    }
}'
