#include "attention/cuda/op_check.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "attention/cuda/attention.cuh"
#include "attention/cuda/cuda_status.h"
#include "attention/cuda/device_model.h"
#include "attention/cuda/elementwise.cuh"
#include "attention/cuda/gemm.h"
#include "attention/cuda/rope.cuh"
#include "attention/cuda/sampling.cuh"
#include "attention/sampling.h"
#include "db/dtype.h"

namespace blockkv::cuda::opcheck {
namespace {

DType StorageDType(Precision p) { return p == Precision::kBF16 ? DType::kBF16 : DType::kF16; }

// Device copy of x in T.
StatusOr<DeviceBuffer> ToDevice(const std::vector<float>& x, Precision p) {
  std::vector<uint16_t> host(x.size());
  FromFloat(StorageDType(p), x.data(), host.data(), x.size());
  DeviceBuffer b;
  RETURN_IF_ERROR(b.Allocate(std::max<size_t>(host.size() * 2, 16)));
  CUDA_RETURN_IF_ERROR(cudaMemcpy(b.get(), host.data(), host.size() * 2, cudaMemcpyHostToDevice));
  return b;
}

template <typename U>
StatusOr<DeviceBuffer> ToDeviceRaw(const std::vector<U>& x) {
  DeviceBuffer b;
  RETURN_IF_ERROR(b.Allocate(std::max<size_t>(x.size() * sizeof(U), 16)));
  CUDA_RETURN_IF_ERROR(cudaMemcpy(b.get(), x.data(), x.size() * sizeof(U), cudaMemcpyHostToDevice));
  return b;
}

// A device buffer of n T or fp32 values filled with NaN bytes (0xff), so unwritten outputs show.
StatusOr<DeviceBuffer> Poisoned(size_t bytes) {
  DeviceBuffer b;
  RETURN_IF_ERROR(b.Allocate(std::max<size_t>(bytes, 16)));
  CUDA_RETURN_IF_ERROR(cudaMemset(b.get(), 0xff, bytes));
  return b;
}

StatusOr<std::vector<float>> FromDevice(const DeviceBuffer& b, size_t n, Precision p) {
  CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize());
  std::vector<uint16_t> host(n);
  CUDA_RETURN_IF_ERROR(cudaMemcpy(host.data(), b.get(), n * 2, cudaMemcpyDeviceToHost));
  std::vector<float> out(n);
  ToFloat(StorageDType(p), host.data(), out.data(), n);
  return out;
}

StatusOr<std::vector<float>> FromDeviceF32(const DeviceBuffer& b, size_t n) {
  CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize());
  std::vector<float> out(n);
  CUDA_RETURN_IF_ERROR(cudaMemcpy(out.data(), b.get(), n * 4, cudaMemcpyDeviceToHost));
  return out;
}

int SmCount() {
  int device = 0, sms = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  return sms;
}

}  // namespace

std::vector<float> RoundTo(const std::vector<float>& x, Precision precision) {
  std::vector<uint16_t> h(x.size());
  FromFloat(StorageDType(precision), x.data(), h.data(), x.size());
  std::vector<float> out(x.size());
  ToFloat(StorageDType(precision), h.data(), out.data(), x.size());
  return out;
}

StatusOr<std::vector<float>> Embed(const std::vector<float>& table, int dim, const std::vector<int32_t>& ids,
                                   Precision precision) {
  ASSIGN_OR_RETURN(DeviceBuffer t, ToDevice(table, precision));
  ASSIGN_OR_RETURN(DeviceBuffer i, ToDeviceRaw(ids));
  const size_t n = ids.size() * dim;
  ASSIGN_OR_RETURN(DeviceBuffer out, Poisoned(n * 4));
  RETURN_IF_ERROR(LaunchEmbed(t.get(), i.as<int32_t>(), static_cast<int64_t>(ids.size()), dim, out.as<float>(),
                              precision, nullptr));
  return FromDeviceF32(out, n);
}

StatusOr<std::vector<float>> RmsNorm(const std::vector<float>& x, const std::vector<float>& w, int64_t n, int dim,
                                     float eps, Precision precision) {
  ASSIGN_OR_RETURN(DeviceBuffer dx, ToDeviceRaw(x));
  ASSIGN_OR_RETURN(DeviceBuffer dw, ToDeviceRaw(w));
  ASSIGN_OR_RETURN(DeviceBuffer out, Poisoned(x.size() * 2));
  RETURN_IF_ERROR(LaunchRmsNorm(dx.as<float>(), dw.as<float>(), n, dim, eps, out.get(), precision, nullptr));
  return FromDevice(out, x.size(), precision);
}

StatusOr<std::vector<float>> SwiGlu(const std::vector<float>& gate_up, int64_t n, int inter, Precision precision) {
  ASSIGN_OR_RETURN(DeviceBuffer gu, ToDevice(gate_up, precision));
  const size_t count = static_cast<size_t>(n) * inter;
  ASSIGN_OR_RETURN(DeviceBuffer out, Poisoned(count * 2));
  RETURN_IF_ERROR(LaunchSwiGlu(gu.get(), n, inter, out.get(), precision, nullptr));
  return FromDevice(out, count, precision);
}

