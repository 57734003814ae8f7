#!/usr/bin/env bash
# Runs the fuzz targets in fuzz/ (cargo-fuzz, libFuzzer) for a given time each.
#
#   scripts/fuzz.sh                         # every target, 30 s each (the CI smoke)
#   scripts/fuzz.sh --grow 600              # every target, 10 minutes each, keeping finds
#   scripts/fuzz.sh --grow 600 ws_decoder   # one target
#
# Each target's corpus lives in fuzz/corpus/TARGET, kept in the repository so that
# interesting inputs found once are tried again by every later run. A plain run reads it
# and writes what it finds to a scratch corpus under fuzz/target/ (the checkout stays
# clean); --grow adds the finds to fuzz/corpus/TARGET and then minimizes it
# (`cargo fuzz cmin`: the smallest set of inputs with the same coverage), ready to be
# committed. A crash leaves its input in fuzz/artifacts/TARGET and makes this script
# fail. Prints, per target, the executions libFuzzer made and how long it ran.
#
# cargo-fuzz needs nightly flags (-Zsanitizer); RUSTC_BOOTSTRAP=1 lets the stable
# toolchain accept them. cargo-fuzz itself is installed from crates.io if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
grow=0
if [[ ${1:-} == --grow ]]; then
    grow=1
    shift
fi
seconds=${1:-30}
shift || true
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz"
    cargo install cargo-fuzz --version 0.13.2 --locked
fi
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
    mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
fi
for t in "${targets[@]}"; do
    corpus=fuzz/corpus/$t
    mkdir -p "$corpus"
    # libFuzzer writes new inputs into the first corpus directory and only reads the rest.
    if [[ $grow == 1 ]]; then
        dirs=("$corpus")
    else
        scratch=fuzz/target/scratch-corpus/$t
        rm -rf "$scratch"
        mkdir -p "$scratch"
        dirs=("$scratch" "$corpus")
    fi
    echo "== $t, ${seconds}s"
    log=$(mktemp)
    # -max_total_time bounds the run; -timeout flags a single slow input as a crash.
    if ! cargo fuzz run --fuzz-dir fuzz "$t" "${dirs[@]}" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 2>"$log"; then
        tail -40 "$log" >&2
        rm -f "$log"
        echo "FAILED: $t (its input is in fuzz/artifacts/$t)" >&2
        exit 1
    fi
    grep -E "^Done [0-9]+ runs" "$log" | sed "s/^/$t: /" || tail -3 "$log"
    rm -f "$log"
    if [[ $grow == 1 ]]; then
        before=$(find "$corpus" -type f | wc -l)
        cargo fuzz cmin --fuzz-dir fuzz "$t" "$corpus" >/dev/null 2>&1
        echo "$t: corpus minimized from $before to $(find "$corpus" -type f | wc -l) inputs"
    fi
done
