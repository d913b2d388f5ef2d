#include "tools/commands.h"

namespace blockkv::cli {
void RegisterRuntimeCommands(CLI::App& app) {}
}  // namespace blockkv::cli
