#!/usr/bin/env bash
# Instructions per request through the layer (callgrind), for each commit given (default: the
# working tree), e.g. `benchmark/instructions/instructions.sh 578d0e0 HEAD work`.
# Counts instructions, not time: repeatable on a shared, noisy machine (criterion's `layer`
# bench is not, here). Needs valgrind (`apt-get install valgrind`).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out="$repo/target/instructions"
n=${N:-2000}
command -v valgrind >/dev/null || { echo "valgrind is needed: apt-get install valgrind" >&2; exit 1; }
revs=("$@")
[ ${#revs[@]} -eq 0 ] && revs=(work)
count() { # binary workload requests -> instructions
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$1" "$2" "$3" 2>&1 |
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
printf '%-10s %8s %8s %8s %8s\n' commit plain read write new
for rev in "${revs[@]}"; do
  if [ "$rev" = work ]; then
    src=$repo
  else
    src="$out/src-$rev"
    [ -d "$src" ] || git -C "$repo" worktree add -q --detach "$src" "$rev"
  fi
  harness="$out/harness-$rev"
  mkdir -p "$harness"
  cp -r "$here/src" "$here/Cargo.lock" "$harness/" 2>/dev/null || cp -r "$here/src" "$harness/"
  sed "s#path = \"../..\"#path = \"$src\"#" "$here/Cargo.toml" >"$harness/Cargo.toml"
  (cd "$harness" && CARGO_TARGET_DIR="$out/target-$rev" cargo build --release -q)
  bin="$out/target-$rev/release/sessionware-instructions"
  line=$(printf '%-10s' "$rev")
  for workload in plain read write new; do
    one=$(count "$bin" "$workload" "$n")
    two=$(count "$bin" "$workload" $((2 * n)))
    line+=$(printf ' %8d' $(((two - one) / n)))
  done
  echo "$line"
done
