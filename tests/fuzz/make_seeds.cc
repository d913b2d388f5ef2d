// Writes the binary seed corpora of the fuzz targets (tests/fuzz/corpus/); the JSON seeds are written by
// hand. Run once: make_seeds tests/fuzz/corpus
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "db/block_store_impl.h"
#include "db/codec.h"
#include "db/safetensors.h"

using namespace blockkv;

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  const std::filesystem::path root = argv[1];
  for (const char* d : {"tensor_decode", "safetensors", "block_import", "block_meta"})
    std::filesystem::create_directories(root / d);
  auto write = [](const std::filesystem::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; };
  int n = 0;
  for (DType dt : {DType::kBF16, DType::kF16, DType::kF32})
    for (Codec c : {Codec::kRaw, Codec::kZstdSplit}) {
      const uint32_t dims[4] = {2, 5, 2, 8};
      std::vector<float> f(2 * 5 * 2 * 8);
      for (size_t i = 0; i < f.size(); ++i) f[i] = static_cast<float>((i * 37) % 19) * 0.25f - 2.0f;
      std::vector<uint8_t> raw(f.size() * DTypeSize(dt));
      FromFloat(dt, f.data(), raw.data(), f.size());
      ConstPiece p{raw.data(), raw.size()};
      std::string out;
      if (!EncodeTensor({&p, 1}, dt, dims, {c, 1}, &out).ok()) return 1;
      write(root / "tensor_decode" / ("seed" + std::to_string(n++)), out);
    }
  // A block exchange file and a plain safetensors file.
  std::vector<uint16_t> k(3 * 1 * 4, 0x3f80), v(3 * 1 * 4, 0xbf80);
  std::vector<TensorToWrite> ts = {{"k.0", DType::kBF16, {3, 1, 4}, k.data()}, {"v.0", DType::kBF16, {3, 1, 4}, v.data()}};
  const std::string tmp = (root / "tmp.safetensors").string();
  if (!WriteSafetensors(tmp, ts, {{"model_fingerprint", std::string(32, 'a')}, {"tokens", "[1,2,3]"}}).ok()) return 1;
  std::filesystem::copy_file(tmp, root / "block_import" / "seed0", std::filesystem::copy_options::overwrite_existing);
  std::filesystem::copy_file(tmp, root / "safetensors" / "seed0", std::filesystem::copy_options::overwrite_existing);
  std::filesystem::remove(tmp);
  BlockMeta m;
  m.tokens = {1, 2, 3, 4};
  m.num_layers = 2;
  m.kv_heads = 2;
  m.head_dim = 8;
  m.name = "passage-1";
  write(root / "block_meta" / "seed0", EncodeMeta(m));
  return 0;
}
