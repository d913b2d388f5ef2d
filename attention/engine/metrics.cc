#include "attention/engine/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace blockkv {

LatencyHistogram::LatencyHistogram() {
  for (double b = 0.05; b < 1.2e5; b *= 1.4) bounds_.push_back(b);
  counts_.assign(bounds_.size() + 1, 0);
}

void LatencyHistogram::Record(double ms) {
  if (!(ms >= 0)) ms = 0;  // NaN and negatives count as 0
  const size_t i = std::upper_bound(bounds_.begin(), bounds_.end(), ms, [](double v, double b) { return v <= b; }) -
                   bounds_.begin();
  std::lock_guard<std::mutex> l(mu_);
  ++counts_[std::min(i, counts_.size() - 1)];
  ++count_;
  sum_ += ms;
}

uint64_t LatencyHistogram::count() const {
  std::lock_guard<std::mutex> l(mu_);
  return count_;
}

double LatencyHistogram::sum_ms() const {
  std::lock_guard<std::mutex> l(mu_);
  return sum_;
}

double LatencyHistogram::Quantile(double q) const {
  std::lock_guard<std::mutex> l(mu_);
  if (count_ == 0) return 0;
  const double rank = std::clamp(q, 0.0, 1.0) * static_cast<double>(count_);
  uint64_t seen = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    if (counts_[i] == 0) continue;
    if (static_cast<double>(seen + counts_[i]) >= rank) {
      const double lo = i == 0 ? 0 : bounds_[i - 1];
      const double hi = i < bounds_.size() ? bounds_[i] : bounds_.back();
      const double frac = (rank - static_cast<double>(seen)) / static_cast<double>(counts_[i]);
      return lo + (hi - lo) * std::clamp(frac, 0.0, 1.0);
    }
    seen += counts_[i];
  }
  return bounds_.back();
}

std::vector<std::pair<double, uint64_t>> LatencyHistogram::Cumulative() const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<std::pair<double, uint64_t>> out;
  uint64_t c = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    c += counts_[i];
    out.emplace_back(bounds_[i], c);
  }
  out.emplace_back(INFINITY, c + counts_.back());
  return out;
}

const char* BlockSourceName(BlockSource s) {
  switch (s) {
    case BlockSource::kGpu: return "gpu";
    case BlockSource::kHost: return "host";
    case BlockSource::kStore: return "store";
    case BlockSource::kEncoded: return "encoded";
  }
  return "?";
}

namespace {

nlohmann::json HistogramJson(const LatencyHistogram& h) {
  const uint64_t n = h.count();
  return {{"count", n},
          {"mean", n ? h.sum_ms() / static_cast<double>(n) : 0.0},
          {"p50", h.Quantile(0.5)},
          {"p90", h.Quantile(0.9)},
          {"p99", h.Quantile(0.99)}};
}

void PromHistogram(std::string* out, const char* name, const char* help, const LatencyHistogram& h) {
  char line[256];
  std::snprintf(line, sizeof(line), "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
  *out += line;
  for (const auto& [le, c] : h.Cumulative()) {
    if (std::isinf(le)) {
      std::snprintf(line, sizeof(line), "%s_bucket{le=\"+Inf\"} %llu\n", name, static_cast<unsigned long long>(c));
    } else {
      std::snprintf(line, sizeof(line), "%s_bucket{le=\"%.6g\"} %llu\n", name, le / 1e3,
                    static_cast<unsigned long long>(c));
    }
    *out += line;
  }
  std::snprintf(line, sizeof(line), "%s_sum %.9g\n%s_count %llu\n", name, h.sum_ms() / 1e3, name,
                static_cast<unsigned long long>(h.count()));
  *out += line;
}

}  // namespace

nlohmann::json EngineMetrics::ToJson() const {
  nlohmann::json tiers = nlohmann::json::object();
  for (int i = 0; i < kNumBlockSources; ++i) {
    const TierCounters& t = tiers_[i];
    tiers[BlockSourceName(static_cast<BlockSource>(i))] = {
        {"blocks", t.blocks.load()},       {"bytes", t.bytes.load()},
        {"admitted", t.admitted.load()},   {"rejected", t.rejected.load()}, {"failed", t.failed.load()},
        {"evictions", t.evictions.load()}, {"evicted_bytes", t.evicted_bytes.load()},
        {"resident_bytes", t.resident_bytes.load()}, {"budget_bytes", t.budget_bytes.load()}};
  }
  return {{"requests", requests.load()},
          {"failed_requests", failed_requests.load()},
          {"prompt_tokens", prompt_tokens.load()},
          {"generated_tokens", generated_tokens.load()},
          {"tiers", tiers},
          {"ttft_ms", HistogramJson(ttft_ms)},
          {"decode_ms_per_token", HistogramJson(decode_ms_per_token)},
          {"request_ms", HistogramJson(request_ms)}};
}

std::string EngineMetrics::ToPrometheus() const {
  std::string out;
  char line[256];
  const auto counter = [&](const char* name, const char* help, uint64_t v) {
    std::snprintf(line, sizeof(line), "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
                  static_cast<unsigned long long>(v));
    out += line;
  };
  counter("blockkv_requests_total", "Requests answered.", requests.load());
  counter("blockkv_failed_requests_total", "Requests that ended in an error.", failed_requests.load());
  counter("blockkv_prompt_tokens_total", "Prompt tokens of answered requests.", prompt_tokens.load());
  counter("blockkv_generated_tokens_total", "Tokens generated.", generated_tokens.load());
  struct Field {
    const char* name;
    const char* help;
    const char* type;
    std::atomic<uint64_t> TierCounters::*member;
  };
  const Field fields[] = {
      {"blockkv_tier_blocks_total", "Blocks served from each source.", "counter", &TierCounters::blocks},
      {"blockkv_tier_bytes_total", "Raw K and V bytes served from each source.", "counter", &TierCounters::bytes},
      {"blockkv_tier_admitted_total", "Blocks admitted to each tier.", "counter", &TierCounters::admitted},
      {"blockkv_tier_rejected_total", "Blocks refused by each tier's admission.", "counter", &TierCounters::rejected},
      {"blockkv_tier_failed_total", "Blocks admitted but not kept: their memory or data could not be had.", "counter",
       &TierCounters::failed},
      {"blockkv_tier_evictions_total", "Blocks evicted from each tier.", "counter", &TierCounters::evictions},
      {"blockkv_tier_evicted_bytes_total", "Bytes evicted from each tier.", "counter", &TierCounters::evicted_bytes},
      {"blockkv_tier_resident_bytes", "Bytes resident in each tier.", "gauge", &TierCounters::resident_bytes},
      {"blockkv_tier_budget_bytes", "Each tier's budget in bytes.", "gauge", &TierCounters::budget_bytes},
  };
  for (const Field& f : fields) {
    std::snprintf(line, sizeof(line), "# HELP %s %s\n# TYPE %s %s\n", f.name, f.help, f.name, f.type);
    out += line;
    for (int i = 0; i < kNumBlockSources; ++i) {
      std::snprintf(line, sizeof(line), "%s{tier=\"%s\"} %llu\n", f.name, BlockSourceName(static_cast<BlockSource>(i)),
                    static_cast<unsigned long long>((tiers_[i].*f.member).load()));
      out += line;
    }
  }
  PromHistogram(&out, "blockkv_ttft_seconds", "Time to first token.", ttft_ms);
  PromHistogram(&out, "blockkv_decode_seconds_per_token", "Decode time per generated token.", decode_ms_per_token);
  PromHistogram(&out, "blockkv_request_seconds", "Whole request time.", request_ms);
  return out;
}

}  // namespace blockkv
