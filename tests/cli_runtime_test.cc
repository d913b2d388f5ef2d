// make-model, precompute, run and demo, run as a user would.
#include <boost/test/unit_test.hpp>
#include <cstring>
#include <fstream>
#include <sstream>
#include <nlohmann/json.hpp>

#include "tests/test_util.h"

using namespace blockkv;
using blockkv::testing::RunCommand;
using blockkv::testing::TempDir;

namespace {

constexpr int64_t kTinyVocab = 512;  // the tiny preset's vocabulary (SyntheticModelSpec)

int Run(const std::string& args, std::string* out) { return RunCommand(testing::CliPath() + " " + args, out); }

// Reads a float32 .npy file: returns its shape and data.
std::pair<std::vector<int64_t>, std::vector<float>> ReadNpy(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::string s((std::istreambuf_iterator<char>(f)), {});
  BOOST_REQUIRE(s.size() > 10 && s.compare(0, 6, "\x93NUMPY") == 0);
  uint16_t hl;
  std::memcpy(&hl, s.data() + 8, 2);
  BOOST_REQUIRE((10 + hl) % 64 == 0);
  std::string header = s.substr(10, hl);
  BOOST_REQUIRE(header.find("'descr': '<f4'") != std::string::npos);
  std::vector<int64_t> shape;
  size_t p = header.find('(') + 1, e = header.find(')');
  std::string dims = header.substr(p, e - p);
  for (size_t i = 0; i < dims.size();) {
    size_t j = dims.find(',', i);
    std::string d = dims.substr(i, j == std::string::npos ? std::string::npos : j - i);
    if (d.find_first_not_of(' ') != std::string::npos) shape.push_back(std::stoll(d));
    if (j == std::string::npos) break;
    i = j + 1;
  }
  std::vector<float> data((s.size() - 10 - hl) / 4);
  std::memcpy(data.data(), s.data() + 10 + hl, data.size() * 4);
  return {shape, data};
}

}  // namespace

BOOST_AUTO_TEST_SUITE(cli_runtime)

BOOST_AUTO_TEST_CASE(make_model_precompute_run) {
  TempDir dir;
  std::string o;
  BOOST_REQUIRE_MESSAGE(Run("make-model --preset tiny --arch qwen2 --seed 3 --out " + dir.str("m"), &o) == 0, o);
  {
    std::ofstream c(dir.str("corpus.jsonl"));
    c << R"({"id": "alpha", "tokens": [5, 6, 7, 8, 9, 10]})" << "\n";
    c << R"({"id": "beta", "tokens": [20, 21, 22, 23]})" << "\n";
    std::ofstream p(dir.str("prompt.json"));
    p << R"({"blocks": [[5, 6, 7, 8, 9, 10], [20, 21, 22, 23], [30, 31, 32]]})";
  }
  BOOST_REQUIRE_MESSAGE(Run("precompute --json --model " + dir.str("m") + " --store " + dir.str("s") +
                                " --corpus " + dir.str("corpus.jsonl"), &o) == 0, o);
  BOOST_TEST(nlohmann::json::parse(o)["encoded"].get<int>() == 2);
  BOOST_REQUIRE(Run("precompute --json --model " + dir.str("m") + " --store " + dir.str("s") + " --corpus " +
                        dir.str("corpus.jsonl"), &o) == 0);
  BOOST_TEST(nlohmann::json::parse(o)["already_stored"].get<int>() == 2);
  // --codec picks how the blocks are stored (zstd-split by default).
  BOOST_REQUIRE(Run("ls " + dir.str("s") + " --json", &o) == 0);
  for (const auto& b : nlohmann::json::parse(o)) BOOST_TEST(b["codec"].get<std::string>() == "zstd-split");
  BOOST_REQUIRE_MESSAGE(Run("precompute --codec raw --model " + dir.str("m") + " --store " + dir.str("raw") +
                                " --corpus " + dir.str("corpus.jsonl"), &o) == 0, o);
  BOOST_REQUIRE(Run("ls " + dir.str("raw") + " --json", &o) == 0);
  BOOST_TEST(nlohmann::json::parse(o).size() == 2u);
  for (const auto& b : nlohmann::json::parse(o)) BOOST_TEST(b["codec"].get<std::string>() == "raw");
  BOOST_TEST(Run("precompute --codec lz4 --model " + dir.str("m") + " --store " + dir.str("x") + " --corpus " +
                     dir.str("corpus.jsonl"), &o) == 1);
  BOOST_TEST(o.find("lz4") != std::string::npos, o);

  const std::string base = "run --model " + dir.str("m") + " --store " + dir.str("s") + " --prompt " + dir.str("prompt.json");
  BOOST_REQUIRE_MESSAGE(Run(base + " --json --max-new-tokens 3 --logits-out " + dir.str("last.npy"), &o) == 0, o);
  auto j = nlohmann::json::parse(o);
  BOOST_TEST(j["timing"]["hits"].get<int>() == 2);  // both passages were precomputed
  BOOST_TEST(j["tokens"].size() <= 3u);
  auto [shape, last] = ReadNpy(dir.str("last.npy"));
  BOOST_TEST((shape == std::vector<int64_t>{kTinyVocab}));
  BOOST_REQUIRE_MESSAGE(Run(base + " --all-logits --max-new-tokens 0 --logits-out " + dir.str("all.npy"), &o) == 0, o);
  auto [shape2, all] = ReadNpy(dir.str("all.npy"));
  BOOST_TEST((shape2 == std::vector<int64_t>{3, kTinyVocab}));
  // The last row of --all-logits is the last-position logits.
  BOOST_TEST(std::memcmp(all.data() + 2 * kTinyVocab, last.data(), kTinyVocab * 4) == 0);
  BOOST_REQUIRE(Run(base + " --mode full --all-logits --max-new-tokens 0 --logits-out " + dir.str("full.npy"), &o) == 0);
  auto [shape3, full] = ReadNpy(dir.str("full.npy"));
  BOOST_TEST((shape3 == std::vector<int64_t>{3, kTinyVocab}));
  BOOST_TEST((full != all));  // full attention is a different computation
}

