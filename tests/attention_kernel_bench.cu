// blockkv_attn_bench: the attention kernels alone, mma.sync against wgmma, on Llama-3.1-8B's heads
// (32 query heads, 8 KV heads, head_dim 128, bf16), per layer call. The per-kernel figures in docs/cuda.md
// ("Attention") come from it:
//
//   blockkv_attn_bench [CASE] [--json FILE]      CASE: final50@32K, prefill8K, prefill32K, encode32K or
//                                                 decode@32K (one token over 32K keys)
//                                                 (default: all)
//
// encode32K is the batched encoding of 32718 tokens of passages of 100-200 tokens, each causal over itself
// (one call with a sequence per passage, as EncodeBlocks runs it); FLOP counts the real tokens only.
//
// Each case launches LaunchAttention with the split count the runtime would choose, 3 warm-up calls, then
// the mean of 20 (3 for 32K prefill) timed with CUDA events. FLOP: 4 · rows · keys · head_dim (causal
// prefill: half the square). Inputs are uniform in [-1, 1]. Without a usable wgmma kernel (not sm_90)
// only the mma.sync rows are printed.
#include <cuda_bf16.h>

#include <cmath>
#include <cstdio>
#include <algorithm>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "attention/cuda/attention.cuh"

using namespace blockkv::cuda;

