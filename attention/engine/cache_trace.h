// Synthetic block-access traces of a RAG service, and their replay against a CachePolicy: the
// simulation that chose the default policy (docs/cache_policy.md), run by
// tests/cache_policy_test.cc and `blockkv bench-cache`.
//
// A trace is a sequence of requests, each retrieving k distinct passages (blocks). A passage slot
// is a one-off passage (seen once in the whole trace: a fresh key) with probability
// one_off_fraction, otherwise a passage of a fixed corpus of N, drawn with Zipf(s) popularity by
// rank. Optionally, scan bursts interrupt the stream: requests that read the corpus in a fixed
// shuffled order (a batch job walking all passages), continuing where the previous burst stopped;
// and popularity may shift, the ranking jumping to other passages every so many requests.
// Passage sizes are tokens x bytes_per_token, the tokens uniform in [min_tokens, max_tokens] per
// passage.
//
// Deterministic: the same options give the same trace on every platform and standard library (an
// own splitmix64 generator, integer arithmetic for sizes; the Zipf table uses std::pow, correctly
// rounded enough that a rank boundary moves only if a draw falls within an ulp of it).
//
// Thread safety: the functions are pure; a Trace is immutable once made and may be read from any
// thread.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "attention/engine/cache_policy.h"
#include "db/status.h"

namespace blockkv {

// splitmix64 (Steele, Lea, Flood): a small, fast generator with the same output everywhere.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1), from the top 53 bits.
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  // Uniform in [0, n) for n >= 1 (multiply-shift; bias below 2^-64 * n).
  uint64_t Below(uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(Next()) * n) >> 64);
  }

 private:
  uint64_t state_;
};

struct TraceOptions {
  // Passages that recur: the corpus the Zipf popularity ranks. Default: 10000.
  uint64_t corpus_passages = 10000;
  // Zipf exponent s: rank r (1-based) is drawn with probability proportional to r^-s. 0: uniform.
  // Default: 1.0.
  double zipf_s = 1.0;
  // Share of passage slots filled by one-off passages, each seen only once, in [0, 1]. Default:
  // 0.3.
  double one_off_fraction = 0.3;
  // k: distinct passages per request. Default: 5.
  uint32_t passages_per_request = 5;
  // Requests in the trace, scan requests included. Default: 20000.
  uint64_t requests = 20000;
  // Tokens per passage, uniform in [min_tokens, max_tokens]. Default: 100 and 500.
  uint32_t min_tokens = 100;
  uint32_t max_tokens = 500;
  // Bytes of KV per token. Default: 128 KiB (Llama-3.1-8B's 32 layers x 8 KV heads x 128 dims x K
  // and V, fp32; bf16 halves it).
  uint64_t bytes_per_token = 128 * 1024;
  // Scan bursts: the last scan_length requests of every scan_period requests are scan requests. 0:
  // none. Default: 0 and 0.
  uint64_t scan_period = 0;
  uint64_t scan_length = 0;
  // Popularity drift: every shift_period requests the ranking moves to other passages (rank r is
  // passage (r + epoch * shift_stride) mod N), so yesterday's hot set goes cold at once. 0: never.
  // Default: 0.
  uint64_t shift_period = 0;
  // How far the ranking moves at each shift. 0: N / 3 + 1. Default: 0.
  uint64_t shift_stride = 0;
  // Default: 1.
  uint64_t seed = 1;
};

// One passage of a request. One-off passages have the top bit of key.hi set, corpus passages have
// it clear.
struct TraceAccess {
  CacheKey key;
  uint64_t bytes = 0;
};

struct Trace {
  std::vector<TraceAccess> accesses;  // every request's passages, request after request
  std::vector<size_t>
      request_starts;         // request i is accesses[request_starts[i], request_starts[i + 1])
  uint64_t corpus_bytes = 0;  // bytes of the N corpus passages together

  size_t requests() const { return request_starts.empty() ? 0 : request_starts.size() - 1; }
  std::span<const TraceAccess> request(size_t i) const {
    return std::span<const TraceAccess>(accesses).subspan(
        request_starts[i], request_starts[i + 1] - request_starts[i]);
  }
};

// The trace the options describe. InvalidArgument naming the option if one is out of range (a
// fraction outside [0, 1], s negative, fewer corpus passages than k while some slots draw from the
// corpus, a token range upside down, scan_length > scan_period, more than 10^8 accesses).
StatusOr<Trace> MakeTrace(const TraceOptions& options);

struct ReplayResult {
  CachePolicy::Stats stats;  // the policy's counters over the whole trace

  // Counted over the requests after the warm-up:
  uint64_t requests = 0;
  uint64_t full_hit_requests = 0;  // requests whose every passage was resident
  uint64_t accesses = 0;
  uint64_t hit_accesses = 0;
  uint64_t bytes = 0;      // bytes of the passages requested
  uint64_t hit_bytes = 0;  // of those, bytes that were resident

  double block_hit_rate() const { return accesses ? double(hit_accesses) / double(accesses) : 0.0; }
  double byte_hit_rate() const { return bytes ? double(hit_bytes) / double(bytes) : 0.0; }
  double full_hit_rate() const {
    return requests ? double(full_hit_requests) / double(requests) : 0.0;
  }
};

// Replays `trace` against a fresh CachePolicy(options) as a tier would: for each request, Touch
// every passage and Admit each miss, pin the passages that are resident until the request ends,
// then unpin them. Hits are counted from request `warmup_requests` on (the policy sees every
// request).
ReplayResult ReplayTrace(const Trace& trace, const CachePolicyOptions& options,
                         size_t warmup_requests);

}  // namespace blockkv