StatusOr<std::vector<float>> Linear(const std::vector<float>& x, const std::vector<float>& w, int64_t n, int in,
                                    int out, Precision precision, bool f32_out, const std::vector<float>* y0) {
  ASSIGN_OR_RETURN(DeviceBuffer dx, ToDevice(x, precision));
  ASSIGN_OR_RETURN(DeviceBuffer dw, ToDevice(w, precision));
  const size_t count = static_cast<size_t>(n) * out;
  ASSIGN_OR_RETURN(DeviceBuffer y, Poisoned(count * (f32_out ? 4 : 2)));
  Gemm::Output mode = f32_out ? Gemm::Output::kF32 : Gemm::Output::kStorage;
  if (y0 != nullptr) {
    CUDA_RETURN_IF_ERROR(cudaMemcpy(y.get(), y0->data(), count * 4, cudaMemcpyHostToDevice));
    mode = Gemm::Output::kF32Accumulate;
  }
  ASSIGN_OR_RETURN(std::unique_ptr<Gemm> gemm, Gemm::Create(8u << 20));
  RETURN_IF_ERROR(gemm->Linear(dx.get(), dw.get(), y.get(), n, in, out, mode, precision, nullptr));
  if (f32_out || y0 != nullptr) return FromDeviceF32(y, count);
  return FromDevice(y, count, precision);
}

StatusOr<QkvRopeOut> QkvRope(const std::vector<float>& qkv, const std::vector<float>& bias,
                             const std::vector<int32_t>& positions, const std::vector<float>& inv_freq, int heads,
                             int kv_heads, int head_dim, int rotary_dim, Precision precision) {
  const int64_t n = static_cast<int64_t>(positions.size());
  const size_t qn = static_cast<size_t>(n) * heads * head_dim, kn = static_cast<size_t>(n) * kv_heads * head_dim;
  ASSIGN_OR_RETURN(DeviceBuffer dqkv, ToDevice(qkv, precision));
  ASSIGN_OR_RETURN(DeviceBuffer dbias, ToDeviceRaw(bias));
  ASSIGN_OR_RETURN(DeviceBuffer dpos, ToDeviceRaw(positions));
  ASSIGN_OR_RETURN(DeviceBuffer dinv, ToDeviceRaw(inv_freq));
  ASSIGN_OR_RETURN(DeviceBuffer q, Poisoned(qn * 2));
  ASSIGN_OR_RETURN(DeviceBuffer k, Poisoned(kn * 2));
  ASSIGN_OR_RETURN(DeviceBuffer v, Poisoned(kn * 2));
  ASSIGN_OR_RETURN(DeviceBuffer kr, Poisoned(kn * 2));
  ASSIGN_OR_RETURN(DeviceBuffer vr, Poisoned(kn * 2));
  QkvRopeParams p;
  p.qkv = dqkv.get();
  p.bias = bias.empty() ? nullptr : dbias.as<float>();
  p.pos = dpos.as<int32_t>();
  p.inv_freq = dinv.as<float>();
  p.n = n;
  p.heads = heads, p.kv_heads = kv_heads, p.head_dim = head_dim, p.rotary_dim = rotary_dim;
  p.q = q.get(), p.k_cache = k.get(), p.v_cache = v.get(), p.rows_at_pos = false;
  p.k_raw = kr.get(), p.v_raw = vr.get();
  RETURN_IF_ERROR(LaunchQkvRope(p, precision, nullptr));
  QkvRopeOut out;
  ASSIGN_OR_RETURN(out.q, FromDevice(q, qn, precision));
  ASSIGN_OR_RETURN(out.k, FromDevice(k, kn, precision));
  ASSIGN_OR_RETURN(out.v, FromDevice(v, kn, precision));
  ASSIGN_OR_RETURN(out.k_raw, FromDevice(kr, kn, precision));
  ASSIGN_OR_RETURN(out.v_raw, FromDevice(vr, kn, precision));
  return out;
}

StatusOr<std::vector<float>> RopeKeys(const std::vector<float>& src, int64_t tokens, int kv_heads, int head_dim,
                                      int rotary_dim, const std::vector<float>& inv_freq, int64_t first_position,
                                      Precision precision) {
  ASSIGN_OR_RETURN(DeviceBuffer ds, ToDevice(src, precision));
  ASSIGN_OR_RETURN(DeviceBuffer dinv, ToDeviceRaw(inv_freq));
  ASSIGN_OR_RETURN(DeviceBuffer out, Poisoned(src.size() * 2));
  RETURN_IF_ERROR(LaunchRopeKeys(ds.get(), out.get(), tokens, kv_heads, head_dim, rotary_dim, dinv.as<float>(),
                                 first_position, precision, nullptr));
  return FromDevice(out, src.size(), precision);
}