BOOST_AUTO_TEST_CASE(runtime_errors_are_one_line) {
  TempDir dir;
  std::string o;
  BOOST_TEST(Run("run --model " + dir.str("nomodel") + " --store " + dir.str("s") + " --prompt " + dir.str("p.json"), &o) == 1);
  BOOST_TEST(std::count(o.begin(), o.end(), '\n') == 1, o);
  std::filesystem::create_directories(dir.str("bad"));
  std::ofstream(dir.str("bad/config.json")) << "{ not json";
  std::ofstream(dir.str("p.json")) << R"({"blocks": [[1, 2], [3]]})";
  BOOST_TEST(Run("run --model " + dir.str("bad") + " --store " + dir.str("s") + " --prompt " + dir.str("p.json"), &o) == 1);
  BOOST_TEST(o.find("config.json") != std::string::npos, o);
  BOOST_TEST(std::count(o.begin(), o.end(), '\n') == 1, o);
  std::ofstream(dir.str("bad/config.json")) << R"({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"})";
  BOOST_TEST(Run("run --model " + dir.str("bad") + " --store " + dir.str("s") + " --prompt " + dir.str("p.json"), &o) == 1);
  BOOST_TEST(std::count(o.begin(), o.end(), '\n') == 1, o);
  BOOST_REQUIRE(Run("make-model --preset tiny --out " + dir.str("m"), &o) == 0);
  std::ofstream(dir.str("p2.json")) << R"({"blocks": [[1, 2], [99999]]})";  // token outside the vocabulary
  BOOST_TEST(Run("run --model " + dir.str("m") + " --store " + dir.str("s") + " --prompt " + dir.str("p2.json"), &o) == 1);
  BOOST_TEST(o.find("99999") != std::string::npos, o);
  BOOST_TEST(Run("make-model --preset enormous --out " + dir.str("x"), &o) == 1);
  BOOST_TEST(o.find("enormous") != std::string::npos, o);
}

// --device cuda fails cleanly where it cannot run: no GPU (CI), a build without the CUDA backend, or (on a
// GPU host) this tiny model's head_dim 16, which the CUDA kernels refuse. Each is one line, exit 1. The
// success path runs in the cuda_runtime suite on a GPU.
BOOST_AUTO_TEST_CASE(device_cuda_errors_are_one_line) {
  TempDir dir;
  std::string o;
  BOOST_REQUIRE(Run("make-model --preset tiny --out " + dir.str("m"), &o) == 0);
  std::ofstream(dir.str("p.json")) << R"({"blocks": [[1, 2], [3]]})";
  const std::string args = " --model " + dir.str("m") + " --store " + dir.str("s") + " --prompt " + dir.str("p.json");
  BOOST_TEST(Run("run --device cuda" + args, &o) == 1);
  BOOST_TEST(std::count(o.begin(), o.end(), '\n') == 1, o);
  BOOST_TEST((o.find("--device cuda") != std::string::npos || o.find("head_dim") != std::string::npos), o);
  BOOST_TEST(Run("run --device tpu" + args, &o) == 2);  // a usage error
  BOOST_TEST(o.find("--device") != std::string::npos, o);
  // The GPU tier exists only on cuda: asked for on the CPU it is a usage error, not silently ignored.
  BOOST_TEST(Run("run --gpu-tier 1G" + args, &o) == 2);
  BOOST_TEST(o.find("--gpu-tier needs --device cuda") != std::string::npos, o);
  BOOST_TEST(Run("run --gpu-tier lots" + args, &o) == 2);
  // A host tier on the CPU serves the second prompt of a file from host memory.
  std::ofstream(dir.str("two.jsonl")) << R"({"blocks": [[1, 2], [3]]})" << "\n" << R"({"blocks": [[1, 2], [4]]})" << "\n";
  BOOST_REQUIRE_MESSAGE(Run("run --json --max-new-tokens 0 --host-tier 1M --model " + dir.str("m") + " --store " +
                                dir.str("s") + " --prompt " + dir.str("two.jsonl"), &o) == 0, o);
  std::istringstream lines(o);
  std::string first, second;
  std::getline(lines, first);
  std::getline(lines, second);
  BOOST_TEST(nlohmann::json::parse(first)["blocks"][0]["source"].get<std::string>() != "host");
  BOOST_TEST(nlohmann::json::parse(second)["blocks"][0]["source"].get<std::string>() == "host");
}

BOOST_AUTO_TEST_CASE(demo_checks_itself) {
  std::string o;
  BOOST_REQUIRE_MESSAGE(Run("demo --json", &o) == 0, o);
  auto j = nlohmann::json::parse(o);
  BOOST_TEST(j["block_equals_masked_reference"].get<bool>());
  BOOST_TEST(j["stored_equals_fresh_bitwise"].get<bool>());
  BOOST_TEST(j["block_warm"]["hits"].get<int>() == 5);  // the system block and four passages
  BOOST_TEST(j["block_cold"]["misses"].get<int>() == 5);
  BOOST_TEST(!j["answer_block"].get<std::string>().empty());
}

BOOST_AUTO_TEST_SUITE_END()
