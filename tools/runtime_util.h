// Pieces shared by the runtime commands (precompute, run, demo, bench): opening a backend on a
// device, options common to them, timings as JSON, and the answer's text output.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "attention/engine.h"
#include "attention/model/tokenizer.h"
#include "attention/model_backend.h"
#include "attention/runtime.h"

namespace blockkv::cli {

// The model runtime `device` names ("cpu" or "cuda") for the model in `model_dir`.
struct Backend {
  std::unique_ptr<Runtime> cpu;           // the CPU runtime, when device is cpu
  std::shared_ptr<void> runtime;          // a runtime `backend` borrows (OpenRandomCudaBackend)
  std::unique_ptr<ModelBackend> backend;  // what the Engine runs on
};
Backend OpenBackend(const std::string& device, const std::string& model_dir);
// A CUDA backend over a model of a synthetic preset's shape with random weights made on the GPU (no weights
// file: full-size shapes for benchmarks). Its blocks are addressed by a fingerprint of the preset's name.
Backend OpenRandomCudaBackend(const std::string& preset, uint64_t seed);
void AddDeviceOption(CLI::App* sub, std::string* device);

// --kv-dtype; "" (the default) is f32 on the CPU (block mode then equals the masked reference exactly)
// and bf16 on the GPU (its keys and values are bf16 already: stored losslessly in half the bytes).
DType ParseKvDType(const std::string& s, const std::string& device);

// The model directory's tokenizer; nullptr when it has no tokenizer.json and `required` is false.
std::unique_ptr<Tokenizer> LoadTokenizer(const std::string& model_dir, bool required);

nlohmann::json TimingJson(const EngineTiming& t);
std::string Join(const std::vector<std::string>& v, const char* sep);

// Writes text to stdout at once (for streamed answers).
void WriteOut(const std::string& text);

}  // namespace blockkv::cli
