#!/usr/bin/env bash
# Export benchmark: the seed cluster (seeds/scenario.yaml, seed 1, up to 2026-11-29) imported into
# a fresh store, then `pilotwatch export` of the whole cluster in each of the five formats (best
# of 3 wall-clock runs, release build), against the target of under a second each; the time of a
# plain `sqlite3` full read of the observations on the same store is printed beside it as the
# floor any report over the raw rows would pay.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${PILOTWATCH_BIN:-$(pwd)/.build/release/pilotwatch}
work=$(mktemp -d /tmp/pilotwatch-bench-export.XXXXXX)
trap 'rm -rf "$work"' EXIT INT TERM
cfg=seeds/pilotwatch.yaml
db=$work/seed.sqlite
asof=2026-11-29
echo "importing the seed cluster up to $asof..."
"$bin" simulate --config "$cfg" --scenario seeds/scenario.yaml --end "$asof" --seed 1 --dry-run --out "$work/seed.ndjson" > /dev/null
"$bin" ingest --config "$cfg" --db "$db" "$work/seed.ndjson" > /dev/null
obs=$(sqlite3 "$db" "SELECT count(*) FROM observation")
best() {  # best of 3 wall-clock runs, in milliseconds
  local b=999999
  for _ in 1 2 3; do
    local t0 t1; t0=$(date +%s%N); "$@" > /dev/null; t1=$(date +%s%N)
    local ms=$(( (t1 - t0) / 1000000 )); [ "$ms" -lt "$b" ] && b=$ms
  done
  echo "$b"
}
scan=$(best sqlite3 "$db" "SELECT count(*), sum(value) FROM observation")
echo
echo "export of the seed cluster: $obs observations, as of $asof (best of 3, ms)"
printf '%-10s %10s %12s %8s\n' "format" "export" "sqlite3 scan" "target"
for f in md html csv json fhir; do
  ms=$(best "$bin" export --config "$cfg" --db "$db" --as-of "$asof" --format "$f" --out "$work/out.$f")
  printf '%-10s %10s %12s %8s\n' "$f" "$ms" "$scan" "$([ "$ms" -lt 1000 ] && echo "<1 s ok" || echo "OVER 1 s")"
done
