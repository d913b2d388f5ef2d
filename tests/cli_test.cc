// Runs the blockkv binary as a user would.
#include <boost/test/unit_test.hpp>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "db/block_exchange.h"
#include "db/safetensors.h"
#include "tests/test_util.h"

using namespace blockkv;
using blockkv::testing::RunCommand;
using blockkv::testing::TempDir;

namespace {

std::string Cli() { return testing::CliPath(); }

// Writes a block exchange file as foreign code would, and returns its tensors.
testing::TestBlock WriteBlockFileByHand(const std::string& path, DType dt, uint64_t seed,
                                        const std::string& name = "") {
  auto b = testing::MakeTestBlock(testing::TestModel(9), 3, 21, 2, 16, dt, seed);
  std::vector<TensorToWrite> ts;
  for (uint32_t l = 0; l < 3; ++l) {
    ts.push_back({"k." + std::to_string(l), dt, {21, 2, 16}, b.k[l].data()});
    ts.push_back({"v." + std::to_string(l), dt, {21, 2, 16}, b.v[l].data()});
  }
  std::map<std::string, std::string> md = {{"model_fingerprint", b.put.model.ToHex()},
                                           {"tokens", nlohmann::json(b.put.tokens).dump()}};
  if (!name.empty()) md["name"] = name;
  BOOST_REQUIRE(WriteSafetensors(path, ts, md).ok());
  return b;
}

int Run(const std::string& args, std::string* out) { return RunCommand(Cli() + " " + args, out); }

}  // namespace

BOOST_AUTO_TEST_SUITE(cli)

BOOST_AUTO_TEST_CASE(import_export_round_trip_is_bit_exact) {
  TempDir dir;
  const std::string store = dir.str("store");
  for (DType dt : {DType::kBF16, DType::kF16, DType::kF32}) {
    const std::string in = dir.str(std::string("in-") + DTypeName(dt) + ".safetensors");
    const std::string out = dir.str(std::string("out-") + DTypeName(dt) + ".safetensors");
    auto b = WriteBlockFileByHand(in, dt, static_cast<uint64_t>(dt), std::string("passage-") + DTypeName(dt));
    std::string o;
    BOOST_REQUIRE_MESSAGE(Run("import --create --json " + store + " " + in, &o) == 0, o);
    auto j = nlohmann::json::parse(o);
    const std::string id = j["id"];
    BOOST_TEST(id == ComputeBlockId(b.put.model, b.put.tokens).ToHex());
    BOOST_REQUIRE_MESSAGE(Run("export " + store + " passage-" + DTypeName(dt) + " " + out, &o) == 0, o);
    auto r = SafetensorsReader::Open(out);
    BOOST_REQUIRE(r.ok());
    BOOST_TEST((*r)->metadata().at("model_fingerprint") == b.put.model.ToHex());
    BOOST_TEST(nlohmann::json::parse((*r)->metadata().at("tokens")).get<std::vector<int32_t>>() == b.put.tokens);
    for (uint32_t l = 0; l < 3; ++l) {
      auto k = (*r)->Get("k." + std::to_string(l));
      auto v = (*r)->Get("v." + std::to_string(l));
      BOOST_REQUIRE(k.ok() && v.ok());
      BOOST_TEST(((*k)->shape == std::vector<int64_t>{21, 2, 16}));
      BOOST_TEST(((*k)->dtype == dt));
      BOOST_TEST(std::memcmp((*k)->data, b.k[l].data(), b.k[l].size()) == 0);
      BOOST_TEST(std::memcmp((*v)->data, b.v[l].data(), b.v[l].size()) == 0);
    }
    // export -> import -> export yields the identical file.
    const std::string again = dir.str("again.safetensors");
    BOOST_REQUIRE(Run("import " + store + " " + out, &o) == 0);
    BOOST_REQUIRE(Run("export " + store + " " + id + " " + again, &o) == 0);
    std::ifstream a(out, std::ios::binary), c(again, std::ios::binary);
    std::string sa((std::istreambuf_iterator<char>(a)), {}), sc((std::istreambuf_iterator<char>(c)), {});
    BOOST_TEST(sa == sc);
  }
  std::string o;
  BOOST_REQUIRE(Run("stat --json " + store, &o) == 0);
  auto st = nlohmann::json::parse(o);
  BOOST_TEST(st["blocks"].get<int>() == 3);
  for (const char* key : {"raw_bytes", "stored_bytes", "ratio", "blob_file_bytes", "sst_file_bytes"})
    BOOST_TEST(st.contains(key), key);
  BOOST_TEST(st["raw_bytes"].get<uint64_t>() == 2ull * 3 * 21 * 2 * 16 * (2 + 2 + 4));
}

