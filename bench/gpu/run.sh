#!/usr/bin/env bash
# One run on a bare GPU machine (nvcc + cmake; no Node, no network): build hcattn-cli with the CUDA
# backend for sm_90, run `hcattn-cli test` (every CUDA op against the CPU op, HCAttention selection
# GPU = CPU, whole models CUDA vs CPU on random-weight models it writes itself and on any fixtures in
# $MODELS), then `hcattn-cli bench` on random-weight 8B/1B models made on the GPU, and PyTorch SDPA on
# the same attention shapes when torch is there. Prints a compact summary last; full logs go to $OUT
# (the device tool's result folder) or build/gpu/logs. Meant to finish in under 6 minutes.
#   bash bench/gpu/run.sh              # everything
#   QUICK=1 bash bench/gpu/run.sh      # build + tests + one short benchmark
#   BUILD_ONLY=1 bash bench/gpu/run.sh # configure and build only (works without a GPU)
#   MODELS=DIR                         # fixture GGUFs for the whole-model checks (default build/test-data)
set -uo pipefail
cd "$(dirname "$0")/../.."
LOGS=${OUT:-build/gpu/logs}
mkdir -p "$LOGS"
BUILD=build/gpu
MODELS=${MODELS:-build/test-data}
t0=$(date +%s)
elapsed() { echo $(( $(date +%s) - t0 )); }
fail() { echo "run.sh: $*" | tee -a "$LOGS/summary.txt"; exit 1; }

echo "== machine"
command -v nvcc >/dev/null || fail "nvcc not found: this script needs the CUDA toolkit (a GPU machine's image, or PATH=/usr/local/cuda/bin:\$PATH)"
command -v cmake >/dev/null || fail "cmake not found"
nvcc --version | tail -1
if [ "${BUILD_ONLY:-0}" != 1 ]; then
  # Before a build of minutes: is there a GPU at all?
  gpus=$(nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,clocks.max.mem,driver_version --format=csv,noheader 2>&1) ||
    fail "no usable NVIDIA GPU here (nvidia-smi: ${gpus:-not found}); run on the GPU machine, or BUILD_ONLY=1 to only build"
  echo "$gpus"
fi

echo "== build hcattn-cli (sm_90)"
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
if ! { cmake -S native -B "$BUILD" ${gen[@]+"${gen[@]}"} -DCMAKE_BUILD_TYPE=Release -DHCATTN_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 &&
       cmake --build "$BUILD" -j"$(nproc)" --target hcattn-cli; } >"$LOGS/build.log" 2>&1; then
  grep -E "error|Error" "$LOGS/build.log" | head -40
  fail "build failed after $(elapsed) s (log: $LOGS/build.log)"
fi
echo "built in $(elapsed) s"
[ "${BUILD_ONLY:-0}" = 1 ] && exit 0

echo "== hcattn-cli test: ops, HCAttention selection, whole models (CUDA vs CPU)"
HCATTN_TEST_DATA="$MODELS" timeout 180 "$BUILD/hcattn-cli" test --models "$MODELS" >"$LOGS/tests.log" 2>&1
test_rc=$?
grep -E "^(FAIL|note:|cuda test)|^ok +model" "$LOGS/tests.log"
echo "tests exit $test_rc at $(elapsed) s"

echo "== benchmarks (random weights made on the GPU)"
: >"$LOGS/bench.log"
bench() {  # the whole output into bench.log, the key lines to the terminal
  echo "-- hcattn-cli bench $*" >>"$LOGS/bench.log"
  timeout 150 "$BUILD/hcattn-cli" bench --random "$@" 2>&1 | tee -a "$LOGS/bench.log" |
    grep -E "^(model|bench|gemv|gemm|attn|hc|host|memory|estimate|cuda bench)"
}
if [ "${QUICK:-0}" = 1 ]; then
  bench --shape llama3-8b --qtype q4_0 --ctx 131072 --kv 12.5% --quick
else
  bench --shape llama3-8b --qtype q4_0 --ctx 131072 --kv 25%
  bench --shape llama3-8b --qtype q4_0 --ctx 1048576 --kv 12.5% --quick
  [ "$(elapsed)" -lt 240 ] && bench --shape llama3-8b --qtype q4_0 --ctx 1048576 --kv 25% --quick
  [ "$(elapsed)" -lt 270 ] && bench --shape llama32-1b --qtype q8_0 --ctx 131072 --kv 12.5% --quick
fi

echo "== PyTorch SDPA (same attention shapes, f16)"
if [ "$(elapsed)" -lt 320 ] && python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
  timeout 60 python3 - <<'PY' 2>&1 | tee -a "$LOGS/bench.log"
import torch, torch.nn.functional as F
torch.manual_seed(0)
def bench(n_q, n_k, causal):
    q = torch.randn(1, 32, n_q, 128, device="cuda", dtype=torch.float16)
    k = torch.randn(1, 32, n_k, 128, device="cuda", dtype=torch.float16)  # GQA expanded: 32 heads
    v = torch.randn_like(k)
    for _ in range(2):
        F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    times = []
    for _ in range(5):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(); F.scaled_dot_product_attention(q, k, v, is_causal=causal); b.record()
        torch.cuda.synchronize(); times.append(a.elapsed_time(b))
    ms = sorted(times)[2]
    pairs = n_q * n_k / 2 if causal else n_q * n_k
    print(f"sdpa   {n_q:6d} queries over {n_k:7d} keys ({'causal' if causal else 'no mask'}): {ms:9.3f} ms/layer  {4*128*32*pairs/ms/1e9:6.1f} TFLOP/s")
bench(4096, 4096, True)
bench(8192, 8192, True)
# SDPA's causal mask is top-left aligned when n_q < n_k, so the chunk-over-long-context shapes run unmasked.
bench(1024, 131072, False)
bench(1, 131072, False)
PY
else
  echo "torch with CUDA not available (or no time left): no SDPA comparison" | tee -a "$LOGS/bench.log"
fi

{
  echo "================ summary ($(elapsed) s) ================"
  nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1
  grep -E "^(FAIL|cuda test)" "$LOGS/tests.log"
  grep -E "^(-- |model|gemv|gemm|attn|hc  |memory|estimate|sdpa|cuda bench)" "$LOGS/bench.log"
} | tee "$LOGS/summary.txt"
exit "$test_rc"