namespace {

struct Case {
  const char* name;
  int n, past;  // final-block tokens and the keys before them (0: a causal prefill of n tokens)
  bool encode = false;  // n tokens as passages of 100-200 tokens, each causal over itself (batched encoding)
};

// The passage lengths of the encode case: 100 + (37 i mod 101) tokens, n in all (sdpa_bench.py uses the same).
std::vector<int> PassageLengths(int n) {
  std::vector<int> lengths;
  for (int i = 0, total = 0; total < n; ++i) {
    const int len = std::min(100 + (37 * i) % 101, n - total);
    lengths.push_back(len);
    total += len;
  }
  return lengths;
}

bool Ok(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return true;
  std::fprintf(stderr, "blockkv_attn_bench: %s: %s\n", what, cudaGetErrorString(e));
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  std::string only, json_path;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--json") == 0 && i + 1 < argc) json_path = argv[++i];
    else only = argv[i];
  }
  const Case cases[] = {{"final50@32K", 50, 32718},
                        {"prefill8K", 8192, 0},
                        {"prefill32K", 32768, 0},
                        {"encode32K", 32718, 0, true},
                        {"decode@32K", 1, 32767}};
  constexpr int kKvHeads = 8, kHeads = 32, kDim = 128, kGroup = kHeads / kKvHeads;
  int sms = 0;
  if (!Ok(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0), "no CUDA device")) return 1;
  std::string json = "[";
  std::printf("| case | kernel | splits | ms per layer call | TFLOP/s | x32 layers, ms |\n|---|---|---:|---:|---:|---:|\n");
  for (const Case& c : cases) {
    if (!only.empty() && only != c.name) continue;
    const int keys = c.past + c.n;
    std::vector<__nv_bfloat16> q(static_cast<size_t>(c.n) * kHeads * kDim), k(static_cast<size_t>(keys) * kKvHeads * kDim);
    unsigned state = 7;
    auto uniform = [&] {
      state = state * 1103515245u + 12345u;
      return ((state >> 16) % 2001) / 1000.0f - 1.0f;
    };
    for (auto& x : q) x = __float2bfloat16(uniform());
    for (auto& x : k) x = __float2bfloat16(uniform());
    void *dq = nullptr, *dk = nullptr, *dv = nullptr, *out = nullptr, *seqs = nullptr;
    float* ws = nullptr;
    const size_t ws_floats = AttentionPartialFloats(128, c.n, kHeads, kDim);
    // One sequence, or (encode) one per passage, its queries and keys at the same rows.
    std::vector<AttnSeq> seq_list;
    double flop = c.past > 0 ? 4.0 * c.n * kHeads * static_cast<double>(keys) * kDim
                             : 4.0 * kHeads * kDim * static_cast<double>(c.n) * c.n / 2;
    int max_n = c.n;
    if (c.encode) {
      flop = 0;
      max_n = 0;
      int row = 0;
      for (int len : PassageLengths(c.n)) {
        seq_list.push_back({row, len, 0, row});
        flop += 4.0 * kHeads * kDim * static_cast<double>(len) * len / 2;
        max_n = std::max(max_n, len);
        row += len;
      }
    } else {
      seq_list.push_back({0, c.n, c.past, 0});
    }
    if (!Ok(cudaMalloc(&dq, q.size() * 2), "cudaMalloc") || !Ok(cudaMalloc(&dk, k.size() * 2), "cudaMalloc") ||
        !Ok(cudaMalloc(&dv, k.size() * 2), "cudaMalloc") || !Ok(cudaMalloc(&out, q.size() * 2), "cudaMalloc") ||
        !Ok(cudaMalloc(&seqs, seq_list.size() * sizeof(AttnSeq)), "cudaMalloc") ||
        !Ok(cudaMalloc(&ws, ws_floats * 4), "cudaMalloc")) {
      return 1;
    }
    cudaMemcpy(dq, q.data(), q.size() * 2, cudaMemcpyHostToDevice);
    cudaMemcpy(dk, k.data(), k.size() * 2, cudaMemcpyHostToDevice);
    cudaMemcpy(dv, k.data(), k.size() * 2, cudaMemcpyHostToDevice);
    cudaMemcpy(seqs, seq_list.data(), seq_list.size() * sizeof(AttnSeq), cudaMemcpyHostToDevice);
    for (AttnKernel kernel : {AttnKernel::kMmaSync, AttnKernel::kWgmma}) {
      if (kernel == AttnKernel::kWgmma && !WgmmaAttentionUsable()) continue;
      SetAttentionKernel(kernel);
      AttnParams p;
      p.q = dq, p.k = dk, p.v = dv, p.out = out;
      p.seqs = static_cast<AttnSeq*>(seqs), p.num_seqs = static_cast<int>(seq_list.size());
      p.q_tokens = c.n, p.heads = kHeads, p.kv_heads = kKvHeads, p.head_dim = kDim;
      p.scale = 1.0f / std::sqrt(static_cast<float>(kDim));
      p.max_rows = max_n * kGroup, p.max_keys = c.encode ? max_n : keys;
      p.num_splits = AttentionSplits(p.max_rows, p.max_keys, kKvHeads, p.num_seqs, sms);
      p.workspace = ws;
      for (int i = 0; i < 3; ++i) {
        const blockkv::Status s = LaunchAttention(p, Precision::kBF16, sms, nullptr);
        if (!s.ok()) {
          std::fprintf(stderr, "blockkv_attn_bench: %s\n", s.ToString().c_str());
          return 1;
        }
      }
      cudaEvent_t start, stop;
      cudaEventCreate(&start);
      cudaEventCreate(&stop);
      const int reps = c.n > 10000 && !c.encode ? 3 : 20;
      cudaEventRecord(start);
      for (int i = 0; i < reps; ++i) (void)LaunchAttention(p, Precision::kBF16, sms, nullptr);
      cudaEventRecord(stop);
      if (!Ok(cudaEventSynchronize(stop), "timed launches")) return 1;
      float ms = 0;
      cudaEventElapsedTime(&ms, start, stop);
      ms /= reps;
      const char* name = kernel == AttnKernel::kMmaSync ? "mma.sync" : "wgmma";
      std::printf("| %s | %s | %d | %.3f | %.1f | %.2f |\n", c.name, name, p.num_splits, ms, flop / ms / 1e9, ms * 32);
      char row[256];
      std::snprintf(row, sizeof(row),
                    "%s{\"case\": \"%s\", \"kernel\": \"%s\", \"splits\": %d, \"ms\": %.4f, \"tflops\": %.1f}",
                    json.size() > 1 ? ", " : "", c.name, name, p.num_splits, ms, flop / ms / 1e9);
      json += row;
    }
    cudaFree(dq), cudaFree(dk), cudaFree(dv), cudaFree(out), cudaFree(seqs), cudaFree(ws);
  }
  json += "]\n";
  if (!json_path.empty()) std::ofstream(json_path) << json;
  return 0;
}
