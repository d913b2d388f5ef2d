#include <boost/test/unit_test.hpp>
#include <cstring>

#include "db/safetensors.h"
#include "tests/test_util.h"

using namespace blockkv;

BOOST_AUTO_TEST_SUITE(safetensors)

BOOST_AUTO_TEST_CASE(write_then_read) {
  testing::TempDir dir;
  std::vector<float> a = {1.f, -2.5f, 3.25f, 0.f, 7.f, 8.f};
  std::vector<uint16_t> b = {0x3f80, 0xbf80, 0x4000};
  std::vector<TensorToWrite> ts = {{"a", DType::kF32, {2, 3}, a.data()},
                                   {"b.weight", DType::kBF16, {3}, b.data()}};
  BOOST_REQUIRE(WriteSafetensors(dir.str("x.safetensors"), ts, {{"k", "v"}}).ok());
  auto r = SafetensorsReader::Open(dir.str("x.safetensors"));
  BOOST_REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  BOOST_TEST((*r)->metadata().at("k") == "v");
  auto ta = (*r)->Get("a");
  BOOST_REQUIRE(ta.ok());
  BOOST_TEST(((*ta)->shape == std::vector<int64_t>{2, 3}));
  BOOST_TEST(std::memcmp((*ta)->data, a.data(), 24) == 0);
  auto tb = (*r)->Get("b.weight");
  BOOST_TEST(((*tb)->dtype == DType::kBF16));
  BOOST_TEST(std::memcmp((*tb)->data, b.data(), 6) == 0);
  BOOST_TEST((*r)->Get("missing").status().IsNotFound());
}

BOOST_AUTO_TEST_CASE(malformed_files_are_refused) {
  auto parse = [](std::string header, size_t data_bytes) {
    std::string buf(8, '\0');
    uint64_t n = header.size();
    std::memcpy(buf.data(), &n, 8);
    buf += header;
    buf.append(data_bytes, '\0');
    return SafetensorsReader::FromBuffer(buf, "t").status();
  };
  BOOST_TEST(parse(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8).ok());
  BOOST_TEST(parse(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4).IsCorruption());
  BOOST_TEST(parse(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8).IsCorruption());
  BOOST_TEST(parse(R"({"a":{"dtype":"Q9","shape":[2],"data_offsets":[0,8]}})", 8).IsCorruption());
  BOOST_TEST(parse(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8).IsCorruption());
  BOOST_TEST(parse(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8).IsCorruption());
  BOOST_TEST(parse(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                   R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12).IsCorruption());
  BOOST_TEST(parse(R"({"a": not json)", 0).IsCorruption());
  BOOST_TEST(parse(R"([1,2])", 0).IsCorruption());
  BOOST_TEST(SafetensorsReader::FromBuffer("abc", "t").status().IsCorruption());
  std::string huge(8, '\xff');
  BOOST_TEST(SafetensorsReader::FromBuffer(huge, "t").status().IsCorruption());
  BOOST_TEST(SafetensorsReader::Open("/nonexistent/x.safetensors").status().IsIOError());
}

BOOST_AUTO_TEST_SUITE_END()
