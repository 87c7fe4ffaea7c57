#!/bin/sh
# Slurm Epilog (slurm.conf: Epilog=/etc/slurm/bridgeledger-epilog.sh): the job's
# end, written to the node's outbox like the start (see prolog.sh). Install
# prolog.sh next to it as /etc/slurm/bridgeledger-prolog.sh.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
BRIDGELEDGER_JOB_EVENT=end
export PATH BRIDGELEDGER_JOB_EVENT
exec /bin/sh "$(dirname "$0")/bridgeledger-prolog.sh"
