#!/usr/bin/env bash
# Fuzz the engine's on-disk decoders (fuzz/, its own workspace) for a
# bounded time each, then replay the corpus (checked-in seeds + whatever
# the run found) and the kept regressions. A crash it finds: minimize it
# (`cargo fuzz tmin`), add it to regressions/<target>/ under a name saying
# what it is; engine/tests/fuzz_regressions.rs checks those of wal_decode
# and checkpoint_decode on every `cargo test`. Stable toolchain: --sanitizer=none, and RUSTC_BOOTSTRAP=1
# for the -Z flags cargo-fuzz passes.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
secs=${FUZZ_SECONDS:-60}
for target in wal_decode wal_mutate checkpoint_decode; do
  mkdir -p "corpus/${target}" "regressions/${target}"
  echo "::: fuzz ${target} for ${secs} s"
  cargo fuzz run --sanitizer=none "${target}" "corpus/${target}" "seeds/${target}" -- \
    -max_total_time="${secs}" -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1
  echo "::: replay ${target} corpus"
  cargo fuzz run --sanitizer=none "${target}" "corpus/${target}" "seeds/${target}" \
    "regressions/${target}" -- -runs=0
done
