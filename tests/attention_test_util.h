// Helpers for the attention/ test suites (header-only: tests/CMakeLists.txt compiles only
// *_test.cc).
#pragma once

#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "attention/reference.h"
#include "attention/runtime.h"
#include "attention/synthetic_model.h"
#include "tests/test_util.h"

namespace blockkv::testing {

// Deterministic pseudo-random values (splitmix64), independent of the standard library's
// distributions.
class TestRng {
 public:
  explicit TestRng(uint64_t seed) : s_(seed * 0x2545f4914f6cdd1dull + 1) {}
  uint64_t Next() {
    uint64_t z = (s_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  float Normal() {
    const double u1 = Uniform() + 0x1.0p-54, u2 = Uniform();
    return static_cast<float>(std::sqrt(-2 * std::log(u1)) * std::cos(2 * M_PI * u2));
  }
  std::vector<float> Normals(size_t n, float scale = 1.0f) {
    std::vector<float> v(n);
    for (float& x : v) x = scale * Normal();
    return v;
  }
  std::vector<int32_t> Tokens(size_t n, int vocab) {
    std::vector<int32_t> t(n);
    for (int32_t& x : t) x = static_cast<int32_t>(Next() % static_cast<uint64_t>(vocab));
    return t;
  }

 private:
  uint64_t s_;
};

// max |a - b| / max |b|: the error relative to the scale of the expected values.
inline double MaxRelError(std::span<const float> a, std::span<const float> b) {
  BOOST_REQUIRE_EQUAL(a.size(), b.size());
  double diff = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::fabs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(b[i])));
  }
  return scale == 0 ? diff : diff / scale;
}

// A synthetic model written to a temporary directory and loaded.
struct TestModelDir {
  TempDir dir;
  std::unique_ptr<Runtime> runtime;
};

inline std::unique_ptr<TestModelDir> MakeModel(const SyntheticModelSpec& spec, int threads = 2) {
  auto m = std::make_unique<TestModelDir>();
  Status st = WriteSyntheticModel(spec, m->dir.str("model"));
  BOOST_REQUIRE_MESSAGE(st.ok(), st.ToString());
  RuntimeOptions options;
  options.num_threads = threads;
  auto rt = Runtime::Open(m->dir.str("model"), options);
  BOOST_REQUIRE_MESSAGE(rt.ok(), rt.status().ToString());
  m->runtime = std::move(rt).value();
  return m;
}

inline SyntheticModelSpec TinySpec(const std::string& arch, DType dtype = DType::kF32,
                                   uint64_t seed = 1) {
  auto spec = SyntheticPreset("tiny", arch);
  BOOST_REQUIRE_MESSAGE(spec.ok(), spec.status().ToString());
  spec->dtype = dtype;
  spec->seed = seed;
  return *spec;
}

// Llama 3.1's RoPE parameters (llama3 scaling) for `dim` rotary dimensions.
inline RopeConfig Llama31Rope(int dim = 128) {
  RopeConfig r;
  r.type = RopeConfig::Type::kLlama3;
  r.theta = 500000.0;
  r.factor = 8.0;
  r.low_freq_factor = 1.0;
  r.high_freq_factor = 4.0;
  r.original_max_position_embeddings = 8192;
  r.rotary_dim = dim;
  return r;
}

// Positions 0 .. n-1.
inline std::vector<int64_t> Iota(int64_t n, int64_t first = 0) {
  std::vector<int64_t> p(n);
  for (int64_t i = 0; i < n; ++i) p[i] = first + i;
  return p;
}

// Rows [first, first + rows) of a (T, vocab) matrix.
inline std::vector<float> Rows(const std::vector<float>& m, int vocab, int64_t first,
                               int64_t rows) {
  return std::vector<float>(m.begin() + first * vocab, m.begin() + (first + rows) * vocab);
}

}  // namespace blockkv::testing
