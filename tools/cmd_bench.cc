// bench: the GPU end-to-end benchmark (owned by the CUDA backend work; see docs/benchmarks.md).
#include "tools/commands.h"

namespace blockkv::cli {
void RegisterBenchCommand(CLI::App& app) {}
}  // namespace blockkv::cli
