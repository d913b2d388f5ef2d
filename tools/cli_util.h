// Shared pieces of the blockkv CLI: opening stores, naming blocks, sizes, errors, output.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "db/block_store.h"

namespace blockkv::cli {

// Exit codes: 0 success, 1 an error (one line on stderr), 2 bad usage (CLI11), 3 verify found damage.
inline constexpr int kExitError = 1;
inline constexpr int kExitDamaged = 3;

// Thrown by commands to end with one error line naming the problem.
struct Failure {
  int code;
  std::string message;
};
[[noreturn]] void Fail(const Status& s);
[[noreturn]] void Fail(const std::string& message, int code = kExitError);
template <typename T>
T Check(StatusOr<T> v) {
  if (!v.ok()) Fail(v.status());
  return std::move(v).value();
}
inline void Check(const Status& s) {
  if (!s.ok()) Fail(s);
}

// Read-only commands open the store as a secondary instance, so they work beside a live writer.
std::unique_ptr<BlockStore> OpenForRead(const std::string& path);
std::unique_ptr<BlockStore> OpenForWrite(const std::string& path, bool create = false);
// The same, writing new blocks with `codec` ("raw" or "zstd-split"; empty: the store's default, zstd-split).
std::unique_ptr<BlockStore> OpenForWrite(const std::string& path, bool create, const std::string& codec);
// --codec on the commands that store blocks.
void AddCodecOption(CLI::App* sub, std::string* codec);

// Accepts a block id (32 hex digits), a unique id prefix of at least 8 hex digits, or a name.
BlockId ResolveBlock(BlockStore* store, const std::string& ref);

// "1.5G", "512MiB", "100m", "4096" -> bytes (K/M/G/T are powers of 1024). nullopt if malformed.
std::optional<uint64_t> ParseSize(const std::string& text);
std::string FormatBytes(uint64_t bytes);  // "1.23 GiB"
// The q-quantile (q in [0, 1]) of `v` by nearest rank; 0 when empty.
double Percentile(std::vector<double> v, double q);
std::string FormatTime(uint64_t unix_micros);  // "2026-11-30 06:10:01"

nlohmann::json MetaToJson(const BlockMeta& m, bool with_tokens);
nlohmann::json StatsToJson(const StoreStats& s);

// Prints JSON (pretty) to stdout.
void PrintJson(const nlohmann::json& j);

// A working directory for a command: `given` when the user named one (kept), else a fresh temporary
// directory named after `prefix` (removed, with its contents, on destruction). Fails (exits) if the
// temporary directory cannot be created.
class WorkDir {
 public:
  WorkDir(const std::string& given, const std::string& prefix);
  ~WorkDir();
  WorkDir(const WorkDir&) = delete;
  WorkDir& operator=(const WorkDir&) = delete;
  const std::string& path() const { return path_; }
  bool temporary() const { return remove_; }

 private:
  std::string path_;
  bool remove_ = false;
};

// A CLI11 validator for sizes.
struct SizeValidator : public CLI::Validator {
  SizeValidator();
};

}  // namespace blockkv::cli
