#!/bin/sh
# Slurm Epilog (slurm.conf: Epilog=/etc/slurm/bridgeledger-epilog.sh): the job's end.
SITE=${BRIDGELEDGER_SITE:-$(cat /etc/bridgeledger/site 2>/dev/null)}
/opt/bridgeledger/bin/bridgeledger jobs emit --event end --site "$SITE" --kafka \
  || logger -t bridgeledger "job ${SLURM_JOB_ID}: end event not sent; sacct poller will deliver it"
exit 0
