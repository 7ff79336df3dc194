#!/usr/bin/env bash
# One run on a bare GPU machine (nvcc + cmake; no Node, no network): build the CUDA backend for sm_90,
# run every CUDA op against the CPU op, then the op benchmarks at the Llama-3-8B shape (Q4_0) and the
# attention op next to PyTorch SDPA when torch is there. Prints a compact summary last; full logs go
# to $OUT (the device tool's result folder) or build/gpu/logs. Meant to finish in under 6 minutes.
#   bash bench/gpu/run.sh            # everything
#   QUICK=1 bash bench/gpu/run.sh    # build + tests + one short benchmark
set -uo pipefail
cd "$(dirname "$0")/../.."
LOGS=${OUT:-build/gpu/logs}
mkdir -p "$LOGS"
BUILD=build/gpu
t0=$(date +%s)
elapsed() { echo $(( $(date +%s) - t0 )); }

echo "== machine"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,clocks.max.mem,driver_version --format=csv,noheader || true
nvcc --version | tail -1

echo "== build (sm_90)"
# Four log files at most (build, tests, bench, summary): the device tool brings back eight.
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
if ! { cmake -S native -B "$BUILD" ${gen[@]+"${gen[@]}"} -DCMAKE_BUILD_TYPE=Release -DHCATTN_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 &&
       cmake --build "$BUILD" -j"$(nproc)" --target hcattn-cuda test_cuda_matmul test_cuda_ops test_cuda_hcattn; } \
     >"$LOGS/build.log" 2>&1; then
  grep -E "error|Error" "$LOGS/build.log" | head -40; echo "build failed (log: $LOGS/build.log)"; exit 1
fi
# hcattn-cli reaches the same CUDA entry points (`hcattn-cli test|bench`); the measurements below do
# not depend on it, so a CLI that does not build yet is reported, not fatal.
cmake --build "$BUILD" -j"$(nproc)" --target hcattn-cli >>"$LOGS/build.log" 2>&1 || echo "note: hcattn-cli did not build (see build.log)"
echo "built in $(elapsed) s"

echo "== tests: every CUDA op against the CPU op"
{ (cd "$BUILD" && ctest -R test_cuda --output-on-failure --timeout 240); "$BUILD/hcattn-cuda" test; } >"$LOGS/tests.log" 2>&1
grep -E "FAIL|Skipped|tests passed|tests failed|^cuda test:" "$LOGS/tests.log"
echo "tests done at $(elapsed) s"

echo "== benchmarks"
: >"$LOGS/bench.log"
bench() {  # prints the whole output into bench.log, the key lines to the terminal
  echo "-- $*" >>"$LOGS/bench.log"
  timeout 150 "$BUILD/hcattn-cuda" bench --random "$@" 2>&1 | tee -a "$LOGS/bench.log" | grep -E "^(bench|gemv|gemm|attn|hc|host|memory|estimate|cuda bench)"
}
if [ "${QUICK:-0}" = 1 ]; then
  bench --shape llama3-8b --qtype q4_0 --ctx 131072 --kv 12.5% --quick
else
  bench --shape llama3-8b --qtype q4_0 --ctx 131072 --kv 12.5%
  bench --shape llama3-8b --qtype q4_0 --ctx 131072 --kv 25% --quick
  bench --shape llama3-8b --qtype q4_0 --ctx 1048576 --kv 12.5% --quick
  bench --shape llama3-8b --qtype q4_0 --ctx 1048576 --kv 25% --quick
  bench --shape llama32-1b --qtype q8_0 --ctx 131072 --kv 25% --quick
fi

echo "== PyTorch SDPA (same attention shapes, f16)"
if python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
  timeout 90 python3 - <<'PY' 2>&1 | tee -a "$LOGS/bench.log"
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
# SDPA's causal mask is top-left aligned when n_q < n_k, so the chunk-over-long-context shape runs unmasked.
bench(4096, 131072, False)
PY
else
  echo "torch with CUDA not available: no SDPA comparison" | tee -a "$LOGS/bench.log"
fi

{
  echo "================ summary ($(elapsed) s) ================"
  nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1
  grep -E "tests passed|tests failed|^cuda test:" "$LOGS/tests.log"
  grep -E "^(-- |gemv|gemm|attn|hc  |memory|estimate|sdpa|cuda bench)" "$LOGS/bench.log"
} | tee "$LOGS/summary.txt"
