// blockkv: the command-line tool of the blockkv KV-cache database.
#include <cstdio>
#include <iostream>

#include "tools/cli_util.h"
#include "tools/commands.h"

int main(int argc, char** argv) {
  CLI::App app{
      "blockkv: an embedded KV-cache database for Block-Attention.\n"
      "Stores per-layer KV blocks of passages (compressed, checksummed, in RocksDB), answers prompts by\n"
      "reusing them, and administers stores. Read-only commands work beside a live writer.",
      "blockkv"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "blockkv 0.1.0");
  blockkv::cli::RegisterAdminCommands(app);
  blockkv::cli::RegisterExchangeCommands(app);
  blockkv::cli::RegisterBenchStoreCommand(app);
  blockkv::cli::RegisterBenchCpuCommand(app);
  blockkv::cli::RegisterRuntimeCommands(app);
  blockkv::cli::RegisterTokenizeCommand(app);
  blockkv::cli::RegisterBenchTokenizerCommand(app);
  blockkv::cli::RegisterBenchCacheCommand(app);
  blockkv::cli::RegisterBenchWorkloadCommand(app);
  blockkv::cli::RegisterBenchCommand(app);
  blockkv::cli::RegisterServeCommand(app);
  blockkv::cli::RegisterBenchHttpCommand(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; every usage error exits 2.
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  } catch (const blockkv::cli::Failure& f) {
    if (!f.message.empty()) std::fprintf(stderr, "blockkv: %s\n", f.message.c_str());
    return f.code;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "blockkv: %s\n", e.what());
    return blockkv::cli::kExitError;
  }
  return 0;
}
