// bench-http: a load test of `blockkv serve`: N clients send chat completions for a bounded time over
// keep-alive connections and report requests/s, latency percentiles and errors (docs/server.md).
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <thread>

#include "attention/engine/cache_trace.h"
#include "tools/cli_util.h"
#include "tools/commands.h"

namespace blockkv::cli {

void RegisterBenchHttpCommand(CLI::App& app) {
  struct Opts {
    std::string host = "127.0.0.1", api_key, json_out, passages;
    int port = 8000, clients = 32, max_tokens = 8, per_request = 4;
    double seconds = 10;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand(
      "bench-http",
      "Load-test a running `blockkv serve`: --clients threads each send chat completions in a loop for\n"
      "--seconds, with --per-request passages drawn from --passages, and report requests/s, p50/p99 latency\n"
      "and the errors (any answer but 200, or a failed connection). Exits 1 if there was any error.\n"
      "Example: blockkv bench-http --port 8000 --clients 32 --seconds 10 --passages doc-1,doc-2,doc-3");
  sub->add_option("--host", o->host, "Server address")->capture_default_str();
  sub->add_option("--port", o->port, "Server port")->capture_default_str()->check(CLI::Range(1, 65535));
  sub->add_option("--api-key", o->api_key, "Sent as 'Authorization: Bearer KEY'");
  sub->add_option("--clients", o->clients, "Concurrent clients")->capture_default_str()->check(CLI::Range(1, 4096));
  sub->add_option("--seconds", o->seconds, "How long to send")->capture_default_str()->check(CLI::Range(0.1, 86400.0));
  sub->add_option("--max-tokens", o->max_tokens, "max_tokens of each request")->capture_default_str();
  sub->add_option("--passages", o->passages, "Stored passage ids to draw from, comma-separated (default: none)");
  sub->add_option("--per-request", o->per_request, "Passages per request")->capture_default_str();
  sub->add_option("--json", o->json_out, "Also write the results as JSON here");
  sub->callback([o] {
    std::vector<std::string> ids;
    for (size_t pos = 0; pos < o->passages.size();) {
      const size_t end = std::min(o->passages.find(',', pos), o->passages.size());
      if (end > pos) ids.push_back(o->passages.substr(pos, end - pos));
      pos = end + 1;
    }
    const int per = std::min<int>(o->per_request, static_cast<int>(ids.size()));
    std::mutex mu;
    std::vector<double> latencies;
    std::atomic<int> errors{0};
    std::string first_error;
    const auto start = std::chrono::steady_clock::now();
    const auto deadline = start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                      std::chrono::duration<double>(o->seconds));
    std::vector<std::thread> threads;
    for (int c = 0; c < o->clients; ++c) {
      threads.emplace_back([&, c] {
        httplib::Client client(o->host, o->port);
        client.set_keep_alive(true);
        client.set_read_timeout(120, 0);
        httplib::Headers headers;
        if (!o->api_key.empty()) headers.emplace("Authorization", "Bearer " + o->api_key);
        SplitMix64 rng(static_cast<uint64_t>(c) + 1);
        std::vector<double> mine;
        for (int n = 0; std::chrono::steady_clock::now() < deadline; ++n) {
          nlohmann::json body = {
              {"messages", {{{"role", "user"}, {"content", "Question " + std::to_string(n) + " of client " + std::to_string(c) + "?"}}}},
              {"max_tokens", o->max_tokens},
              {"temperature", 0}};
          std::vector<std::string> picked;
          while (static_cast<int>(picked.size()) < per) {
            const std::string& id = ids[rng.Next() % ids.size()];
            if (std::find(picked.begin(), picked.end(), id) == picked.end()) picked.push_back(id);
          }
          body["passages"] = picked;
          const auto t0 = std::chrono::steady_clock::now();
          auto res = client.Post("/v1/chat/completions", headers, body.dump(), "application/json");
          const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
          if (!res || res->status != 200) {
            ++errors;
            std::lock_guard<std::mutex> l(mu);
            if (first_error.empty())
              first_error = res ? std::to_string(res->status) + " " + res->body : httplib::to_string(res.error());
            continue;
          }
          mine.push_back(ms);
        }
        std::lock_guard<std::mutex> l(mu);
        latencies.insert(latencies.end(), mine.begin(), mine.end());
      });
    }
    for (auto& t : threads) t.join();
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double rps = latencies.size() / elapsed;
    const double p50 = Percentile(latencies, 0.5), p99 = Percentile(latencies, 0.99);
    std::printf("| clients | seconds | requests | errors | requests/s | p50 ms | p99 ms |\n|---:|---:|---:|---:|---:|---:|---:|\n");
    std::printf("| %d | %.1f | %zu | %d | %.1f | %.2f | %.2f |\n", o->clients, elapsed, latencies.size(), errors.load(),
                rps, p50, p99);
    if (!first_error.empty()) std::fprintf(stderr, "bench-http: first error: %s\n", first_error.c_str());
    if (!o->json_out.empty()) {
      std::ofstream f(o->json_out);
      f << nlohmann::json{{"clients", o->clients}, {"seconds", elapsed}, {"requests", latencies.size()},
                          {"errors", errors.load()}, {"requests_per_s", rps}, {"p50_ms", p50}, {"p99_ms", p99},
                          {"max_tokens", o->max_tokens}, {"passages_per_request", per}}
                .dump(2)
        << "\n";
      if (!f) Fail(o->json_out + ": cannot write");
    }
    if (errors.load() > 0) Fail(std::to_string(errors.load()) + " requests failed");
  });
}

}  // namespace blockkv::cli
