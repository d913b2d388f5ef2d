// Every CUDA kernel against the CPU backend's op (attention/cpu/ops.h, attention/rope.h) on fresh random
// inputs, outputs poisoned (NaN) before each run. Inputs are first rounded to the storage precision, so the
// only differences left are the GPU's arithmetic and its final rounding; tolerances follow from that:
//   one rounding of an fp32 result to bf16: relative error <= 2^-9 (fp16: 2^-12), so 4e-3 (fp16 1e-3) of
//   the largest magnitude covers it with margin; fp32 GEMM accumulation in another order: 1e-5.
// Without a CUDA device every case reports BLOCKKV_SKIPPED and returns.
#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>
#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>

#include "attention/cpu/ops.h"
#include "attention/cuda/cuda_runtime.h"
#include "attention/cuda/op_check.h"
#include "attention/rope.h"
#include "attention/sampling.h"
#include "tests/attention_test_util.h"
#include "tests/cuda_test_util.h"

namespace blockkv::testing {
namespace {

namespace bdata = boost::unit_test::data;
using cuda::Precision;

// Tolerance of one rounding to the storage type, relative to the largest magnitude.
double RoundingTol(Precision p) { return p == Precision::kBF16 ? 4e-3 : 1e-3; }

Precision PrecisionOf(int i) { return i == 0 ? Precision::kBF16 : Precision::kFP16; }


// q * cos + rotate_half(q) * sin of one token's heads at `position`, through the CPU's ApplyRope.
void CpuRope(const std::vector<float>& inv, int64_t position, float* x, int heads, int head_dim) {
  const RopeTable t = BuildRopeTable(inv, position, 1);
  ApplyRope(t, x, 1, heads, head_dim);
}

BOOST_AUTO_TEST_SUITE(cuda_ops)

BOOST_DATA_TEST_CASE(embed_is_an_exact_gather, bdata::make({0, 1}), prec) {
  if (!HaveGpu()) return;
  const Precision p = PrecisionOf(prec);
  TestRng rng(11 + prec);
  const int vocab = 1000, dim = 4096;
  const std::vector<float> table = cuda::opcheck::RoundTo(rng.Normals(vocab * dim), p);
  const std::vector<int32_t> ids = rng.Tokens(37, vocab);
  const std::vector<float> got = Get(cuda::opcheck::Embed(table, dim, ids, p));
  std::vector<float> want(ids.size() * dim);
  cpu::Embed(table.data(), ids.data(), static_cast<int64_t>(ids.size()), dim, want.data());
  BOOST_TEST(got == want);
}

BOOST_DATA_TEST_CASE(rmsnorm, bdata::make({1, 33}) * bdata::make({256, 4096}) * bdata::make({0, 1}), n, dim, prec) {
  if (!HaveGpu()) return;
  const Precision p = PrecisionOf(prec);
  TestRng rng(n * 7 + dim + prec);
  const std::vector<float> x = rng.Normals(n * dim, 3.0f);
  std::vector<float> w = rng.Normals(dim, 0.1f);
  for (float& v : w) v += 1.0f;
  const std::vector<float> got = Get(cuda::opcheck::RmsNorm(x, w, n, dim, 1e-5f, p));
  std::vector<float> want(n * dim);
  cpu::RmsNorm(x.data(), w.data(), n, dim, 1e-5f, want.data(), 1);
  BOOST_TEST(MaxRelError(got, want) <= RoundingTol(p));
}

BOOST_DATA_TEST_CASE(swiglu, bdata::make({1, 19}) * bdata::make({0, 1}), n, prec) {
  if (!HaveGpu()) return;
  const Precision p = PrecisionOf(prec);
  TestRng rng(n + 100 * prec);
  const int inter = 688;
  const std::vector<float> gu = cuda::opcheck::RoundTo(rng.Normals(n * 2 * inter, 2.0f), p);
  const std::vector<float> got = Get(cuda::opcheck::SwiGlu(gu, n, inter, p));
  std::vector<float> gate(n * inter), up(n * inter);
  for (int t = 0; t < n; ++t) {
    for (int j = 0; j < inter; ++j) {
      gate[t * inter + j] = gu[t * 2 * inter + j];
      up[t * inter + j] = gu[t * 2 * inter + inter + j];
    }
  }
  cpu::SwiGlu(gate.data(), up.data(), n * inter, 1);
  BOOST_TEST(MaxRelError(got, gate) <= RoundingTol(p));
}

BOOST_DATA_TEST_CASE(linear, bdata::make({1, 5, 300}) * bdata::make({0, 1}), n, prec) {
  if (!HaveGpu()) return;
  const Precision p = PrecisionOf(prec);
  TestRng rng(n * 3 + prec);
  const int in = 512, out = 264;
  const std::vector<float> x = cuda::opcheck::RoundTo(rng.Normals(n * in), p);
  const std::vector<float> w = cuda::opcheck::RoundTo(rng.Normals(out * in, 0.05f), p);
  std::vector<float> want(n * out);
  cpu::Linear(x.data(), w.data(), nullptr, n, in, out, want.data());
  // fp32 output: the same products, accumulated in fp32 in another order.
  BOOST_TEST(MaxRelError(Get(cuda::opcheck::Linear(x, w, n, in, out, p, true)), want) <= 1e-5);
  // Storage-type output: one more rounding.
  BOOST_TEST(MaxRelError(Get(cuda::opcheck::Linear(x, w, n, in, out, p, false)), want) <= RoundingTol(p));
  // Fused residual add: y0 + x W^T in fp32.
  const std::vector<float> y0 = rng.Normals(n * out);
  std::vector<float> want_acc = y0;
  cpu::LinearAccumulate(x.data(), w.data(), n, in, out, want_acc.data());
  BOOST_TEST(MaxRelError(Get(cuda::opcheck::Linear(x, w, n, in, out, p, true, &y0)), want_acc) <= 1e-5);
}

BOOST_DATA_TEST_CASE(qkv_rope_at_long_positions,
                     bdata::make({64, 128}) * bdata::make({false, true}) * bdata::make({0, 1}), head_dim, bias, prec) {
  if (!HaveGpu()) return;
  const Precision p = PrecisionOf(prec);
  TestRng rng(head_dim + bias * 5 + prec);
  const int n = 9, heads = 8, kv_heads = 2, qd = heads * head_dim, kvd = kv_heads * head_dim, width = qd + 2 * kvd;
  const std::vector<float> inv = ComputeInvFreq(Llama31Rope(head_dim));
  const std::vector<float> qkv = cuda::opcheck::RoundTo(rng.Normals(n * width), p);
  const std::vector<float> b = bias ? rng.Normals(width, 0.2f) : std::vector<float>();
  std::vector<int32_t> pos(n);
  for (int t = 0; t < n; ++t) pos[t] = static_cast<int32_t>(rng.Next() % 40000);
  const cuda::opcheck::QkvRopeOut got =
      Get(cuda::opcheck::QkvRope(qkv, b, pos, inv, heads, kv_heads, head_dim, head_dim, p));
  std::vector<float> q(n * qd), k(n * kvd), v(n * kvd);
  for (int t = 0; t < n; ++t) {
    for (int i = 0; i < width; ++i) {
      const float x = qkv[t * width + i] + (bias ? b[i] : 0.0f);
      if (i < qd) q[t * qd + i] = x;
      else if (i < qd + kvd) k[t * kvd + i - qd] = x;
      else v[t * kvd + i - qd - kvd] = x;
    }
  }
  // Pre-RoPE keys and values: the same fp32 sum rounded once, so exact.
  BOOST_TEST(got.k_raw == cuda::opcheck::RoundTo(k, p));
  BOOST_TEST(got.v_raw == cuda::opcheck::RoundTo(v, p));
  BOOST_TEST(got.v == cuda::opcheck::RoundTo(v, p));
  for (int t = 0; t < n; ++t) {
    CpuRope(inv, pos[t], q.data() + t * qd, heads, head_dim);
    CpuRope(inv, pos[t], k.data() + t * kvd, kv_heads, head_dim);
  }
  BOOST_TEST(MaxRelError(got.q, q) <= RoundingTol(p));
  BOOST_TEST(MaxRelError(got.k, k) <= RoundingTol(p));
}

BOOST_DATA_TEST_CASE(rope_keys_of_a_loaded_block, bdata::make({64, 128}) * bdata::make({0, 31000}), head_dim, offset) {
  if (!HaveGpu()) return;
  const Precision p = Precision::kBF16;
  TestRng rng(head_dim + offset);
  const int tokens = 150, kv_heads = 8;
  RopeConfig rope;  // Llama 2: theta 10000, no scaling
  rope.rotary_dim = head_dim;
  const std::vector<float> inv = ComputeInvFreq(rope);
  const std::vector<float> src = cuda::opcheck::RoundTo(rng.Normals(tokens * kv_heads * head_dim), p);
  const std::vector<float> got =
      Get(cuda::opcheck::RopeKeys(src, tokens, kv_heads, head_dim, head_dim, inv, offset, p));
  std::vector<float> want = src;
  const RopeTable table = BuildRopeTable(inv, offset, tokens);
  ApplyRope(table, want.data(), tokens, kv_heads, head_dim);
  BOOST_TEST(MaxRelError(got, want) <= RoundingTol(p));
}

// Attention: the CPU's CausalAttention over each sequence, on rounded inputs. Errors: the output's one
// rounding (2^-9 of |out| <= max|v|) plus the probabilities' rounding to T before P·V (2^-9 of each
// weight, so at most 2^-9 max|v|): 4e-3 of max|v| for bf16, 1e-3 for fp16.
struct AttnCase {
  std::vector<cuda::opcheck::SeqSpec> seqs;
  int q_tokens, kv_tokens;
};

using Kernel = cuda::opcheck::Kernel;

// Both kernels run every case: the mma.sync one everywhere, the wgmma one where the device has it (sm_90);
// kernel index 0 = mma.sync, 1 = wgmma.
bool KernelRuns(int kernel) {
  if (kernel == 0 || cuda::opcheck::WgmmaUsable()) return true;
  ReportSkipped("the wgmma attention kernel needs an sm_90 device");
  return false;
}

void CheckAttention(const AttnCase& c, int heads, int kv_heads, int head_dim, int splits, Precision p, uint64_t seed,
                    float q_scale, int kernel) {
  if (!KernelRuns(kernel)) return;
  TestRng rng(seed);
  const std::vector<float> q = cuda::opcheck::RoundTo(rng.Normals(c.q_tokens * heads * head_dim, q_scale), p);
  const std::vector<float> k = cuda::opcheck::RoundTo(rng.Normals(c.kv_tokens * kv_heads * head_dim), p);
  const std::vector<float> v = cuda::opcheck::RoundTo(rng.Normals(c.kv_tokens * kv_heads * head_dim), p);
  const std::vector<float> got = Get(
      cuda::opcheck::Attention(q, k, v, c.seqs, c.q_tokens, c.kv_tokens, heads, kv_heads, head_dim, splits, p,
                               kernel == 0 ? Kernel::kMmaSync : Kernel::kWgmma));
  std::vector<float> want(got.size(), std::numeric_limits<float>::quiet_NaN());
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  for (const auto& s : c.seqs) {
    const size_t qrow = static_cast<size_t>(heads) * head_dim, krow = static_cast<size_t>(kv_heads) * head_dim;
    cpu::CausalAttention(q.data() + s.q_begin * qrow, k.data() + s.kv_begin * krow, v.data() + s.kv_begin * krow, s.n,
                         s.past, heads, kv_heads, head_dim, scale, want.data() + s.q_begin * qrow, 4);
  }
  double err = 0, vmax = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double d = std::fabs(static_cast<double>(got[i]) - want[i]);
    err = std::isnan(d) ? std::numeric_limits<double>::infinity() : std::max(err, d);
  }
  for (float x : v) vmax = std::max(vmax, static_cast<double>(std::fabs(x)));
  BOOST_TEST_INFO("max abs error " << err << ", max |v| " << vmax << ", splits " << splits << ", kernel " << kernel);
  BOOST_TEST(err <= RoundingTol(p) * vmax);
}

BOOST_DATA_TEST_CASE(attention_batched_block_encoding,
                     bdata::make({64, 128}) * bdata::make({1, 4}) * bdata::make({0, 1}) * bdata::make({0, 1}), head_dim,
                     group, prec, kernel) {
  if (!HaveGpu()) return;
  // Five blocks of different lengths in one call, each causal over its own keys (positions 0 .. n-1).
  AttnCase c;
  int at = 0;
  for (int n : {1, 17, 64, 100, 130}) {
    c.seqs.push_back({at, n, 0, at});
    at += n;
  }
  c.q_tokens = c.kv_tokens = at;
  CheckAttention(c, 2 * group, 2, head_dim, 0, PrecisionOf(prec), head_dim + group + prec, 1.0f, kernel);
}

BOOST_DATA_TEST_CASE(attention_final_block_over_long_kv,
                     bdata::make({64, 128}) * bdata::make({1, 4}) * bdata::make({1, 7, 0}) * bdata::make({0, 1}), head_dim,
                     group, splits, kernel) {
  if (!HaveGpu()) return;
  // A 50-token final block over 3000 earlier keys: whole, split in 7, and split as the launcher chooses.
  AttnCase c{{{0, 50, 3000, 0}}, 50, 3050};
  CheckAttention(c, 8 * group, 8, head_dim, splits, Precision::kBF16, head_dim * 3 + group + splits, 2.0f, kernel);
}

BOOST_DATA_TEST_CASE(attention_long_causal_extend,
                     bdata::make({64, 128}) * bdata::make({1, 4}) * bdata::make({0, 1}) * bdata::make({0, 1}), head_dim,
                     group, prec, kernel) {
  if (!HaveGpu()) return;
  // 777 new tokens after 333 cached ones (an Extend; full prefill when past is 0): many row tiles, the
  // causal diagonal crossing key tiles at every offset, a ragged last tile.
  AttnCase c{{{0, 777, 333, 0}}, 777, 1110};
  CheckAttention(c, 4 * group, 4, head_dim, 0, PrecisionOf(prec), head_dim * 5 + group + prec, 1.5f, kernel);
}

BOOST_DATA_TEST_CASE(attention_decode_one_query,
                     bdata::make({64, 128}) * bdata::make({1, 4}) * bdata::make({0, 1}) * bdata::make({0, 1}), head_dim,
                     group, prec, kernel) {
  if (!HaveGpu()) return;
  AttnCase c{{{0, 1, 5000, 0}}, 1, 5001};
  CheckAttention(c, 8 * group, 8, head_dim, 0, PrecisionOf(prec), head_dim + group * 13 + prec, 3.0f, kernel);
}

BOOST_AUTO_TEST_CASE(attention_rejects_other_head_dims) {
  if (!HaveGpu()) return;
  AttnCase c{{{0, 4, 0, 0}}, 4, 4};
  const std::vector<float> x(4 * 2 * 32, 0.5f);
  auto r = cuda::opcheck::Attention(x, x, x, c.seqs, 4, 4, 2, 2, 32, 0, Precision::kBF16);
  BOOST_TEST(r.status().IsNotSupported());
}

BOOST_AUTO_TEST_CASE(argmax_keeps_the_lowest_of_equal_maxima) {
  if (!HaveGpu()) return;
  TestRng rng(5);
  std::vector<float> logits = rng.Normals(128256, 3.0f);
  BOOST_TEST(Get(cuda::opcheck::ArgMax(logits)) == ArgMax(logits));
  logits[70001] = 100.0f;
  logits[90000] = 100.0f;
  BOOST_TEST(Get(cuda::opcheck::ArgMax(logits)) == 70001);
  logits[3] = 100.0f;
  BOOST_TEST(Get(cuda::opcheck::ArgMax(logits)) == 3);
}

// Device sampling draws the host Sampler's tokens: the same generator sequence, order (ties by lower id) and
// top-k / top-p cuts. Both weigh in double; their sums differ only in rounding order (~1e-16 relative), so
// a draw could differ only if u fell that close to a boundary (expected never in these 64 x 8 draws).
struct SampleCase {
  float temperature;
  int top_k;
  float top_p;
};
const SampleCase kSampleCases[] = {{0.7f, 0, 1.0f}, {1.0f, 50, 1.0f}, {1.3f, 0, 0.9f}, {0.8f, 40, 0.95f},
                                   {1.0f, 0, 0.5f}, {2.0f, 2000, 1.0f}, {0.5f, 3, 0.3f}, {1.0f, 200000, 0.999f}};

BOOST_DATA_TEST_CASE(sampling_draws_the_host_samplers_tokens, bdata::xrange(8), c) {
  if (!HaveGpu()) return;
  const SampleCase sc = kSampleCases[c];
  TestRng rng(100 + c);
  const std::vector<float> logits = rng.Normals(128256, 2.5f);
  SamplingOptions so;
  so.temperature = sc.temperature, so.top_k = sc.top_k, so.top_p = sc.top_p, so.seed = 1000 + c;
  Sampler host(so);
  std::vector<int32_t> want;
  for (int i = 0; i < 64; ++i) want.push_back(host.Next(logits));
  const std::vector<int32_t> got = Get(cuda::opcheck::Sample(logits, sc.temperature, sc.top_k, sc.top_p, so.seed, 64));
  BOOST_TEST(got == want, boost::test_tools::per_element());
  // The draws are not all one token (the case samples), except case 6, whose top_p cut keeps only the top
  // token (three candidates at temperature 0.5 over logits of scale 2.5).
  if (c != 6) BOOST_TEST(std::count(got.begin(), got.end(), got[0]) < 64);
}

BOOST_AUTO_TEST_CASE(sampling_orders_equal_logits_by_id) {
  if (!HaveGpu()) return;
  // Integer logits: many exact ties, inside the top-k and at its cut; and a vocabulary of zeros, half of them
  // -0.0, where top_k keeps the lowest ids (the host compares -0.0 == +0.0).
  TestRng rng(77);
  std::vector<float> logits = rng.Normals(5000, 2.0f);
  for (float& x : logits) x = std::round(x);
  std::vector<float> zeros(1000, 0.0f);
  for (size_t i = 0; i < zeros.size(); i += 2) zeros[i] = -0.0f;
  for (const auto& [l, k, p] : {std::tuple{&logits, 100, 1.0f}, std::tuple{&logits, 0, 0.2f},
                                std::tuple{&zeros, 10, 1.0f}, std::tuple{&zeros, 0, 0.05f}}) {
    SamplingOptions so;
    so.temperature = 1.0f, so.top_k = k, so.top_p = p, so.seed = 5;
    Sampler host(so);
    std::vector<int32_t> want;
    for (int i = 0; i < 64; ++i) want.push_back(host.Next(*l));
    BOOST_TEST_INFO("top_k " << k << ", top_p " << p << ", vocab " << l->size());
    BOOST_TEST(Get(cuda::opcheck::Sample(*l, 1.0f, k, p, 5, 64)) == want, boost::test_tools::per_element());
  }
  // Greedy rules take the argmax and leave the generator alone.
  BOOST_TEST(Get(cuda::opcheck::Sample(logits, 0.0f, 0, 1.0f, 5, 2)) == std::vector<int32_t>(2, ArgMax(logits)));
  BOOST_TEST(Get(cuda::opcheck::Sample(logits, 1.0f, 1, 1.0f, 5, 2)) == std::vector<int32_t>(2, ArgMax(logits)));
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace blockkv::testing
