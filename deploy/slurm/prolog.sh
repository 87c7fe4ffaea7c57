#!/bin/sh
# Slurm Prolog (slurm.conf: Prolog=/etc/slurm/bridgeledger-prolog.sh): the job's
# start, with its account and GPUs, for bridgeledger. slurmd runs it as root in
# a clean environment (no PATH; SLURM_JOB_ID, SLURM_JOB_ACCOUNT, SLURM_JOB_GPUS,
# SLURMD_NODENAME set) and waits for it before the job starts, so it touches no
# network: it writes one record into the node's outbox and exits 0 at once.
# The bridgeledger-jobs service delivers the outbox to Kafka, with retries
# (agents/job_outbox.py). The epilog is this script with EVENT=end.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
EVENT=${BRIDGELEDGER_JOB_EVENT:-start}
SETTINGS=${BRIDGELEDGER_JOBS_SETTINGS:-/etc/bridgeledger/jobs.yaml}
# the outbox directory from the settings file (outbox: /path), or the default
OUTBOX=$(sed -n 's/^outbox:[[:space:]]*//p' "$SETTINGS" 2>/dev/null | tr -d "\"'" | head -n 1)
OUTBOX=${OUTBOX:-/var/spool/bridgeledger/jobs-outbox}
NOW=$(date +%s%N)
NAME="${NOW}-${SLURM_JOB_ID:-unknown}-${EVENT}"
if mkdir -p "$OUTBOX" 2>/dev/null &&
  printf 'event=%s\njob_id=%s\naccount=%s\nnode=%s\ngpus=%s\ntime_ns=%s\n' \
    "$EVENT" "${SLURM_JOB_ID:-}" "${SLURM_JOB_ACCOUNT:-}" "${SLURMD_NODENAME:-}" "${SLURM_JOB_GPUS:-}" "$NOW" \
    >"$OUTBOX/.$NAME.tmp" 2>/dev/null &&
  mv "$OUTBOX/.$NAME.tmp" "$OUTBOX/$NAME.job" 2>/dev/null; then
  :
else
  logger -t bridgeledger "job ${SLURM_JOB_ID:-?}: ${EVENT} event not written to $OUTBOX; the sacct poller will deliver it" 2>/dev/null
fi
exit 0
