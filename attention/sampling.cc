#include "attention/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "attention/xoshiro.h"

namespace blockkv {

namespace {
uint64_t SplitMix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
}  // namespace

int32_t ArgMax(std::span<const float> logits) {
  int32_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i) {
    if (logits[i] > logits[best]) best = static_cast<int32_t>(i);
  }
  return best;
}

Sampler::Sampler(const SamplingOptions& options) : options_(options) {
  uint64_t x = options.seed;
  for (uint64_t& s : s_) s = SplitMix64(x);
}

double Sampler::Uniform() { return XoshiroUniform(s_); }

int32_t Sampler::Next(std::span<const float> logits) {
  if (options_.temperature <= 0.0f || options_.top_k == 1) return ArgMax(logits);
  const size_t n = logits.size();
  std::vector<int32_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  // Most likely first; equal logits by lower id, so the order does not depend on the sort's
  // internals.
  auto more_likely = [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  size_t keep = n;
  if (options_.top_k > 0 && static_cast<size_t>(options_.top_k) < n) keep = options_.top_k;
  std::partial_sort(order.begin(), order.begin() + keep, order.end(), more_likely);
  order.resize(keep);
  std::vector<double> p(keep);
  const double t = options_.temperature;
  const double m = logits[order[0]] / t;
  double sum = 0;
  for (size_t i = 0; i < keep; ++i) {
    p[i] = std::exp(logits[order[i]] / t - m);
    sum += p[i];
  }
  if (options_.top_p < 1.0f) {
    double cum = 0;
    size_t cut = keep;
    for (size_t i = 0; i < keep; ++i) {
      cum += p[i] / sum;
      if (cum >= options_.top_p) {
        cut = i + 1;
        break;
      }
    }
    keep = cut;
    sum = std::accumulate(p.begin(), p.begin() + keep, 0.0);
  }
  const double u = Uniform() * sum;
  double cum = 0;
  for (size_t i = 0; i < keep; ++i) {
    cum += p[i];
    if (u < cum) return order[i];
  }
  return order[keep - 1];
}

}  // namespace blockkv
