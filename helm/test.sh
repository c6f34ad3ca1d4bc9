#!/usr/bin/env bash
# Checks the Helm chart offline: renders it with Helm's own Go SDK for every
# helm/driftwatch/ci/*.yaml, validates every manifest against the Kubernetes
# schemas, runs `driftwatch check-config` on the rendered configuration and
# `promtool check rules` on the rules, checks the Grafana dashboard, and
# writes the rules, queries and metric names it found to an output folder
# for tests/helm_chart.rs, which runs them against a real Prometheus.
#
#   helm/test.sh [OUT_DIR]        (default: target/helm-check)
#
# Environment: PYTHON (default python3), HELM_CHECK_VENV (default
# target/helm-venv), DRIFTWATCH_BIN (default target/debug/driftwatch, built
# when missing), PROMTOOL (default: promtool on PATH).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
out="${1:-$target_dir/helm-check}"
venv="${HELM_CHECK_VENV:-$target_dir/helm-venv}"
python="${PYTHON:-python3}"
requirements="$repo/helm/requirements.txt"

fail() {
  echo "helm/test.sh: $*" >&2
  exit 1
}

command -v "$python" >/dev/null || fail "$python is not installed (apt-get install python3 python3-venv)"
promtool="${PROMTOOL:-$(command -v promtool || true)}"
[ -n "$promtool" ] || fail "promtool is not installed (apt-get install prometheus)"

# The virtualenv is made once and reused: the stamp holds the hash of the
# requirements and the Python it was made with, so a change of either
# remakes it. A lock keeps two runs at once from installing over each other.
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
stamp="$( (cat "$requirements"; "$python" -c 'import sys; print(sys.version)') | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$venv/.driftwatch-stamp" 2>/dev/null || true)" != "$stamp" ]; then
  echo "helm/test.sh: installing $(grep -v '^#' "$requirements" | tr '\n' ' ')into $venv"
  rm -rf "$venv"
  "$python" -m venv "$venv" \
    || fail "cannot create a virtualenv with $python (on Debian: apt-get install python3-venv)"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" \
    || fail "pip could not install $requirements into $venv (is PyPI reachable?)"
  echo "$stamp" >"$venv/.driftwatch-stamp"
fi
flock -u 9

driftwatch="${DRIFTWATCH_BIN:-$target_dir/debug/driftwatch}"
if [ ! -x "$driftwatch" ]; then
  echo "helm/test.sh: building $driftwatch"
  (cd "$repo" && cargo build --locked --bin driftwatch) || fail "cargo build of driftwatch failed"
fi

mkdir -p "$out"
exec "$venv/bin/python" "$repo/helm/check_chart.py" \
  --chart "$repo/helm/driftwatch" \
  --readme "$repo/README.md" \
  --out "$out" \
  --driftwatch "$driftwatch" \
  --promtool "$promtool"
