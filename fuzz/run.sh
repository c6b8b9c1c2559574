#!/usr/bin/env bash
# Builds and runs every fuzz target for SECONDS each (default 60), one after the other.
#
#   fuzz/run.sh [SECONDS]
#
# Exits non-zero if any target finds a crash (a panic, a failed assertion, a sanitizer
# report, a timeout or an out-of-memory). Each finding is left in
# fuzz/artifacts/TARGET/ (the run's log in fuzz/artifacts/TARGET.log) and printed here in hex and as the decoded input; reproduce it
# with `RUSTC_BOOTSTRAP=1 cargo fuzz run -a TARGET fuzz/artifacts/TARGET/FILE` from fuzz/.
# The corpus grows in fuzz/corpus/TARGET/ and is reused by later runs. Both are ignored by
# git.
#
# cargo-fuzz passes nightly-only `-Z` flags to rustc (the sanitizer, coverage
# instrumentation). RUSTC_BOOTSTRAP=1 is the way the stable toolchain accepts them; no
# nightly toolchain is needed.
#
# Extra libFuzzer flags can be given in FUZZ_ARGS, for example FUZZ_ARGS="-max_len=65536".
set -euo pipefail
cd "$(dirname "$0")"

seconds="${1:-60}"
case "$seconds" in
  '' | *[!0-9]*)
    echo "usage: fuzz/run.sh [SECONDS]" >&2
    exit 2
    ;;
esac

export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

targets=(encode_roundtrip decode_arbitrary last_event_id)
declare -A dicts=(
  [encode_roundtrip]=dict/sse.dict
  [decode_arbitrary]=dict/sse.dict
  [last_event_id]=dict/last_event_id.dict
)

# cargo-fuzz itself.
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
cargo fuzz --version

# libfuzzer-sys compiles libFuzzer's C++ sources: a C++ compiler is needed.
if ! command -v c++ >/dev/null 2>&1 && ! command -v g++ >/dev/null 2>&1 &&
  ! command -v clang++ >/dev/null 2>&1; then
  echo "==> installing clang"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang
fi
if ! command -v c++ >/dev/null 2>&1 && ! command -v g++ >/dev/null 2>&1; then
  export CC="${CC:-clang}" CXX="${CXX:-clang++}"
fi

# Release mode with debug assertions (overflow checks included), AddressSanitizer.
echo "==> building the fuzz targets"
cargo fuzz build --debug-assertions

failed=()
started="$(mktemp)"
trap 'rm -f "$started"' EXIT
for target in "${targets[@]}"; do
  echo
  echo "==> fuzzing $target for ${seconds}s"
  mkdir -p "corpus/$target" "artifacts/$target"
  # shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags.
  if cargo fuzz run --debug-assertions "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=30 \
    -dict="${dicts[$target]}" -print_final_stats=1 ${FUZZ_ARGS:-} \
    >"artifacts/$target.log" 2>&1; then
    # libFuzzer's progress lines stay in the log; show its final statistics.
    grep -E '^(Done [0-9]+ runs|stat::)' "artifacts/$target.log" || tail -n 5 "artifacts/$target.log"
  else
    failed+=("$target")
    tail -n 40 "artifacts/$target.log"
    find "artifacts/$target" -type f -newer "$started" | sort | while read -r artifact; do
      echo "--- finding: $artifact"
      echo "hex: $(od -An -v -tx1 "$artifact" | tr -d ' \n')"
      cargo fuzz fmt --debug-assertions "$target" "$artifact" 2>&1 || true
    done
  fi
done

echo
if [ "${#failed[@]}" -ne 0 ]; then
  echo "fuzzing found crashes in: ${failed[*]}"
  exit 1
fi
echo "fuzzing: ${#targets[@]} targets ran ${seconds}s each without a finding"
