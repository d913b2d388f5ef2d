// Engine metrics: counters per tier and latency histograms, exposed as JSON and in the Prometheus text
// exposition format (version 0.0.4).
//
// Thread safety: every method may be called from any number of threads at once (counters are atomic;
// histograms take a short lock).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace blockkv {

// A latency histogram in milliseconds with fixed bucket bounds (0.05 ms .. ~100 s, ×~1.4 per bucket).
// Quantiles are read from the buckets: the upper bound of the bucket holding the quantile, linearly
// interpolated inside it, so they are accurate to the bucket width (~40%), exact at the bounds.
class LatencyHistogram {
 public:
  LatencyHistogram();
  void Record(double ms);
  uint64_t count() const;
  double sum_ms() const;
  // q in [0, 1]; 0 when empty.
  double Quantile(double q) const;
  // Upper bounds (ms) and cumulative counts, for Prometheus.
  std::vector<std::pair<double, uint64_t>> Cumulative() const;

 private:
  std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::vector<uint64_t> counts_;  // one more than bounds_: the last is +Inf
  uint64_t count_ = 0;
  double sum_ = 0;
};

// Where a request's block came from.
enum class BlockSource { kGpu = 0, kHost = 1, kStore = 2, kEncoded = 3 };
constexpr int kNumBlockSources = 4;
const char* BlockSourceName(BlockSource s);  // "gpu", "host", "store", "encoded"

class EngineMetrics {
 public:
  struct TierCounters {
    std::atomic<uint64_t> blocks{0};     // blocks served from this source
    std::atomic<uint64_t> bytes{0};      // their raw K and V bytes moved
    std::atomic<uint64_t> admitted{0};   // blocks admitted to the tier (gpu, host)
    std::atomic<uint64_t> rejected{0};   // offered, refused by admission
    std::atomic<uint64_t> failed{0};     // admitted, then not kept: no memory for it, or its data failed to read
    std::atomic<uint64_t> evictions{0};  // blocks evicted from the tier
    std::atomic<uint64_t> evicted_bytes{0};
    std::atomic<uint64_t> resident_bytes{0};  // gauge (gpu, host)
    std::atomic<uint64_t> budget_bytes{0};    // gauge (gpu, host)
  };

  TierCounters& tier(BlockSource s) { return tiers_[static_cast<int>(s)]; }
  const TierCounters& tier(BlockSource s) const { return tiers_[static_cast<int>(s)]; }

  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> failed_requests{0};
  std::atomic<uint64_t> prompt_tokens{0};
  std::atomic<uint64_t> generated_tokens{0};
  LatencyHistogram ttft_ms;           // request start to the first token's logits
  LatencyHistogram decode_ms_per_token;
  LatencyHistogram request_ms;        // the whole request

  // {"requests": ..., "tiers": {"gpu": {...}, ...}, "ttft_ms": {"p50", "p90", "p99", "count", "mean"}, ...}
  nlohmann::json ToJson() const;
  // Prometheus text format: blockkv_* counters, gauges and histograms.
  std::string ToPrometheus() const;

 private:
  std::array<TierCounters, kNumBlockSources> tiers_;
};

}  // namespace blockkv
