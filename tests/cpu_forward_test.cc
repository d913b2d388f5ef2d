// The CPU backend's operations against naive double-precision loops, on fresh random inputs with
// the outputs poisoned (NaN) before each run.
#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <limits>

#include "attention/cpu/ops.h"
#include "attention/sampling.h"
#include "tests/attention_test_util.h"

namespace blockkv::testing {
namespace {

namespace bdata = boost::unit_test::data;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// float32 dot products of length K against double: error ≲ sqrt(K) · 2^-24 relative to the result's
// scale for random signs; K <= 512 here gives ~1.4e-6. 1e-5 leaves margin; a wrong index fails by
// O(1).
constexpr double kOpTolerance = 1e-5;

BOOST_AUTO_TEST_SUITE(cpu_forward)

BOOST_DATA_TEST_CASE(linear_rmsnorm_swiglu, bdata::make({1, 7, 64}) * bdata::make({16, 96}), n,
                     dim) {
  TestRng rng(n * 131 + dim);
  const int out = 48;
  const std::vector<float> x = rng.Normals(n * dim), w = rng.Normals(out * dim, 0.3f),
                           b = rng.Normals(out);
  std::vector<float> y(n * out, kNaN);
  cpu::Linear(x.data(), w.data(), b.data(), n, dim, out, y.data());
  std::vector<float> want(n * out);
  for (int t = 0; t < n; ++t) {
    for (int o = 0; o < out; ++o) {
      double acc = b[o];
      for (int i = 0; i < dim; ++i) acc += static_cast<double>(x[t * dim + i]) * w[o * dim + i];
      want[t * out + o] = static_cast<float>(acc);
    }
  }
  BOOST_TEST(MaxRelError(y, want) <= kOpTolerance);
  std::vector<float> acc_y = want;
  cpu::LinearAccumulate(x.data(), w.data(), n, dim, out, acc_y.data());
  for (int i = 0; i < n * out; ++i) want[i] = 2 * want[i] - b[i % out];
  BOOST_TEST(MaxRelError(acc_y, want) <= kOpTolerance);

  const std::vector<float> g = rng.Normals(dim, 0.5f);
  std::vector<float> normed(n * dim, kNaN);
  cpu::RmsNorm(x.data(), g.data(), n, dim, 1e-5f, normed.data(), 2);
  std::vector<float> want_norm(n * dim);
  for (int t = 0; t < n; ++t) {
    double ms = 0;
    for (int i = 0; i < dim; ++i) ms += static_cast<double>(x[t * dim + i]) * x[t * dim + i];
    const double r = 1 / std::sqrt(ms / dim + 1e-5);
    for (int i = 0; i < dim; ++i)
      want_norm[t * dim + i] = static_cast<float>(g[i] * x[t * dim + i] * r);
  }
  BOOST_TEST(MaxRelError(normed, want_norm) <= kOpTolerance);

  std::vector<float> gate = x;
  const std::vector<float> up = rng.Normals(n * dim);
  cpu::SwiGlu(gate.data(), up.data(), n * dim, 2);
  std::vector<float> want_glu(n * dim);
  for (int i = 0; i < n * dim; ++i)
    want_glu[i] = static_cast<float>(x[i] / (1 + std::exp(-double(x[i]))) * up[i]);
  BOOST_TEST(MaxRelError(gate, want_glu) <= kOpTolerance);
}

// Attention of n new queries over `past` cached keys plus themselves, grouped-query.
BOOST_DATA_TEST_CASE(causal_attention_matches_naive,
                     bdata::make({32, 64}) * bdata::make({1, 5, 33}) * bdata::make({0, 1, 70}) *
                         bdata::make({1, 4}),
                     head_dim, n, past, group) {
  const int kv_heads = 2, heads = kv_heads * group;
  const int64_t keys = past + n;
  TestRng rng(head_dim * 1000 + n * 10 + past + group);
  const std::vector<float> q = rng.Normals(n * heads * head_dim),
                           k = rng.Normals(keys * kv_heads * head_dim),
                           v = rng.Normals(keys * kv_heads * head_dim);
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  std::vector<float> out(n * heads * head_dim, kNaN);
  cpu::CausalAttention(q.data(), k.data(), v.data(), n, past, heads, kv_heads, head_dim, scale,
                       out.data(), 2);
  std::vector<float> want(out.size());
  for (int64_t i = 0; i < n; ++i) {
    for (int h = 0; h < heads; ++h) {
      const int g = h / group;
      std::vector<double> s(past + i + 1);
      double mx = -1e300, sum = 0;
      for (int64_t j = 0; j <= past + i; ++j) {
        double d = 0;
        for (int e = 0; e < head_dim; ++e) {
          d += double(q[(i * heads + h) * head_dim + e]) * k[(j * kv_heads + g) * head_dim + e];
        }
        s[j] = d * scale;
        mx = std::max(mx, s[j]);
      }
      for (double& x : s) sum += (x = std::exp(x - mx));
      for (int e = 0; e < head_dim; ++e) {
        double o = 0;
        for (int64_t j = 0; j <= past + i; ++j)
          o += s[j] / sum * v[(j * kv_heads + g) * head_dim + e];
        want[(i * heads + h) * head_dim + e] = static_cast<float>(o);
      }
    }
  }
  BOOST_TEST(MaxRelError(out, want) <= kOpTolerance);
}

BOOST_AUTO_TEST_CASE(sampler_distribution_and_filters) {
  const std::vector<float> logits = {2.0f, 1.0f, 0.0f, -1.0f, 2.0f};
  BOOST_TEST(ArgMax(logits) == 0);  // lowest id among equals
  // With temperature 1 the empirical frequencies follow the softmax (4σ of a binomial at 20000
  // draws).
  Sampler s({.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .seed = 5});
  std::vector<int> count(5);
  const int draws = 20000;
  for (int i = 0; i < draws; ++i) ++count[s.Next(logits)];
  double z = 0;
  for (float l : logits) z += std::exp(double(l));
  for (int i = 0; i < 5; ++i) {
    const double p = std::exp(double(logits[i])) / z;
    BOOST_TEST(std::fabs(count[i] - p * draws) <= 4 * std::sqrt(draws * p * (1 - p)) + 1,
               "token " << i);
  }
  // top_k = 2 keeps the two most likely (ids 0 and 4); top_p = 0.5 keeps only those as well.
  Sampler k2({.temperature = 1.0f, .top_k = 2, .top_p = 1.0f, .seed = 6});
  Sampler p5({.temperature = 1.0f, .top_k = 0, .top_p = 0.5f, .seed = 7});
  for (int i = 0; i < 500; ++i) {
    const int a = k2.Next(logits), b = p5.Next(logits);
    BOOST_TEST((a == 0 || a == 4));
    BOOST_TEST((b == 0 || b == 4));
  }
  // Equal seeds, equal streams.
  Sampler x({.temperature = 0.7f, .top_k = 0, .top_p = 1.0f, .seed = 9}),
      y({.temperature = 0.7f, .top_k = 0, .top_p = 1.0f, .seed = 9});
  for (int i = 0; i < 100; ++i) BOOST_TEST(x.Next(logits) == y.Next(logits));
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace blockkv::testing
