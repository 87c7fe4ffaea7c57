#!/bin/sh
# Slurm Prolog (slurm.conf: Prolog=/etc/slurm/bridgeledger-prolog.sh): announce
# the job's start and its GPUs to bridgeledger. It never fails the job: if
# Kafka is unreachable the event is logged, and the sacct poller
# (`bridgeledger jobs sacct`, from a timer) delivers it later.
SITE=${BRIDGELEDGER_SITE:-$(cat /etc/bridgeledger/site 2>/dev/null)}
GPUS=$(nvidia-smi --query-gpu=index,uuid --format=csv,noheader 2>/dev/null |
  awk -F', ' -v want=",${SLURM_JOB_GPUS}," 'index(want, "," $1 ",") { printf "%s%s", sep, $2; sep = "," }')
/opt/bridgeledger/bin/bridgeledger jobs emit --event start --site "$SITE" --gpus "$GPUS" --kafka \
  || logger -t bridgeledger "job ${SLURM_JOB_ID}: start event not sent; sacct poller will deliver it"
exit 0
