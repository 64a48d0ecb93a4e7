#!/bin/sh
# The scheduled jobs of one smsreg deployment, in one small container (run it once per
# deployment, not per replica). A loop with sleep rather than cron: it needs no extra
# package, runs as the image's unprivileged user, logs to stdout like the other
# containers, and a restarted container simply runs every job again, which is safe:
#   smsreg ledger checkpoint   hourly  signs the ledger head; does nothing if nothing is new
#   smsreg purge               daily   the retention schedule; idempotent, resumable
#   smsreg credentials due     daily   lists passwords, API keys, second factors due
#   smsreg credentials rotate --due
#                              daily   re-encrypts TOTP secrets still under an older phone
#                                      key, so a retired key can leave the ring
# The intervals are seconds: SCHEDULE_HOURLY_SECONDS and SCHEDULE_DAILY_SECONDS.
set -u
hourly=${SCHEDULE_HOURLY_SECONDS:-3600}
daily=${SCHEDULE_DAILY_SECONDS:-86400}
trap 'echo "scheduler: stopping"; exit 0' TERM INT

run() {
    echo "scheduler: $(date -u +%Y-%m-%dT%H:%M:%SZ) running: smsreg $*"
    if smsreg "$@"; then
        echo "scheduler: smsreg $* done"
    else
        echo "scheduler: smsreg $* FAILED (exit $?); next try on its next turn" >&2
    fi
}

next_hourly=0
next_daily=0
while :; do
    now=$(date +%s)
    if [ "$now" -ge "$next_daily" ]; then
        run purge
        run credentials due
        run credentials rotate --due
        next_daily=$((now + daily))
    fi
    if [ "$now" -ge "$next_hourly" ]; then
        run ledger checkpoint
        next_hourly=$((now + hourly))
    fi
    sleep 30 &
    wait $!
done