BOOST_AUTO_TEST_CASE(admin_commands) {
  TempDir dir;
  const std::string store = dir.str("store");
  std::string o;
  for (int i = 0; i < 4; ++i) {
    const std::string f = dir.str("b" + std::to_string(i) + ".safetensors");
    WriteBlockFileByHand(f, DType::kBF16, 100 + i);
    BOOST_REQUIRE_MESSAGE(Run("import --create " + store + " " + f + " --name doc" + std::to_string(i), &o) == 0, o);
  }
  BOOST_REQUIRE(Run("ls --json " + store, &o) == 0);
  auto ls = nlohmann::json::parse(o);
  BOOST_TEST(ls.size() == 4u);
  BOOST_REQUIRE(Run("ls " + store, &o) == 0);
  BOOST_TEST(o.find("doc2") != std::string::npos);
  BOOST_REQUIRE(Run("show --json --tokens " + store + " doc1", &o) == 0);
  BOOST_TEST(nlohmann::json::parse(o)["token_ids"].size() == 21u);
  // An id prefix works too.
  const std::string id0 = ls[0]["id"];
  BOOST_REQUIRE(Run("show " + store + " " + id0.substr(0, 12), &o) == 0);
  BOOST_TEST(o.find(id0) != std::string::npos);
  BOOST_REQUIRE(Run("pin " + store + " doc0", &o) == 0);
  BOOST_REQUIRE(Run("ls --pinned --json " + store, &o) == 0);
  BOOST_TEST(nlohmann::json::parse(o).size() == 1u);
  BOOST_REQUIRE(Run("rm " + store + " doc3", &o) == 0);
  BOOST_REQUIRE(Run("evict --json --to 0 " + store, &o) == 0);
  auto ev = nlohmann::json::parse(o);
  BOOST_TEST(ev["blocks_evicted"].get<int>() == 2);
  BOOST_TEST(ev["stats"]["blocks"].get<int>() == 1);  // the pinned one stays
  BOOST_REQUIRE(Run("unpin " + store + " doc0", &o) == 0);
  BOOST_REQUIRE(Run("budget " + store + " 10M", &o) == 0);
  BOOST_REQUIRE(Run("budget --json " + store, &o) == 0);
  BOOST_TEST(nlohmann::json::parse(o)["byte_budget"].get<uint64_t>() == 10ull << 20);
  BOOST_REQUIRE(Run("compact " + store, &o) == 0);
  BOOST_REQUIRE_MESSAGE(Run("verify " + store, &o) == 0, o);
  BOOST_TEST(o.find("OK") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(errors_are_one_clear_line) {
  TempDir dir;
  std::string o;
  BOOST_TEST(Run("stat " + dir.str("missing"), &o) == 1);
  BOOST_TEST(o.find("no blockkv store") != std::string::npos, o);
  BOOST_TEST(std::count(o.begin(), o.end(), '\n') == 1);
  BOOST_TEST(Run("import " + dir.str("s") + " " + dir.str("nofile.safetensors") + " --create", &o) == 1);
  BOOST_TEST(o.find("nofile.safetensors") != std::string::npos, o);
  std::ofstream(dir.str("junk.safetensors")) << "this is not safetensors";
  BOOST_TEST(Run("import --create " + dir.str("s") + " " + dir.str("junk.safetensors"), &o) == 1);
  BOOST_TEST(o.find("not a valid safetensors") != std::string::npos, o);
  WriteBlockFileByHand(dir.str("b.safetensors"), DType::kBF16, 1);
  BOOST_REQUIRE(Run("import --create " + dir.str("s") + " " + dir.str("b.safetensors"), &o) == 0);
  BOOST_TEST(Run("show " + dir.str("s") + " nosuchname", &o) == 1);
  BOOST_TEST(o.find("nosuchname") != std::string::npos, o);
  BOOST_TEST(Run("evict " + dir.str("s") + " --to lots", &o) == 2);  // usage error from CLI11
  BOOST_TEST(Run("frobnicate", &o) != 0);
  BOOST_REQUIRE(Run("--help", &o) == 0);
  for (const char* cmd : {"ls", "stat", "show", "verify", "rm", "evict", "compact", "pin", "unpin", "import",
                          "export", "bench-store"})
    BOOST_TEST(o.find(cmd) != std::string::npos, cmd);
}

BOOST_AUTO_TEST_CASE(flipped_blob_byte_fails_verify_and_export) {
  TempDir dir;
  const std::string store = dir.str("store");
  std::string o;
  WriteBlockFileByHand(dir.str("a.safetensors"), DType::kBF16, 1, "good");
  WriteBlockFileByHand(dir.str("b.safetensors"), DType::kBF16, 2, "bad");
  BOOST_REQUIRE(Run("import --create " + store + " " + dir.str("a.safetensors"), &o) == 0);
  BOOST_REQUIRE(Run("compact " + store, &o) == 0);  // block "good" now in its own blob file
  BOOST_REQUIRE(Run("import --json " + store + " " + dir.str("b.safetensors"), &o) == 0);
  const std::string bad_id = nlohmann::json::parse(o)["id"];
  BOOST_REQUIRE(Run("compact " + store, &o) == 0);
  // The newest blob file holds only block "bad": flip a byte in its middle.
  std::filesystem::path newest;
  for (auto& e : std::filesystem::directory_iterator(store))
    if (e.path().extension() == ".blob" && (newest.empty() || e.path().filename() > newest.filename()))
      newest = e.path();
  BOOST_REQUIRE(!newest.empty());
  testing::FlipMiddleByte(newest, 0x20);
  BOOST_TEST(Run("verify " + store, &o) == 3);
  BOOST_TEST(o.find("BAD block " + bad_id) != std::string::npos, o);
  BOOST_TEST(o.find("DAMAGED") != std::string::npos, o);
  BOOST_REQUIRE(Run("verify --json " + store, &o) == 3);
  auto v = nlohmann::json::parse(o);
  BOOST_REQUIRE(v["bad_blocks"].size() == 1u);
  BOOST_TEST(v["bad_blocks"][0]["id"].get<std::string>() == bad_id);
  BOOST_TEST(Run("export " + store + " bad " + dir.str("x.safetensors"), &o) == 1);
  BOOST_TEST(o.find("Corruption") != std::string::npos, o);
  BOOST_TEST(o.find(bad_id) != std::string::npos, o);
  BOOST_TEST(!std::filesystem::exists(dir.str("x.safetensors")));
  BOOST_TEST(Run("export " + store + " good " + dir.str("y.safetensors"), &o) == 0, o);
}

BOOST_AUTO_TEST_CASE(read_commands_work_beside_a_live_writer) {
  TempDir dir;
  const std::string store = dir.str("store");
  StoreOptions so;
  auto writer = BlockStore::Open(store, so);
  BOOST_REQUIRE(writer.ok());
  auto b = testing::MakeTestBlock(testing::TestModel(1), 2, 10, 1, 16, DType::kBF16, 5, "live");
  BOOST_REQUIRE((*writer)->Put(b.put).ok());
  std::string o;
  BOOST_REQUIRE_MESSAGE(Run("ls --json " + store, &o) == 0, o);
  BOOST_TEST(nlohmann::json::parse(o).size() == 1u);
  BOOST_REQUIRE_MESSAGE(Run("verify " + store, &o) == 0, o);
  BOOST_REQUIRE_MESSAGE(Run("export " + store + " live " + dir.str("l.safetensors"), &o) == 0, o);
  // A second writer is refused with a clear message.
  BOOST_TEST(Run("rm " + store + " live", &o) == 1);
  BOOST_TEST(o.find("another process") != std::string::npos, o);
}

BOOST_AUTO_TEST_SUITE_END()
