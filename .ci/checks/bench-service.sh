#!/usr/bin/env bash
# CI check: the memory service's read path must not get much slower unseen (issue 29).
# Runs `npm run bench:service -- --quick` (about 35 s): the bare Express route and cache hits alternated in five
# 1-second rounds (the service on a CPU of its own meanwhile, where taskset exists), and a miss timed one request at
# a time against the Context7 emulator alone, all in one run. It prints
# `RATIO <name> <value>` lines and fails when a ratio is below its floor (BENCH_FLOOR_<name>, set here).
# A ratio measured side by side in one run holds on a busy machine where an absolute time does not.
#
# Why these floors (measured on the 2-core development machine, Node 24.21, 2026-12-07, while 7 other engineers'
# jobs ran: load average 17-20; see service/README.md, "Benchmarks"): each sits below the lowest figure measured
# with four more CPU-bound neighbours running (load average 21-25), so a busy CI machine does not fail it. They
# are there to catch a large regression, not a small one: on a machine this busy a ratio moves by 2x between runs.
#   HIT_VS_BARE       cache-hit req/s / bare Express req/s, the median of the alternated rounds (three until issue
#                     29's eighth round, five since, with the service pinned). Target 0.85 on a quiet machine.
#                     Measured: 0.82-1.44 (median round) at load 17-18; 0.34-1.06 with the four neighbours; since the
#                     eighth round 0.83-0.99 at load 5-9 (four runs, 2026-12-07 20:02-20:08). Floor 0.25: the hit
#                     path costing 4x the bare route (before issue 29 it cost ~2x: 0.38-0.67 in full runs).
#   EMULATOR_VS_MISS  emulator-alone p50 / service-miss p50, one request at a time, the emulator adding 50 ms.
#                     Measured 0.81-0.94 at load 17-18, 0.68-0.77 with the neighbours. Floor 0.55: a miss paying
#                     about another Context7 round trip (+50 ms) in series fails it.
#   CPU_HIT_VS_BARE   bare / cache-hit service CPU per request (/proc schedstat), the median of the three rounds:
#                     follows the code more than req/s does, since a descheduled process spends no CPU. Measured
#                     0.60 quiet (load 1.1) before issue 29's fourth round; 0.62-0.71 before and 0.68-1.05 after it
#                     at load 14-19 (2026-12-07, 12:27-12:37, with two valgrind runs and other helpers' jobs beside
#                     it); 0.50-0.85 in earlier rounds at load 17-22; the lowest single round seen 0.41. Floor 0.30:
#                     a hit costing over 3.3x the bare route's CPU (a store query or a synchronous log write on
#                     every hit) fails it; the noise of a loaded machine does not.
set -euo pipefail
cd "$(dirname "$0")/../.."

. scripts/node24.sh
# The test command installs first in .ci/run; alone, this check installs what the bench needs.
[ -d node_modules ] || npm ci --no-audit --no-fund
node scripts/native-abi.cjs check

export BENCH_FLOOR_HIT_VS_BARE="${BENCH_FLOOR_HIT_VS_BARE:-0.25}"
export BENCH_FLOOR_EMULATOR_VS_MISS="${BENCH_FLOOR_EMULATOR_VS_MISS:-0.55}"
export BENCH_FLOOR_CPU_HIT_VS_BARE="${BENCH_FLOOR_CPU_HIT_VS_BARE:-0.30}"
echo "uptime: $(uptime)"
npm run --silent bench:service -- --quick
