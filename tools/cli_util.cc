#include "tools/cli_util.h"

#include <algorithm>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <cmath>
#include <ctime>
#include <iostream>

#include "db/codec.h"

namespace blockkv::cli {

void Fail(const Status& s) { throw Failure{kExitError, s.ToString()}; }
void Fail(const std::string& message, int code) { throw Failure{code, message}; }

std::unique_ptr<BlockStore> OpenForRead(const std::string& path) {
  StoreOptions o;
  o.mode = OpenMode::kSecondary;
  return Check(BlockStore::Open(path, o));
}

std::unique_ptr<BlockStore> OpenForWrite(const std::string& path, bool create) {
  StoreOptions o;
  o.create_if_missing = create;
  return Check(BlockStore::Open(path, o));
}

std::unique_ptr<BlockStore> OpenForWrite(const std::string& path, bool create, const std::string& codec) {
  StoreOptions o;
  o.create_if_missing = create;
  if (!codec.empty()) {
    const auto c = ParseCodec(codec);
    if (!c) Fail("--codec must be raw or zstd-split, got '" + codec + "'");
    o.codec = *c;
  }
  return Check(BlockStore::Open(path, o));
}

void AddCodecOption(CLI::App* sub, std::string* codec) {
  sub->add_option("--codec", *codec,
                  "Codec of the blocks this command stores: zstd-split (default; lossless, ~1.45x smaller on bf16 "
                  "KV) or raw (larger, but read about 2x faster when streamed to the GPU: docs/benchmarks.md)");
}

BlockId ResolveBlock(BlockStore* store, const std::string& ref) {
  if (auto h = Hash128::FromHex(ref)) return BlockId(*h);
  bool hex = ref.size() >= 8 && ref.size() < 32;
  for (char c : ref) hex = hex && std::isxdigit(static_cast<unsigned char>(c));
  auto named = store->ResolveName(ref);
  if (named.ok()) return *named;
  if (!named.status().IsNotFound()) Fail(named.status());
  if (hex) {
    std::string lower;
    for (char c : ref) lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    std::vector<BlockId> found;
    Check(store->List({}, [&](const BlockMeta& m) {
      if (m.id.ToHex().compare(0, lower.size(), lower) == 0) found.push_back(m.id);
      return found.size() < 2;
    }));
    if (found.size() == 1) return found[0];
    if (found.size() > 1) Fail("block id prefix '" + ref + "' is ambiguous; give more digits");
  }
  Fail("no block with id or name '" + ref + "' in " + store->path());
}

std::optional<uint64_t> ParseSize(const std::string& text) {
  if (text.empty()) return std::nullopt;
  size_t i = 0;
  double value = 0;
  try {
    value = std::stod(text, &i);
  } catch (...) {
    return std::nullopt;
  }
  if (value < 0 || !std::isfinite(value)) return std::nullopt;
  std::string unit;
  for (; i < text.size(); ++i)
    if (!std::isspace(static_cast<unsigned char>(text[i])))
      unit.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(text[i]))));
  double mult = 1;
  if (unit.empty() || unit == "B") mult = 1;
  else if (unit == "K" || unit == "KB" || unit == "KIB") mult = 1024.0;
  else if (unit == "M" || unit == "MB" || unit == "MIB") mult = 1024.0 * 1024;
  else if (unit == "G" || unit == "GB" || unit == "GIB") mult = 1024.0 * 1024 * 1024;
  else if (unit == "T" || unit == "TB" || unit == "TIB") mult = 1024.0 * 1024 * 1024 * 1024;
  else return std::nullopt;
  return static_cast<uint64_t>(value * mult);
}

std::string FormatBytes(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0) snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  else snprintf(buf, sizeof buf, "%.2f %s", v, units[u]);
  return buf;
}

std::string FormatTime(uint64_t unix_micros) {
  std::time_t t = static_cast<std::time_t>(unix_micros / 1000000);
  std::tm tm;
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

nlohmann::json MetaToJson(const BlockMeta& m, bool with_tokens) {
  nlohmann::json j = {{"id", m.id.ToHex()},
                      {"name", m.name},
                      {"model_fingerprint", m.model.ToHex()},
                      {"tokens", m.num_tokens()},
                      {"layers", m.num_layers},
                      {"kv_heads", m.kv_heads},
                      {"head_dim", m.head_dim},
                      {"dtype", DTypeName(m.dtype)},
                      {"codec", CodecName(m.codec)},
                      {"raw_bytes", m.raw_bytes},
                      {"stored_bytes", m.stored_bytes},
                      {"ratio", m.stored_bytes ? double(m.raw_bytes) / double(m.stored_bytes) : 0.0},
                      {"pinned", m.pinned},
                      {"created", FormatTime(m.created_micros)},
                      {"last_access", FormatTime(m.last_access_micros)}};
  if (with_tokens) j["token_ids"] = m.tokens;
  return j;
}

nlohmann::json StatsToJson(const StoreStats& s) {
  return {{"blocks", s.blocks},
          {"pinned_blocks", s.pinned_blocks},
          {"named_blocks", s.named_blocks},
          {"tokens", s.tokens},
          {"raw_bytes", s.raw_bytes},
          {"stored_bytes", s.stored_bytes},
          {"ratio", s.ratio()},
          {"byte_budget", s.byte_budget},
          {"blob_file_bytes", s.total_blob_file_bytes},
          {"live_blob_file_bytes", s.live_blob_file_bytes},
          {"sst_file_bytes", s.sst_file_bytes},
          {"memtable_bytes", s.memtable_bytes}};
}

void PrintJson(const nlohmann::json& j) { std::cout << j.dump(2) << std::endl; }

SizeValidator::SizeValidator() {
  name_ = "SIZE";
  func_ = [](const std::string& s) -> std::string {
    return ParseSize(s) ? "" : "'" + s + "' is not a size (examples: 4096, 512M, 1.5G)";
  };
}

WorkDir::WorkDir(const std::string& given, const std::string& prefix) : path_(given) {
  if (!path_.empty()) return;
  std::string tmpl = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
  if (mkdtemp(tmpl.data()) == nullptr) Fail("cannot create a temporary directory");
  path_ = tmpl;
  remove_ = true;
}

WorkDir::~WorkDir() {
  std::error_code ec;
  if (remove_) std::filesystem::remove_all(path_, ec);
}

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * (v.size() - 1) + 0.5))];
}

}  // namespace blockkv::cli
