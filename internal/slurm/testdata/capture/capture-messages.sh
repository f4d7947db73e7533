#!/usr/bin/env bash
# Captures the messages Slurm prints for the errors the client classifies, from the real
# dev stack (run as root on the stack machine):
#   internal/slurm/testdata/capture/capture-messages.sh /path/to/.dev > slurm-22.05-messages.txt
# "down" cases use a copy of slurm.conf whose controller and slurmdbd ports nothing
# listens on, so no daemon is stopped. Each case: "### <who>: <command>", output, "rc=N".
set -u
STATE=${1:?state dir}
export SLURM_CONF=$STATE/etc/slurm.conf
DOWN=$(mktemp -d)
chmod 755 "$DOWN"
sed -e 's/^SlurmctldPort=.*/SlurmctldPort=1/' -e 's/^AccountingStoragePort=.*/AccountingStoragePort=1/' \
	"$SLURM_CONF" >"$DOWN/slurm.conf"
cp "$STATE/etc/gres.conf" "$DOWN/" 2>/dev/null
as() { runuser -u "$1" -- env SLURM_CONF="${CONF:-$SLURM_CONF}" "${@:2}"; }
case_() { # case_ USER CMD...
	echo "### $1: ${*:2}"
	timeout 60 runuser -u "$1" -- env SLURM_CONF="${CONF:-$SLURM_CONF}" "${@:2}" 2>&1 </dev/null
	echo "rc=$?"
}
cd /tmp
printf 'Slurm %s\n' "$(sinfo --version)"
run=$(as alice sbatch --parsable -p gpu -o /dev/null -D /tmp --wrap 'sleep 60')
held=$(as alice sbatch --parsable -p gpu -o /dev/null --hold --wrap 'sleep 60')
sleep 2
case_ alice sbatch --parsable -p gpu --gres=gpu:5 --wrap true
case_ alice sbatch --parsable -p nosuch --wrap true
case_ alice sbatch --parsable -p gpu --gres=foo:1 --wrap true
case_ alice sbatch --parsable -p gpu --mem=20000000 --wrap true
case_ alice sbatch --parsable -p gpu --time=abc --wrap true
case_ alice squeue -h -j 999999
case_ alice scontrol hold 999999
case_ alice scontrol release 999999
case_ alice scontrol requeue 999999
case_ alice scontrol requeuehold 999999
case_ alice scancel 999999
case_ alice scancel --batch --signal=USR2 "$held"
case_ alice scontrol requeue "$held"
case_ alice scontrol hold "$run"
case_ bob scontrol hold "$held"
case_ bob scontrol release "$held"
case_ bob scontrol requeuehold "$run"
case_ bob scancel "$run"
CONF=$DOWN/slurm.conf
case_ alice squeue -h
case_ alice sbatch --parsable -p gpu --wrap true
case_ alice scontrol ping
case_ alice scontrol show node -o
case_ alice scontrol hold "$held"
case_ alice scancel "$run"
case_ alice sacct -n -P -X -j "$run"
unset CONF
as alice scancel "$run" "$held"
rm -rf "$DOWN"
