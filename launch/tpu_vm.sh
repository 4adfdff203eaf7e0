#!/usr/bin/env bash
# Cloud TPU VM pod slice: the same jaxpara command on every worker
# (`--worker=all`); JAX's multi-controller runtime finds the other hosts by
# itself (jax.distributed.initialize() on a TPU pod, see jaxpara.sharding).
#
#   launch/tpu_vm.sh my-tpu us-central2-b --config=configs/icbhi_resnet18.py:se_spatial \
#       --workdir=gs://bucket/runs/c2 --config.data.root=/mnt/data/ICBHI
#
# Assumes jaxpara is installed on every worker in ~/jaxpara (e.g. with
# `--worker=all --command="git clone ... ~/jaxpara && pip install -e ~/jaxpara 'jax[tpu]'"`) and
# the corpus is readable at the same path on all of them. DRY_RUN=1 prints
# the gcloud command instead of running it.
set -euo pipefail

if [[ $# -lt 3 ]]; then
  echo "usage: $0 TPU_NAME ZONE [python -m jaxpara.main flags...]" >&2
  exit 2
fi
tpu_name="$1"
zone="$2"
shift 2

remote="cd ~/jaxpara && python3 -m jaxpara.main"
for arg in "$@"; do
  remote+=" $(printf '%q' "${arg}")"
done
cmd=(gcloud compute tpus tpu-vm ssh "${tpu_name}" --zone="${zone}" --worker=all
  --command="${remote}")
if [[ "${DRY_RUN:-0}" == "1" ]]; then
  printf '%q ' "${cmd[@]}"
  echo
  exit 0
fi
exec "${cmd[@]}"
