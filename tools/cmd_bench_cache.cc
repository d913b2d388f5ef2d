// bench-cache: replays a synthetic RAG trace (attention/engine/cache_trace.h) against each cache
// policy (attention/engine/cache_policy.h) and prints hit rates, the simulation behind
// docs/cache_policy.md.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "attention/engine/cache_trace.h"
#include "tools/cli_util.h"
#include "tools/commands.h"

namespace blockkv::cli {

void RegisterBenchCacheCommand(CLI::App& app) {
  struct Opts {
    TraceOptions trace;
    double capacity_fraction = 0.1;
    double warmup_fraction = 0.1;
    double window_fraction = CachePolicyOptions{}.window_fraction;
    bool adaptive = CachePolicyOptions{}.adaptive;
    std::string policies = "lru,tinylfu,2q";
    std::string json_file;
  };
  auto o = std::make_shared<Opts>();
  o->trace.requests = 50000;
  CLI::App* sub = app.add_subcommand(
      "bench-cache",
      "Simulate the block cache policies on a synthetic RAG trace: requests of k passages, each a "
      "one-off\n"
      "passage (seen once) or one of a corpus of N with Zipf(s) popularity; optional scan bursts "
      "and\n"
      "popularity shifts. Prints block and byte hit rates per policy. Deterministic by --seed.");
  sub->add_option("--corpus", o->trace.corpus_passages, "Corpus passages N")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 32));
  sub->add_option("--capacity-fraction", o->capacity_fraction,
                  "Cache budget as a share of the corpus's bytes")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  sub->add_option("--zipf", o->trace.zipf_s, "Zipf exponent s of the corpus popularity")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 10.0));
  sub->add_option("--one-off", o->trace.one_off_fraction,
                  "Share of passage slots that are one-off passages")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  sub->add_option("--requests", o->trace.requests, "Requests in the trace")->capture_default_str();
  sub->add_option("--passages-per-request", o->trace.passages_per_request, "Passages k per request")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  sub->add_option("--min-tokens", o->trace.min_tokens, "Fewest tokens per passage")
      ->capture_default_str();
  sub->add_option("--max-tokens", o->trace.max_tokens, "Most tokens per passage")
      ->capture_default_str();
  sub->add_option("--bytes-per-token", o->trace.bytes_per_token,
                  "KV bytes per token (128 KiB: Llama-3.1-8B, fp32)")
      ->capture_default_str();
  sub->add_option("--scan-period", o->trace.scan_period,
                  "Scan bursts: the last --scan-length of every this many requests walk the corpus "
                  "(0: none)")
      ->capture_default_str();
  sub->add_option("--scan-length", o->trace.scan_length, "Requests per scan burst")
      ->capture_default_str();
  sub->add_option(
         "--shift-period", o->trace.shift_period,
         "Move the popularity ranking to other passages every this many requests (0: never)")
      ->capture_default_str();
  sub->add_option("--warmup-fraction", o->warmup_fraction,
                  "Share of the requests replayed before hits are counted")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  sub->add_option("--window-fraction", o->window_fraction,
                  "tinylfu: share of the budget for the admission window")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  sub->add_flag(
      "--no-adaptive", [o](int64_t) { o->adaptive = false; },
      "tinylfu: plain W-TinyLFU, without the shadows that detect popularity shifts");
  sub->add_option("--policies", o->policies, "Policies to run, comma-separated (lru, tinylfu, 2q)")
      ->capture_default_str();
  sub->add_option("--seed", o->trace.seed, "Seed of the trace")->capture_default_str();
  sub->add_option("--json", o->json_file, "Also write the results as JSON to this file");
  sub->callback([o] {
    std::vector<CachePolicyKind> kinds;
    std::stringstream names(o->policies);
    for (std::string name; std::getline(names, name, ',');) {
      const auto kind = ParseCachePolicyKind(name);
      if (!kind) Fail("--policies: unknown policy '" + name + "' (lru, tinylfu, 2q)");
      kinds.push_back(*kind);
    }
    if (kinds.empty()) Fail("--policies names no policy");

    const Trace trace = Check(MakeTrace(o->trace));
    const uint64_t capacity =
        static_cast<uint64_t>(o->capacity_fraction * static_cast<double>(trace.corpus_bytes));
    const size_t warmup =
        static_cast<size_t>(o->warmup_fraction * static_cast<double>(trace.requests()));
    const TraceOptions& t = o->trace;
    std::printf(
        "trace: %zu requests x %u passages, corpus %llu passages (%s), zipf %.2f, one-off %.2f",
        trace.requests(), t.passages_per_request,
        static_cast<unsigned long long>(t.corpus_passages), FormatBytes(trace.corpus_bytes).c_str(),
        t.zipf_s, t.one_off_fraction);
    if (t.scan_length > 0)
      std::printf(", scans %llu of every %llu requests",
                  static_cast<unsigned long long>(t.scan_length),
                  static_cast<unsigned long long>(t.scan_period));
    if (t.shift_period > 0)
      std::printf(", popularity shift every %llu requests",
                  static_cast<unsigned long long>(t.shift_period));
    std::printf(
        "\nbudget %s (%.3g of the corpus), hits counted after %zu warm-up requests, seed %llu\n",
        FormatBytes(capacity).c_str(), o->capacity_fraction, warmup,
        static_cast<unsigned long long>(t.seed));
    std::printf("%-8s %9s %9s %9s %10s %10s %10s %10s %6s %7s\n", "policy", "block hit", "byte hit",
                "full req", "admitted", "rejected", "evictions", "filtered", "resets", "ns/acc");

    nlohmann::json rows = nlohmann::json::array();
    for (CachePolicyKind kind : kinds) {
      CachePolicyOptions po;
      po.kind = kind;
      po.capacity_bytes = capacity;
      po.window_fraction = o->window_fraction;
      po.adaptive = o->adaptive;
      Check(ValidateCachePolicyOptions(po));
      const auto t0 = std::chrono::steady_clock::now();
      const ReplayResult r = ReplayTrace(trace, po, warmup);
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const double ns =
          trace.accesses.empty() ? 0.0 : seconds * 1e9 / static_cast<double>(trace.accesses.size());
      std::printf("%-8s %9.4f %9.4f %9.4f %10llu %10llu %10llu %10llu %6llu %7.0f\n",
                  CachePolicyKindName(kind), r.block_hit_rate(), r.byte_hit_rate(),
                  r.full_hit_rate(), static_cast<unsigned long long>(r.stats.admitted),
                  static_cast<unsigned long long>(r.stats.rejected),
                  static_cast<unsigned long long>(r.stats.evictions),
                  static_cast<unsigned long long>(r.stats.filtered),
                  static_cast<unsigned long long>(r.stats.sketch_resets), ns);
      rows.push_back({{"policy", CachePolicyKindName(kind)},
                      {"block_hit_rate", r.block_hit_rate()},
                      {"byte_hit_rate", r.byte_hit_rate()},
                      {"full_hit_request_rate", r.full_hit_rate()},
                      {"admitted", r.stats.admitted},
                      {"rejected", r.stats.rejected},
                      {"evictions", r.stats.evictions},
                      {"evicted_bytes", r.stats.evicted_bytes},
                      {"filtered", r.stats.filtered},
                      {"sketch_resets", r.stats.sketch_resets},
                      {"ns_per_access", ns}});
    }
    if (!o->json_file.empty()) {
      const nlohmann::json j = {{"corpus_passages", t.corpus_passages},
                                {"corpus_bytes", trace.corpus_bytes},
                                {"capacity_bytes", capacity},
                                {"capacity_fraction", o->capacity_fraction},
                                {"zipf_s", t.zipf_s},
                                {"one_off_fraction", t.one_off_fraction},
                                {"requests", trace.requests()},
                                {"passages_per_request", t.passages_per_request},
                                {"tokens_range", {t.min_tokens, t.max_tokens}},
                                {"bytes_per_token", t.bytes_per_token},
                                {"scan_period", t.scan_period},
                                {"scan_length", t.scan_length},
                                {"shift_period", t.shift_period},
                                {"warmup_requests", warmup},
                                {"window_fraction", o->window_fraction},
                                {"adaptive", o->adaptive},
                                {"seed", t.seed},
                                {"policies", rows}};
      std::ofstream f(o->json_file);
      f << j.dump(2) << "\n";
      if (!f) Fail("cannot write " + o->json_file);
    }
  });
}

}  // namespace blockkv::cli
