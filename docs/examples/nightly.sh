#!/usr/bin/env bash
# Nightly timetable regeneration, for cron or a systemd timer (see docs/nightly.md).
#
#   nightly.sh INSTANCE.ctt RUNS_DIR [SECONDS]
#
# One run at a time: a second start while one is going skips at once (flock -n) and
# exits 0 with a line on stderr, so an overlapping cron slot never queues up behind it.
# Each night gets its own run directory RUNS_DIR/YYYY-MM-DD (a second run the same day
# is refused by islands itself: resume it or remove it). The run is nicer than the rest
# of the machine; its summary is RUNS_DIR/YYYY-MM-DD/summary.json (and, as printed, in
# RUNS_DIR/YYYY-MM-DD-HHMMSS.json: the only copy if the disk refused the run's files) and
# the timetable RUNS_DIR/YYYY-MM-DD/best.sol. The exit code is islands' own (docs/guide.md).
set -euo pipefail

instance=${1:?usage: nightly.sh INSTANCE.ctt RUNS_DIR [SECONDS]}
runs=${2:?usage: nightly.sh INSTANCE.ctt RUNS_DIR [SECONDS]}
seconds=${3:-3600}
islands=${ISLANDS:-islands}

mkdir -p "$runs"
exec 9>"$runs/.nightly.lock"
if ! flock -n 9; then
    echo "nightly.sh: a run is still going (lock $runs/.nightly.lock held); skipping this one" >&2
    exit 0
fi
out="$runs/$(date +%F)"
# Absolute paths: cron starts in $HOME, and `islands resume` may be run from anywhere.
exec nice -n 5 $islands run "$(realpath "$instance")" --time-limit "$seconds" \
    --out "$(realpath -m "$out")" --quiet --json >"$runs/$(date +%F-%H%M%S).json"
