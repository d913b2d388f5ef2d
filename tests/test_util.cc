#include "tests/test_util.h"

#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sys/wait.h>
#include <iostream>

namespace blockkv::testing {

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "blockkv-test-XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) std::abort();
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::vector<uint8_t> MakeKvData(DType dtype, uint32_t tokens, uint32_t kv_heads, uint32_t head_dim,
                                uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  const uint32_t channels = kv_heads * head_dim;
  std::vector<float> scale(channels);
  for (uint32_t c = 0; c < channels; ++c) {
    scale[c] = 0.5f + std::abs(normal(rng));
    if (rng() % 16 == 0) scale[c] *= 8.f;  // outlier channels
  }
  std::vector<float> f(size_t{tokens} * channels);
  for (uint32_t t = 0; t < tokens; ++t)
    for (uint32_t c = 0; c < channels; ++c) f[size_t{t} * channels + c] = scale[c] * normal(rng);
  std::vector<uint8_t> out(f.size() * DTypeSize(dtype));
  FromFloat(dtype, f.data(), out.data(), f.size());
  return out;
}

TestBlock MakeTestBlock(const ModelFingerprint& model, uint32_t num_layers, uint32_t tokens,
                        uint32_t kv_heads, uint32_t head_dim, DType dtype, uint64_t seed,
                        const std::string& name) {
  TestBlock b;
  b.put.model = model;
  std::mt19937_64 rng(seed * 7919 + 1);
  for (uint32_t t = 0; t < tokens; ++t) b.put.tokens.push_back(static_cast<int32_t>(rng() % 128000));
  b.put.num_layers = num_layers;
  b.put.kv_heads = kv_heads;
  b.put.head_dim = head_dim;
  b.put.dtype = dtype;
  b.put.name = name;
  for (uint32_t l = 0; l < num_layers; ++l) {
    b.k.push_back(MakeKvData(dtype, tokens, kv_heads, head_dim, seed * 1000 + 2 * l));
    b.v.push_back(MakeKvData(dtype, tokens, kv_heads, head_dim, seed * 1000 + 2 * l + 1));
  }
  for (uint32_t l = 0; l < num_layers; ++l) {
    b.put.k.push_back(b.k[l].data());
    b.put.v.push_back(b.v[l].data());
  }
  return b;
}

ModelFingerprint TestModel(uint8_t tag) {
  Hash128 h;
  for (int i = 0; i < 16; ++i) h.bytes[i] = static_cast<uint8_t>(tag * 31 + i);
  return ModelFingerprint(h);
}

void FlipMiddleByte(const std::filesystem::path& path, uint8_t mask) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  const auto at = static_cast<std::streamoff>(std::filesystem::file_size(path) / 2);
  char c = 0;
  f.seekg(at);
  f.read(&c, 1);
  c = static_cast<char>(c ^ mask);
  f.seekp(at);
  f.write(&c, 1);
  if (!f) std::abort();
}

int RunCommand(const std::string& command, std::string* output) {
  output->clear();
  FILE* p = popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return -1;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) output->append(buf.data(), n);
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

std::string CliPath() {
  // BLOCKKV_CLI overrides the build tree's path (a GPU host runs carried binaries from another folder).
  const char* env = std::getenv("BLOCKKV_CLI");
  return env != nullptr && *env != '\0' ? env : BLOCKKV_CLI_PATH;
}

void ReportSkipped(const std::string& why) { std::cout << "BLOCKKV_SKIPPED: " << why << std::endl; }

}  // namespace blockkv::testing
