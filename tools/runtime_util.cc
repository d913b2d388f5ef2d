#include "tools/runtime_util.h"

#include <cstdio>
#include <filesystem>

#include "attention/model_config.h"
#include "attention/synthetic_model.h"
#include "tools/cli_util.h"

#if BLOCKKV_HAVE_CUDA
#include "attention/cuda/cuda_backend.h"
#endif

namespace blockkv::cli {

Backend OpenBackend(const std::string& device, const std::string& model_dir) {
  Backend b;
  if (device == "cpu") {
    b.cpu = Check(Runtime::Open(model_dir));
    b.backend = std::make_unique<CpuBackend>(b.cpu.get());
    return b;
  }
#if BLOCKKV_HAVE_CUDA
  std::string why;
  if (!cuda::CudaRuntime::DeviceAvailable(&why)) Fail("--device cuda: no usable CUDA device (" + why + ")");
  b.backend = Check(cuda::CudaBackend::Open(model_dir));
  return b;
#else
  Fail("--device cuda: this blockkv was built without the CUDA backend (nvcc not found at configure time)");
#endif
}

Backend OpenRandomCudaBackend(const std::string& preset, uint64_t seed) {
#if BLOCKKV_HAVE_CUDA
  std::string why;
  if (!cuda::CudaRuntime::DeviceAvailable(&why)) Fail("--device cuda: no usable CUDA device (" + why + ")");
  const SyntheticModelSpec spec = Check(SyntheticPreset(preset));
  const ModelConfig config = Check(ParseModelConfig(SyntheticConfigJson(spec), preset));
  std::shared_ptr<cuda::CudaRuntime> rt = Check(cuda::CudaRuntime::CreateRandom(config, seed));
  Backend b;
  b.backend = cuda::CudaBackend::Borrow(rt.get(), ModelFingerprint(HashBytes(preset.data(), preset.size())));
  b.runtime = rt;
  return b;
#else
  Fail("random weights need the CUDA backend (this blockkv was built without it)");
#endif
}

void AddDeviceOption(CLI::App* sub, std::string* device) {
  sub->add_option("--device", *device,
                  "cpu (the reference backend) or cuda (the GPU backend: bf16 weights, activations and KV on the "
                  "device; stored blocks stream in layer by layer during the prefill and are re-encoded there; "
                  "sampling runs there too)")
      ->capture_default_str()
      ->check(CLI::IsMember({"cpu", "cuda"}));
}

DType ParseKvDType(const std::string& s, const std::string& device) {
  if (s.empty()) return device == "cuda" ? DType::kBF16 : DType::kF32;
  auto d = ParseDType(s);
  if (!d) Fail("--kv-dtype must be f32, bf16 or f16, got '" + s + "'");
  return *d;
}

std::unique_ptr<Tokenizer> LoadTokenizer(const std::string& model_dir, bool required) {
  std::error_code ec;
  if (!required && !std::filesystem::exists(std::filesystem::path(model_dir) / "tokenizer.json", ec)) return nullptr;
  return Check(Tokenizer::Load(model_dir));
}

std::string Join(const std::vector<std::string>& v, const char* sep) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? sep : "") + v[i];
  return s;
}

nlohmann::json TimingJson(const EngineTiming& t) { return TimingToJson(t); }

void WriteOut(const std::string& text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

}  // namespace blockkv::cli
