#!/usr/bin/env bash
# Benchmark `atlas backup` against restic and BorgBackup on the same seeded ~1 GiB corpus.
#
# Installs restic, borgbackup and GNU time from Debian when they are missing (needs root
# and apt-get), makes sure the project's .venv exists, then runs bench/backup_vs_restic.py
# with the arguments given here, for example:
#
#   bench/backup_vs_restic.sh --rounds 3 --corpus-cache /var/tmp/atlas-bench
#   bench/backup_vs_restic.sh --others-sqlite copy
#
# It needs about 6 GiB of free disk per round under $TMPDIR (or --workdir), because every
# round's files stay until the last round ends, and takes several minutes
# per round on 2 cores. Results belong in docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v restic >/dev/null || missing+=(restic)
command -v borg >/dev/null || missing+=(borgbackup)
[ -x /usr/bin/time ] || missing+=(time)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "missing ${missing[*]}: install them with apt-get as root, then run this again" >&2
    exit 1
  fi
  echo "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null && apt-get install -y -qq "${missing[@]}" >/dev/null; }
fi

# The venv with the compiled chunker, built the way `make test` builds it.
make --no-print-directory .venv/.installed-stamp >/dev/null
# Byte-compile the project as an installed wheel would be, so that no run pays for compiling
# it (a shell with PYTHONDONTWRITEBYTECODE=1 never writes these files on its own).
.venv/bin/python -m compileall -q atlas_tui storage collectors >/dev/null

echo "restic: $(restic version | head -1)"
echo "borg: $(borg --version)"
echo "atlas: commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' with local changes')"
exec .venv/bin/python bench/backup_vs_restic.py "$@"
