// RoPE: inverse frequencies as HF transformers computes them, the rotate_half convention, and the
// relative-position property that Block-Attention relies on.
#include "attention/rope.h"

#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>
#include <cmath>

#include "tests/attention_test_util.h"

namespace blockkv::testing {
namespace {

namespace bdata = boost::unit_test::data;


BOOST_AUTO_TEST_SUITE(rope)

BOOST_AUTO_TEST_CASE(default_inv_freq_is_theta_power) {
  RopeConfig r;
  r.theta = 10000.0;
  r.rotary_dim = 128;
  const std::vector<float> inv = ComputeInvFreq(r);
  BOOST_REQUIRE_EQUAL(inv.size(), 64u);
  BOOST_TEST(inv[0] == 1.0f);
  for (int i = 0; i < 64; ++i) {
    const double exact = 1.0 / std::pow(10000.0, 2.0 * i / 128.0);
    // float32 pow of a float32 exponent, then a float32 reciprocal: within a few ulp of the exact
    // value.
    BOOST_TEST(std::fabs(inv[i] - exact) <= 4 * std::ldexp(1.0, std::ilogb(exact) - 23), "i=" << i);
  }
  // linear scaling divides by the factor.
  RopeConfig lin = r;
  lin.type = RopeConfig::Type::kLinear;
  lin.factor = 4.0;
  const std::vector<float> inv_lin = ComputeInvFreq(lin);
  for (int i = 0; i < 64; ++i) BOOST_TEST(inv_lin[i] == inv[i] / 4.0f);
}

BOOST_AUTO_TEST_CASE(llama3_scaling_follows_wavelength_bands) {
  RopeConfig plain = Llama31Rope();
  plain.type = RopeConfig::Type::kDefault;
  const std::vector<float> base = ComputeInvFreq(plain);
  const std::vector<float> scaled = ComputeInvFreq(Llama31Rope());
  int high = 0, low = 0, medium = 0;
  for (size_t i = 0; i < base.size(); ++i) {
    const double wavelen = 2 * M_PI / base[i];
    if (wavelen < 8192.0 / 4) {  // high frequencies: unchanged
      BOOST_TEST(scaled[i] == base[i]);
      ++high;
    } else if (wavelen > 8192.0 / 1) {  // low frequencies: divided by the factor
      BOOST_TEST(scaled[i] == base[i] / 8.0f);
      ++low;
    } else {  // in between: interpolated, computed here in double
      const double smooth = (8192.0 / wavelen - 1.0) / (4.0 - 1.0);
      const double expect = (1 - smooth) * base[i] / 8.0 + smooth * base[i];
      BOOST_TEST(std::fabs(scaled[i] - expect) <= 1e-6 * expect, "i=" << i);
      BOOST_TEST(scaled[i] < base[i]);
      BOOST_TEST(scaled[i] > base[i] / 8.0f);
      ++medium;
    }
  }
  // Llama 3.1 (head_dim 128, theta 5e5): 64 frequencies, all three bands present.
  BOOST_TEST(high > 0);
  BOOST_TEST(low > 0);
  BOOST_TEST(medium > 0);
  BOOST_TEST(high + low + medium == 64);
}

BOOST_AUTO_TEST_CASE(rotate_half_pairs_i_with_i_plus_half) {
  RopeConfig r;
  r.rotary_dim = 8;
  const std::vector<float> inv = ComputeInvFreq(r);
  const RopeTable t = BuildRopeTable(inv, 5, 1);
  // One head of dimension 10: dims 8 and 9 pass through (partial rotary).
  std::vector<float> x = {1, 0, 0, 0, 0, 0, 0, 0, 7, 9};
  ApplyRope(t, x.data(), 1, 1, 10);
  const float angle = 5.0f * inv[0];
  BOOST_TEST(x[0] == std::cos(angle));
  BOOST_TEST(x[4] == std::sin(angle));  // the partner is i + half, not i + 1
  BOOST_TEST(x[1] == 0.0f);
  BOOST_TEST(x[8] == 7.0f);
  BOOST_TEST(x[9] == 9.0f);
}

// q·k after rotation depends only on the distance between positions: what lets a block encoded at 0
// be used at any offset.
BOOST_DATA_TEST_CASE(scores_depend_only_on_relative_position, bdata::make({32, 64, 128}), dim) {
  const std::vector<float> inv = ComputeInvFreq(Llama31Rope(dim));
  TestRng rng(dim);
  const std::vector<float> q0 = rng.Normals(dim), k0 = rng.Normals(dim);
  auto score = [&](int64_t pq, int64_t pk) {
    std::vector<float> q = q0, k = k0;
    ApplyRope(BuildRopeTable(inv, pq, 1), q.data(), 1, 1, dim);
    ApplyRope(BuildRopeTable(inv, pk, 1), k.data(), 1, 1, dim);
    double s = 0;
    for (int d = 0; d < dim; ++d) s += static_cast<double>(q[d]) * k[d];
    return s;
  };
  double scale = 0;
  for (int d = 0; d < dim; ++d) scale += std::fabs(q0[d] * k0[d]);
  for (int64_t offset : {1, 100, 4000, 30000}) {
    // Angles are float32(p · inv_freq): at position P the angle carries an absolute rounding error
    // of about P · 2^-24 radians, so the score drifts by up to ~P · 6e-8 relative to sum |q_d k_d|.
    const double tol = 1e-6 + 2 * static_cast<double>(offset + 20) * 0x1.0p-24;
    BOOST_TEST(std::fabs(score(offset + 20, offset + 3) - score(20, 3)) <= tol * scale,
               "offset " << offset);
  }
}

BOOST_AUTO_TEST_CASE(tables_at_any_offset_match_a_table_from_zero) {
  const std::vector<float> inv = ComputeInvFreq(Llama31Rope(64));
  const RopeTable from_zero = BuildRopeTable(inv, 0, 200);
  const RopeTable shifted = BuildRopeTable(inv, 150, 10);
  for (int p = 0; p < 10; ++p) {
    for (int i = 0; i < 32; ++i) {
      BOOST_TEST(shifted.cos[p * 32 + i] == from_zero.cos[(150 + p) * 32 + i]);
      BOOST_TEST(shifted.sin[p * 32 + i] == from_zero.sin[(150 + p) * 32 + i]);
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace blockkv::testing
