// Helpers shared by the test suites.
#pragma once

#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "db/block_store.h"

namespace blockkv::testing {

// A fresh directory under the system temp dir, removed (with its contents) on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string str(const std::string& child = "") const {
    return child.empty() ? path_.string() : (path_ / child).string();
  }

 private:
  std::filesystem::path path_;
};

// KV-shaped bf16/f16/f32 data with roughly the statistics of real attention keys and values: per-channel
// scales (a few large "outlier" channels, as RoPE'd keys have) times Gaussian noise.
std::vector<uint8_t> MakeKvData(DType dtype, uint32_t tokens, uint32_t kv_heads, uint32_t head_dim,
                                uint64_t seed);

// A block with deterministic content derived from (seed); keeps its tensors alive.
struct TestBlock {
  BlockToPut put;
  std::vector<std::vector<uint8_t>> k, v;
};
TestBlock MakeTestBlock(const ModelFingerprint& model, uint32_t num_layers, uint32_t tokens,
                        uint32_t kv_heads, uint32_t head_dim, DType dtype, uint64_t seed,
                        const std::string& name = "");

ModelFingerprint TestModel(uint8_t tag);

// Flips the bits of `mask` in the byte at the middle of the file at `path`.
void FlipMiddleByte(const std::filesystem::path& path, uint8_t mask);

// Runs a shell command, returns its exit status, and captures stdout+stderr into *output.
int RunCommand(const std::string& command, std::string* output);

// Path of the blockkv CLI: $BLOCKKV_CLI if set, else the one built next to the tests.
std::string CliPath();

// Marks a test case as skipped for CTest (tests/CMakeLists.txt matches this word) and says why.
void ReportSkipped(const std::string& why);

}  // namespace blockkv::testing
