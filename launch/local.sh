#!/usr/bin/env bash
# N jaxpara processes on this machine, one CPU device each, talking through
# JAX's multi-controller runtime (gloo collectives): the multi-host code path,
# testable on a laptop.
#
#   launch/local.sh 2 --config=configs/demo.py --workdir=/tmp/demo2
#
# Every process gets the same main.py flags plus JAX_COORDINATOR_ADDRESS,
# JAX_NUM_PROCESSES and JAX_PROCESS_ID (read by jaxpara.sharding). Process 0
# logs to the terminal, process i > 0 to <workdir>/process_<i>.log. The exit
# status is non-zero if any process failed. JAXPARA_PORT picks the port
# (default 12355); JAXPARA_DEVICES_PER_PROCESS the host devices (default 1).
set -euo pipefail

if [[ $# -lt 1 || ! "$1" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 NUM_PROCESSES [python -m jaxpara.main flags...]" >&2
  exit 2
fi
num_processes="$1"
shift

workdir=""
for arg in "$@"; do
  case "${arg}" in
    --workdir=*) workdir="${arg#--workdir=}" ;;
  esac
done
if [[ -z "${workdir}" ]]; then
  echo "$0: --workdir=DIR is required" >&2
  exit 2
fi
mkdir -p "${workdir}"

port="${JAXPARA_PORT:-12355}"
devices="${JAXPARA_DEVICES_PER_PROCESS:-1}"
python="${PYTHON:-python3}"
pids=()
for ((i = 0; i < num_processes; i++)); do
  log="/dev/stdout"
  if ((i > 0)); then
    log="${workdir}/process_${i}.log"
  fi
  JAX_PLATFORMS=cpu \
    XLA_FLAGS="${XLA_FLAGS:-} --xla_force_host_platform_device_count=${devices}" \
    JAX_COORDINATOR_ADDRESS="localhost:${port}" \
    JAX_NUM_PROCESSES="${num_processes}" \
    JAX_PROCESS_ID="${i}" \
    "${python}" -m jaxpara.main "$@" >"${log}" 2>&1 &
  pids+=("$!")
done

status=0
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then
    where="above"
    if ((i > 0)); then
      where="${workdir}/process_${i}.log"
    fi
    echo "$0: process ${i} failed (log: ${where})" >&2
    status=1
  fi
done
exit "${status}"