StatusOr<std::vector<float>> Attention(const std::vector<float>& q, const std::vector<float>& k,
                                       const std::vector<float>& v, const std::vector<SeqSpec>& seqs, int q_tokens,
                                       int kv_tokens, int heads, int kv_heads, int head_dim, int num_splits,
                                       Precision precision, Kernel kernel) {
  (void)kv_tokens;
  ASSIGN_OR_RETURN(DeviceBuffer dq, ToDevice(q, precision));
  ASSIGN_OR_RETURN(DeviceBuffer dk, ToDevice(k, precision));
  ASSIGN_OR_RETURN(DeviceBuffer dv, ToDevice(v, precision));
  std::vector<AttnSeq> s;
  int max_rows = 0, max_keys = 0;
  const int group = heads / kv_heads;
  for (const SeqSpec& x : seqs) {
    s.push_back({x.q_begin, x.n, x.past, x.kv_begin});
    max_rows = std::max(max_rows, x.n * group);
    max_keys = std::max(max_keys, x.past + x.n);
  }
  ASSIGN_OR_RETURN(DeviceBuffer ds, ToDeviceRaw(s));
  const size_t count = static_cast<size_t>(q_tokens) * heads * head_dim;
  ASSIGN_OR_RETURN(DeviceBuffer out, Poisoned(count * 2));
  AttnParams p;
  p.q = dq.get(), p.k = dk.get(), p.v = dv.get(), p.out = out.get();
  p.seqs = ds.as<AttnSeq>();
  p.num_seqs = static_cast<int>(seqs.size());
  p.q_tokens = q_tokens;
  p.heads = heads, p.kv_heads = kv_heads, p.head_dim = head_dim;
  p.scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  p.max_rows = max_rows, p.max_keys = max_keys;
  const int sms = SmCount();
  // The kernel setting is process-wide; set it for this call only (the tests call ops from one thread).
  const AttnKernel previous = GetAttentionKernel();
  SetAttentionKernel(static_cast<AttnKernel>(kernel));
  struct Restore {
    AttnKernel k;
    ~Restore() { SetAttentionKernel(k); }
  } restore{previous};
  p.num_splits = num_splits > 0 ? num_splits : AttentionSplits(max_rows, max_keys, kv_heads, p.num_seqs, sms);
  DeviceBuffer ws;
  const size_t ws_floats = AttentionPartialFloats(p.num_splits, q_tokens, heads, head_dim);
  if (ws_floats > 0) {
    ASSIGN_OR_RETURN(ws, Poisoned(ws_floats * 4));
    p.workspace = ws.as<float>();
  }
  RETURN_IF_ERROR(LaunchAttention(p, precision, sms, nullptr));
  return FromDevice(out, count, precision);
}

bool WgmmaUsable() { return WgmmaAttentionUsable(); }

StatusOr<int32_t> ArgMax(const std::vector<float>& logits) {
  ASSIGN_OR_RETURN(DeviceBuffer dl, ToDeviceRaw(logits));
  ASSIGN_OR_RETURN(DeviceBuffer out, Poisoned(4));
  RETURN_IF_ERROR(LaunchArgMax(dl.as<float>(), static_cast<int>(logits.size()), out.as<int32_t>(), nullptr));
  CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize());
  int32_t idx = -1;
  CUDA_RETURN_IF_ERROR(cudaMemcpy(&idx, out.get(), 4, cudaMemcpyDeviceToHost));
  return idx;
}

StatusOr<std::vector<int32_t>> Sample(const std::vector<float>& logits, float temperature, int top_k, float top_p,
                                      uint64_t seed, int draws) {
  const int vocab = static_cast<int>(logits.size());
  ASSIGN_OR_RETURN(DeviceBuffer dl, ToDeviceRaw(logits));
  ASSIGN_OR_RETURN(const size_t scratch_bytes, SampleScratchBytes(vocab));
  ASSIGN_OR_RETURN(DeviceBuffer scratch, Poisoned(scratch_bytes));
  ASSIGN_OR_RETURN(DeviceBuffer out, Poisoned(4 * static_cast<size_t>(draws)));
  SamplingOptions so;
  so.seed = seed;
  const std::array<uint64_t, 4> state = Sampler(so).state();
  DeviceBuffer rng;
  RETURN_IF_ERROR(rng.Allocate(32));
  CUDA_RETURN_IF_ERROR(cudaMemcpy(rng.get(), state.data(), 32, cudaMemcpyHostToDevice));
  for (int i = 0; i < draws; ++i) {
    RETURN_IF_ERROR(LaunchSample(dl.as<float>(), vocab, SampleRule{temperature, top_k, top_p}, rng.as<uint64_t>(),
                                 scratch.get(), scratch.bytes(), out.as<int32_t>() + i, nullptr));
  }
  CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize());
  std::vector<int32_t> tokens(draws);
  CUDA_RETURN_IF_ERROR(cudaMemcpy(tokens.data(), out.get(), 4 * tokens.size(), cudaMemcpyDeviceToHost));
  return tokens;
}

}  // namespace blockkv::cuda::opcheck
