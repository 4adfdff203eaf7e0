#!/usr/bin/env bash
# Throughput and model FLOP utilisation of jaxpara on an accelerator (issue 15).
#
#   bash benchmarks/gpu.sh [--rounds N] [--models a,b] [--quick] [--out DIR]
#
# Runs, in float32 and in bfloat16 (model.dtype / torch autocast):
#   * benchmarks/vs_pytorch.py (all seven models, JAX vs torch eager, --device=auto)
#   * benchmarks/resnet_step.py (ResNet-18 attention variants)
#   * benchmarks/convlstm_scan.py (SACRNN vs T_s)
# writes one JSON per run to DIR (default benchmarks/results/<backend>/) and
# prints the examples/s and MFU tables (benchmarks/summarise.py). MFU = the
# step's dot/conv FLOPs (jaxpr, scans times their length) / step time / the
# device's dense peak for the dtype (vs_pytorch.PEAK_FLOPS; float32 runs also
# report MFU against the TF32 tensor peak, which XLA uses for f32 by default).
#
# It runs anywhere: with no GPU it benchmarks the CPU (peak estimated from
# cores x clock x vector width). --quick shrinks everything to a smoke test
# (2 small models at batch 2, reduced-width ResNet / ConvLSTM, 1 step) for a
# CPU check of the script itself: `bash benchmarks/gpu.sh --quick --rounds 1`.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=5
MODELS=""
QUICK=0
OUT=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2 ;;
    --rounds=*) ROUNDS="${1#*=}"; shift ;;
    --models) MODELS="$2"; shift 2 ;;
    --models=*) MODELS="${1#*=}"; shift ;;
    --out) OUT="$2"; shift 2 ;;
    --out=*) OUT="${1#*=}"; shift ;;
    --quick) QUICK=1; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "gpu.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

BACKEND=$(python -c "import jax; print(jax.default_backend())" 2>/dev/null)
DEVICE=$(python -c "import jax; print(jax.devices()[0].device_kind)" 2>/dev/null)
OUT=${OUT:-benchmarks/results/${BACKEND}}
mkdir -p "$OUT"
echo "gpu.sh: JAX backend ${BACKEND} (${DEVICE}); results in ${OUT}" >&2
if [[ "$BACKEND" == "gpu" ]]; then
  nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv >&2 || true
fi

VS_ARGS=(--rounds "$ROUNDS" --device auto)
RESNET_ARGS=(--steps "$ROUNDS")
CONVLSTM_ARGS=(--steps "$ROUNDS")
if [[ "$QUICK" == 1 ]]; then
  VS_ARGS+=(--batch 2 --models "${MODELS:-acrnn,blstm_fcn}")
  RESNET_ARGS=(--steps 1 --batch 2 --variants none se_spatial --widths 8 16 16 32)
  CONVLSTM_ARGS=(--steps 1 --batch 2 --iterations 2 4 --convlstm-features 8)
elif [[ -n "$MODELS" ]]; then
  VS_ARGS+=(--models "$MODELS")
fi

for DTYPE in float32 bfloat16; do
  echo "== ${DTYPE}: vs_pytorch.py" >&2
  python benchmarks/vs_pytorch.py "${VS_ARGS[@]}" --dtype "$DTYPE" \
    --out "$OUT/vs_pytorch_${BACKEND}_${DTYPE}.json" > /dev/null
  echo "== ${DTYPE}: resnet_step.py" >&2
  python benchmarks/resnet_step.py "${RESNET_ARGS[@]}" --dtype "$DTYPE" \
    --out "$OUT/resnet_step_${BACKEND}_${DTYPE}.json" > /dev/null
  echo "== ${DTYPE}: convlstm_scan.py" >&2
  python benchmarks/convlstm_scan.py "${CONVLSTM_ARGS[@]}" --dtype "$DTYPE" \
    --out "$OUT/convlstm_scan_${BACKEND}_${DTYPE}.json" > /dev/null
done

python benchmarks/summarise.py "$OUT"/*.json | tee "$OUT/summary.txt"
