#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# The bench-smoke test: bench/run-all.sh --smoke (every bench, 1 repetition
# of 1 s at the smallest sizes) into a temporary directory, then checks
# that it wrote the JSON, the SVG plots and the Markdown summary, well
# formed (bench/report.py check). The figures themselves are never
# asserted: this shared 2-core machine makes them anything.
#
# Usage: scripts/check-bench.sh BUILD_DIR
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:?usage: check-bench.sh BUILD_DIR}
OUT=$(mktemp -d "${TMPDIR:-/tmp}/check-bench.XXXXXX")
trap 'rm -rf "$OUT"' EXIT

"$ROOT/bench/run-all.sh" --smoke --out "$OUT" "$BUILD"
shopt -s nullglob
results=("$OUT"/*.json)
(( ${#results[@]} == 1 )) || { echo "check-bench: want one results JSON in $OUT, found ${#results[@]}" >&2; exit 1; }
python3 "$ROOT/bench/report.py" check "${results[0]%.json}"
# Every bench is in this tree, so each one must have given figures: a
# failed bench, or a printed table report.py no longer reads (a bench's
# output changed under it), is a failure here, not an empty plot.
empty=$(jq -r '.benches[] | select((.rows | length) == 0) |
               "\(.bench): \(.skipped // "no rows parsed from its output")"' "${results[0]}")
[[ -z $empty ]] || { echo "check-bench: benches without figures:" >&2; echo "$empty" >&2; exit 1; }
