#include "attention/engine/cache_trace.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace blockkv {

namespace {

constexpr uint64_t kTopBit = uint64_t{1} << 63;

uint64_t Mix64(uint64_t x) { return SplitMix64(x).Next(); }

// Corpus passage p: a key with the top bit clear (one-off keys have it set, so the two never
// collide).
CacheKey CorpusKey(uint64_t seed, uint64_t p) {
  const uint64_t hi = Mix64(seed * 0x2545f4914f6cdd1dull + 2 * p) & ~kTopBit;
  return {hi, Mix64(hi ^ 0xd6e8feb86659fd93ull)};
}

CacheKey OneOffKey(uint64_t seed, uint64_t n) {
  const uint64_t hi = Mix64(seed * 0x9fb21c651e98df25ull + 2 * n + 1) | kTopBit;
  return {hi, Mix64(hi ^ 0xd6e8feb86659fd93ull)};
}

uint64_t PassageBytes(const TraceOptions& o, uint64_t draw) {
  const uint64_t span = uint64_t{o.max_tokens} - o.min_tokens + 1;
  return (o.min_tokens + draw % span) * o.bytes_per_token;
}

Status Validate(const TraceOptions& o) {
  auto bad = [](const std::string& what) {
    return Status::InvalidArgument("trace option " + what);
  };
  if (!(o.zipf_s >= 0.0 && std::isfinite(o.zipf_s)))
    return bad("zipf_s must be a finite number >= 0");
  if (!(o.one_off_fraction >= 0.0 && o.one_off_fraction <= 1.0))
    return bad("one_off_fraction must be in [0, 1]");
  if (o.passages_per_request == 0) return bad("passages_per_request must be at least 1");
  if (o.one_off_fraction < 1.0 && o.corpus_passages < o.passages_per_request)
    return bad("corpus_passages (" + std::to_string(o.corpus_passages) +
               ") must be at least passages_per_request (" +
               std::to_string(o.passages_per_request) + ")");
  if (o.corpus_passages > (uint64_t{1} << 32)) return bad("corpus_passages must be at most 2^32");
  if (o.min_tokens == 0 || o.min_tokens > o.max_tokens)
    return bad("token range must satisfy 1 <= min_tokens <= max_tokens");
  if (o.bytes_per_token == 0 || o.bytes_per_token > (uint64_t{1} << 32))
    return bad("bytes_per_token must be in [1, 2^32]");
  if (o.scan_length > o.scan_period) return bad("scan_length must be at most scan_period");
  if (o.scan_length > 0 && o.corpus_passages < o.passages_per_request)
    return bad("scans need at least passages_per_request corpus passages");
  if (o.requests > 100'000'000 / o.passages_per_request)
    return bad("requests x passages_per_request must be at most 10^8");
  return Status::OK();
}

}  // namespace

