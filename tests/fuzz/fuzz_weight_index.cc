// libFuzzer target: the sharded-weights index (model.safetensors.index.json, attention/weight_files.h).
// Each input is written as the index of a scratch model directory holding one small valid shard, and
// the directory is opened as a model's weights would be.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "attention/weight_files.h"
#include "db/safetensors.h"

namespace {

const std::string& ScratchDir() {
  static const std::string dir = [] {
    std::string tmpl = (std::filesystem::temp_directory_path() / "blockkv-fuzz-index-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) abort();
    std::vector<float> w(8, 0.5f);
    std::vector<blockkv::TensorToWrite> ts = {{"model.norm.weight", blockkv::DType::kF32, {8}, w.data()}};
    if (!blockkv::WriteSafetensors(tmpl + "/model-00001-of-00001.safetensors", ts, {}).ok()) abort();
    return tmpl;
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& dir = ScratchDir();
  {
    std::ofstream f(dir + "/model.safetensors.index.json", std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  (void)blockkv::WeightFiles::Open(dir);
  return 0;
}
