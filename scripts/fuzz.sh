#!/usr/bin/env bash
# Runs the fuzz targets in fuzz/ (cargo-fuzz, libFuzzer) for a given time each.
#
#   scripts/fuzz.sh                 # every target, 30 s each (the CI smoke)
#   scripts/fuzz.sh 600             # every target, 10 minutes each
#   scripts/fuzz.sh 600 ws_decoder  # one target
#
# Each target's corpus lives in fuzz/corpus/TARGET (kept in the repository, grown by
# every run: interesting inputs found once are tried again next time). A crash leaves
# its input in fuzz/artifacts/TARGET and makes this script fail. Prints, per target,
# the executions libFuzzer made and how long it ran.
#
# cargo-fuzz needs nightly flags (-Zsanitizer); RUSTC_BOOTSTRAP=1 lets the stable
# toolchain accept them. cargo-fuzz itself is installed from crates.io if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
shift || true
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
    mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
fi
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t"
    echo "== $t, ${seconds}s"
    log=$(mktemp)
    # -max_total_time bounds the run; -timeout flags a single slow input as a crash.
    if ! cargo fuzz run --fuzz-dir fuzz "$t" "fuzz/corpus/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 2>"$log"; then
        tail -40 "$log" >&2
        rm -f "$log"
        echo "FAILED: $t (its input is in fuzz/artifacts/$t)" >&2
        exit 1
    fi
    grep -E "^Done [0-9]+ runs" "$log" | sed "s/^/$t: /" || tail -3 "$log"
    rm -f "$log"
done