StatusOr<Trace> MakeTrace(const TraceOptions& o) {
  RETURN_IF_ERROR(Validate(o));
  const uint64_t n = o.corpus_passages;
  const uint32_t k = o.passages_per_request;
  Trace trace;
  // Separate streams, so that (for instance) the sizes do not change when the one-off fraction
  // does.
  SplitMix64 slot_rng(Mix64(o.seed ^ 0x51ed270b2f3c9a4full));
  SplitMix64 size_rng(Mix64(o.seed ^ 0x0a3c5e7f91b2d4c6ull));
  SplitMix64 shuffle_rng(Mix64(o.seed ^ 0x3f84d5b5b5470917ull));

  std::vector<uint64_t> corpus_bytes(n);
  for (uint64_t p = 0; p < n; ++p) {
    corpus_bytes[p] = PassageBytes(o, size_rng.Next());
    trace.corpus_bytes += corpus_bytes[p];
  }

  // Zipf by inverse CDF: rank r (0-based) with weight (r + 1)^-s; a draw is a binary search.
  std::vector<double> cdf(n);
  double total = 0;
  for (uint64_t r = 0; r < n; ++r) {
    total += std::pow(static_cast<double>(r + 1), -o.zipf_s);
    cdf[r] = total;
  }
  auto draw_rank = [&] {
    const double u = slot_rng.Uniform() * total;
    const uint64_t r =
        static_cast<uint64_t>(std::upper_bound(cdf.begin(), cdf.end(), u) - cdf.begin());
    return r < n ? r : n - 1;
  };

  // Scans walk the corpus in a shuffled order (Fisher-Yates), unrelated to popularity.
  std::vector<uint32_t> scan_order;
  if (o.scan_length > 0) {
    scan_order.resize(n);
    for (uint64_t p = 0; p < n; ++p) scan_order[p] = static_cast<uint32_t>(p);
    for (uint64_t p = n - 1; p > 0; --p)
      std::swap(scan_order[p], scan_order[shuffle_rng.Below(p + 1)]);
  }
  const uint64_t stride = n == 0 ? 0 : o.shift_stride > 0 ? o.shift_stride % n : n / 3 + 1;
  uint64_t scan_pos = 0;
  uint64_t one_offs = 0;

  trace.accesses.reserve(o.requests * k);
  trace.request_starts.reserve(o.requests + 1);
  std::vector<uint64_t> chosen;  // the corpus passages of the request being made
  for (uint64_t i = 0; i < o.requests; ++i) {
    trace.request_starts.push_back(trace.accesses.size());
    const uint64_t offset = o.shift_period > 0 && n > 0 ? (i / o.shift_period) % n * stride % n : 0;
    const bool scan = o.scan_length > 0 && i % o.scan_period >= o.scan_period - o.scan_length;
    if (scan) {
      for (uint32_t j = 0; j < k; ++j) {
        const uint64_t p = scan_order[scan_pos];
        scan_pos = (scan_pos + 1) % n;
        trace.accesses.push_back({CorpusKey(o.seed, p), corpus_bytes[p]});
      }
      continue;
    }
    chosen.clear();
    for (uint32_t j = 0; j < k; ++j) {
      if (slot_rng.Uniform() < o.one_off_fraction) {
        trace.accesses.push_back({OneOffKey(o.seed, one_offs++), PassageBytes(o, size_rng.Next())});
        continue;
      }
      // Distinct passages per request: draw again on a repeat (rare unless s is large and N small;
      // after 1000 tries take the most popular passage not yet chosen).
      uint64_t p = draw_rank();
      for (int tries = 0; std::find(chosen.begin(), chosen.end(), p) != chosen.end(); ++tries) {
        if (tries < 1000) {
          p = draw_rank();
        } else {
          p = 0;
          while (std::find(chosen.begin(), chosen.end(), p) != chosen.end()) ++p;
        }
      }
      chosen.push_back(p);
      p = (p + offset) % n;
      trace.accesses.push_back({CorpusKey(o.seed, p), corpus_bytes[p]});
    }
  }
  trace.request_starts.push_back(trace.accesses.size());
  return trace;
}

ReplayResult ReplayTrace(const Trace& trace, const CachePolicyOptions& options,
                         size_t warmup_requests) {
  CachePolicy policy(options);
  ReplayResult result;
  std::vector<CacheKey> evicted;
  std::vector<CacheKey> pinned;
  for (size_t i = 0; i < trace.requests(); ++i) {
    const bool measured = i >= warmup_requests;
    bool all_hit = true;
    pinned.clear();
    for (const TraceAccess& a : trace.request(i)) {
      const bool hit = policy.Touch(a.key);
      const bool resident = hit || policy.Admit(a.key, a.bytes, &evicted);
      if (resident && policy.Pin(a.key)) pinned.push_back(a.key);
      all_hit = all_hit && hit;
      if (measured) {
        ++result.accesses;
        result.bytes += a.bytes;
        if (hit) {
          ++result.hit_accesses;
          result.hit_bytes += a.bytes;
        }
      }
    }
    if (measured) {
      ++result.requests;
      if (all_hit) ++result.full_hit_requests;
    }
    for (const CacheKey& key : pinned) policy.Unpin(key);
  }
  result.stats = policy.stats();
  return result;
}

}  // namespace blockkv
