#!/usr/bin/env bash
# CI check: the k6 script under a real k6 binary (npm run load:verify): baseline, a threshold failure (exit 99),
# Ctrl-C (reads as interrupted) and a tiny breakpoint, against the memory service started on loopback.
# k6 is an external test tool, never part of the project: CI clones the repository beside shared/, whose
# tools/k6 is a real k6 v1.3.0. K6_BIN overrides it (a user's own k6). `./scripts/test` does not need k6.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
k6="${K6_BIN:-$root/../shared/tools/k6}"
if [ ! -x "$k6" ]; then
  echo "k6 check: no k6 at $k6" >&2
  echo "  CI expects the repository cloned beside shared/ (shared/tools/k6); elsewhere set K6_BIN=/path/to/k6" >&2
  echo "  (install: https://grafana.com/docs/k6/latest/set-up/install-k6/)" >&2
  exit 1
fi
. scripts/node24.sh
if [ ! -d node_modules ]; then
  npm ci --no-audit --no-fund
fi
echo "k6 check: $("$k6" version 2>&1 | head -n1) ($k6)"
K6_BIN="$k6" npm run -s load:verify
