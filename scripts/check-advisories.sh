#!/usr/bin/env bash
# Checks Cargo.lock against the RustSec advisory database (cargo-deny), offline.
#
# The database is a git checkout of https://github.com/rustsec/advisory-db kept outside the
# repository, at $RILL_ADVISORY_DB (default: $CARGO_HOME/advisory-db). None of the package
# registries a build machine here can reach carries a copy (crates.io, PyPI, npm and Debian were
# searched, 2026-12-06), so on a machine that cannot reach GitHub the check says plainly that it
# did not run; it never passes silently. Keep the copy current where GitHub is reachable:
#   bash scripts/check-advisories.sh --update
# A copy older than $RILL_ADVISORY_MAX_AGE_DAYS (default 90) is used with a warning.
set -euo pipefail
cd "$(dirname "$0")/.."

DENY_VERSION=0.20.2
db=${RILL_ADVISORY_DB:-${CARGO_HOME:-$HOME/.cargo}/advisory-db}
max_age_days=${RILL_ADVISORY_MAX_AGE_DAYS:-90}

if [ "${1:-}" = "--update" ]; then
  if [ -d "$db/.git" ]; then
    git -C "$db" pull --ff-only --quiet
  else
    git clone --quiet https://github.com/rustsec/advisory-db "$db"
  fi
  echo "advisories: database at $db updated to $(git -C "$db" log -1 --format=%cs)"
  exit 0
fi

if [ ! -d "$db/crates" ] || ! git -C "$db" rev-parse --git-dir >/dev/null 2>&1; then
  echo "advisories: NOT CHECKED - no RustSec advisory database at $db."
  echo "  None of the registries this machine reaches carries one; where GitHub is reachable,"
  echo "  run: bash scripts/check-advisories.sh --update"
  exit 0
fi

if ! cargo deny --version 2>/dev/null | grep -q "$DENY_VERSION"; then
  echo "advisories: building cargo-deny $DENY_VERSION from crates.io (about 3 min)" >&2
  cargo install --locked cargo-deny --version "$DENY_VERSION" >/dev/null
fi

last=$(git -C "$db" log -1 --format=%ct)
age_days=$(( ($(date +%s) - last) / 86400 ))
echo "advisories: RustSec database at $db, last changed $(date -u -d "@$last" +%F) (${age_days} days ago)"
if [ "$age_days" -gt "$max_age_days" ]; then
  echo "advisories: WARNING - the database is older than ${max_age_days} days; advisories since then are not known"
fi

# cargo-deny looks for the database under a name derived from its URL: link the copy there.
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
ln -s "$(readlink -f "$db")" "$root/advisory-db-3157b0e258782691"
config="$root/deny.toml"
sed "s|^db-urls|db-path = \"$root\"\ndb-urls|" deny.toml > "$config"
cargo deny --manifest-path Cargo.toml --config "$config" --offline --locked check advisories
