// Each file registers its subcommands on the blockkv app.
#pragma once

#include <CLI/CLI.hpp>

namespace blockkv::cli {

void RegisterAdminCommands(CLI::App& app);     // ls, stat, show, verify, rm, evict, budget, compact, pin, unpin
void RegisterExchangeCommands(CLI::App& app);  // import, export
void RegisterBenchStoreCommand(CLI::App& app); // bench-store
void RegisterBenchCpuCommand(CLI::App& app);   // bench-cpu
void RegisterRuntimeCommands(CLI::App& app);   // make-model, precompute, run, demo
void RegisterPrecompute(CLI::App& app);        // precompute (tools/cmd_precompute.cc)
void RegisterRun(CLI::App& app);               // run (tools/cmd_run.cc)
void RegisterTokenizeCommand(CLI::App& app);  // tokenize (tools/cmd_tokenize.cc)
void RegisterBenchTokenizerCommand(CLI::App& app);  // bench-tokenizer (tools/cmd_bench_tokenizer.cc)
void RegisterBenchCacheCommand(CLI::App& app);     // bench-cache (tools/cmd_bench_cache.cc)
void RegisterBenchWorkloadCommand(CLI::App& app);  // bench-workload (tools/cmd_bench_workload.cc)
void RegisterServeCommand(CLI::App& app);     // serve (tools/cmd_serve.cc)
void RegisterBenchHttpCommand(CLI::App& app); // bench-http (tools/cmd_bench_http.cc)
void RegisterBenchCommand(CLI::App& app);      // bench (GPU end-to-end benchmark; tools/cmd_bench.cc)

}  // namespace blockkv::cli
