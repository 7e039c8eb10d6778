#!/usr/bin/env bash
# Checks Cargo.lock against the RustSec advisory database (cargo-deny), offline.
#
# The database travels with the repository: .ci/advisory-db holds the advisories (crates/ and
# rust/) of https://github.com/rustsec/advisory-db (CC0) at the commit and date in
# .ci/advisory-db.version, because none of the package registries a build machine here reaches
# carries a copy (crates.io, PyPI, npm and Debian were searched, 2026-12-06). A fresher git
# checkout at $RILL_ADVISORY_DB is used instead when there is one. Refresh the snapshot where
# GitHub is reachable, and commit it:
#   bash scripts/check-advisories.sh --update
# A snapshot older than $RILL_ADVISORY_MAX_AGE_DAYS (default 90) is used with a warning.
set -euo pipefail
cd "$(dirname "$0")/.."

UPSTREAM=https://github.com/rustsec/advisory-db
snapshot=.ci/advisory-db
version_file=.ci/advisory-db.version
max_age_days=${RILL_ADVISORY_MAX_AGE_DAYS:-90}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ "${1:-}" = "--update" ]; then
  git clone --quiet --depth 1 "$UPSTREAM" "$work/upstream"
  rm -rf "$snapshot"
  mkdir -p "$snapshot"
  cp -r "$work/upstream"/{crates,rust,LICENSE.txt,support.toml} "$snapshot/"
  git -C "$work/upstream" log -1 --format='%H %cI' > "$version_file"
  echo "advisories: $snapshot is now $UPSTREAM at $(cat "$version_file"); commit it"
  exit 0
fi

source scripts/install-tools.sh
ensure_cargo_deny

# cargo-deny reads the database from a git checkout (it asks git for the last commit's date),
# under a name derived from its URL.
db="$work/advisory-db-3157b0e258782691"
if [ -n "${RILL_ADVISORY_DB:-}" ]; then
  git -C "$RILL_ADVISORY_DB" rev-parse --git-dir >/dev/null
  ln -s "$(readlink -f "$RILL_ADVISORY_DB")" "$db"
  dated=$(git -C "$db" log -1 --format=%cI)
  source="the checkout at $RILL_ADVISORY_DB"
else
  read -r commit dated < "$version_file"
  mkdir "$db"
  cp -r "$snapshot"/. "$db/"
  git -C "$db" init --quiet
  git -C "$db" add --all
  GIT_COMMITTER_DATE=$dated GIT_AUTHOR_DATE=$dated git -C "$db" \
    -c user.name=rill -c user.email=rill@localhost commit --quiet -m "advisory-db $commit"
  source="the snapshot in $snapshot ($UPSTREAM at ${commit:0:12})"
fi

age_days=$(( ($(date +%s) - $(date -d "$dated" +%s)) / 86400 ))
echo "advisories: RustSec database from $source, last changed ${dated:0:10} (${age_days} days ago)"
if [ "$age_days" -gt "$max_age_days" ]; then
  echo "advisories: WARNING - the database is older than ${max_age_days} days; advisories since then" \
    "are not known (refresh: bash scripts/check-advisories.sh --update)"
fi

config="$work/deny.toml"
sed "s|^db-urls|db-path = \"$work\"\ndb-urls|" deny.toml > "$config"
cargo deny --manifest-path Cargo.toml --config "$config" --offline --locked check advisories
