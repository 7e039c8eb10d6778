#!/usr/bin/env bash
# Fails when a dependency is declared but unused (cargo-machete), or when a crate is compiled in
# two versions that scripts/duplicate-deps.txt does not list with a reason. Part of test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo machete

# Every (name, version) pair in the graph of either build, then names seen in more than one version.
duplicates=$(cargo tree --workspace --all-features --target all --prefix none \
    --format '{p}' 2>/dev/null |
  awk '{ print $1, $2 }' | sort -u | awk '{ n[$1]++ } END { for (k in n) if (n[k] > 1) print k }' | sort)
allowed=$(grep -v '^#' scripts/duplicate-deps.txt | awk 'NF { print $1 }' | sort)
new=$(comm -23 <(printf '%s\n' "$duplicates") <(printf '%s\n' "$allowed") | sed '/^$/d')
if [ -n "$new" ]; then
  echo "crates compiled in more than one version, not in scripts/duplicate-deps.txt:" >&2
  for name in $new; do cargo tree --workspace --all-features --target all -d -i "$name" >&2 || true; done
  exit 1
fi
stale=$(comm -13 <(printf '%s\n' "$duplicates") <(printf '%s\n' "$allowed") | sed '/^$/d')
if [ -n "$stale" ]; then
  echo "scripts/duplicate-deps.txt lists crates that are no longer duplicated; remove them: $stale" >&2
  exit 1
fi
echo "dependencies: none unused, no unexpected duplicates"
