// The tokenizer on small hand-made tokenizer.json files whose right answers can be worked out by hand:
// BPE merge order, ignore_merges, byte fallback and unknown tokens, Metaspace, added tokens and their
// options, post-processors, decoders, streaming decode, the batch API, and every kind of bad input.
// tests/tokenizer_equality_test.cc checks real files against Hugging Face `tokenizers`.
#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>

#include "attention/model/bpe.h"
#include "attention/model/tokenizer.h"
#include "attention/model/utf8.h"

using namespace blockkv;
using nlohmann::json;

namespace {

std::string Mapped(std::string_view raw) {
  std::string s;
  for (char c : raw) utf8::Append(ByteToChar(static_cast<uint8_t>(c)), &s);
  return s;
}

// A byte-level BPE over the 256 byte characters (ids 0..255 in byte order) and the given merges; each
// merge's result gets the next id. Pre-tokenized with the Llama 3 pattern, as real byte-level files are.
json ByteLevelTokenizer(const std::vector<std::pair<std::string, std::string>>& merges, bool as_pairs,
                        bool ignore_merges = false) {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[Mapped(std::string(1, static_cast<char>(b)))] = b;
  json m = json::array();
  int next = 256;
  for (const auto& [a, b] : merges) {
    const std::string ma = Mapped(a), mb = Mapped(b);
    if (!vocab.contains(ma + mb)) vocab[ma + mb] = next++;
    if (as_pairs)
      m.push_back({ma, mb});
    else
      m.push_back(ma + " " + mb);
  }
  return {
      {"version", "1.0"},
      {"added_tokens", json::array()},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"},
           {"pattern",
            {{"Regex",
              R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"}}},
           {"behavior", "Isolated"},
           {"invert", false}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}}}}},
      {"post_processor", nullptr},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"fuse_unk", false},
        {"byte_fallback", false}, {"ignore_merges", ignore_merges}, {"vocab", vocab}, {"merges", m}}}};
}

std::unique_ptr<Tokenizer> Make(const json& j, const json& config = nullptr) {
  auto t = Tokenizer::FromJson(j.dump(), config.is_null() ? "" : config.dump());
  BOOST_REQUIRE_MESSAGE(t.ok(), t.status().ToString());
  return std::move(t).value();
}

std::vector<int32_t> Enc(const Tokenizer& t, std::string_view text, bool special = true) {
  auto r = t.Encode(text, special);
  BOOST_REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  return *r;
}

std::string Dec(const Tokenizer& t, const std::vector<int32_t>& ids, bool skip = false) {
  auto r = t.Decode(ids, skip);
  BOOST_REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  return *r;
}

using Ids = std::vector<int32_t>;

// A SentencePiece-style BPE (Mistral's shape): characters, "▁" for spaces, byte fallback.
json MetaspaceTokenizer(const json& pre_tokenizer, bool with_bytes, bool fuse_unk) {
  json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
  int next = 3;
  if (with_bytes)
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof(name), "<0x%02X>", b);
      vocab[name] = next++;
    }
  for (const char* s : {"\u2581", "h", "i", "a", "b", "\u2581h", "\u2581hi", "hi"}) vocab[s] = next++;
  return {{"added_tokens",
           {{{"id", 0}, {"content", "<unk>"}, {"special", true}, {"normalized", false}},
            {{"id", 1}, {"content", "<s>"}, {"special", true}, {"normalized", false}},
            {{"id", 2}, {"content", "</s>"}, {"special", true}, {"normalized", false}}}},
          {"normalizer", nullptr},
          {"pre_tokenizer", pre_tokenizer},
          {"post_processor",
           {{"type", "TemplateProcessing"},
            {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
            {"pair", json::array()},
            {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}}},
          {"decoder",
           {{"type", "Sequence"},
            {"decoders",
             {{{"type", "Replace"}, {"pattern", {{"String", "\u2581"}}}, {"content", " "}},
              {{"type", "ByteFallback"}},
              {{"type", "Fuse"}},
              {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}},
          {"model",
           {{"type", "BPE"}, {"unk_token", "<unk>"}, {"fuse_unk", fuse_unk}, {"byte_fallback", with_bytes},
            {"vocab", vocab},
            {"merges", {"\u2581 h", "\u2581h i", "h i"}}}}};
}

int32_t Id(const Tokenizer& t, const std::string& token) {
  const int32_t id = t.TokenToId(token);
  BOOST_REQUIRE_MESSAGE(id >= 0, "no token " + token);
  return id;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(tokenizer)

// Merges apply lowest rank first, leftmost on ties; "a b" and ["a", "b"] merges are the same.
BOOST_AUTO_TEST_CASE(bpe_merge_order) {
  const std::vector<std::pair<std::string, std::string>> merges = {
      {"a", "a"}, {"b", "c"}, {"ab", "c"}, {"a", "b"}, {"aa", "bc"}};
  for (bool as_pairs : {false, true}) {
    auto t = Make(ByteLevelTokenizer(merges, as_pairs));
    // "aaa": a+a at position 0 first (leftmost of equal rank), the third a stays alone.
    BOOST_TEST(Enc(*t, "aaa") == (Ids{Id(*t, "aa"), 'a'}), boost::test_tools::per_element());
    // "abc": "b c" (rank 1) beats "a b" (rank 3), then "a bc" is not a merge: a, bc.
    BOOST_TEST(Enc(*t, "abc") == (Ids{'a', Id(*t, "bc")}), boost::test_tools::per_element());
    // "aabc": a+a (0), b+c (1), then aa+bc (4).
    BOOST_TEST(Enc(*t, "aabc") == (Ids{Id(*t, "aabc")}), boost::test_tools::per_element());
  }
}

// ignore_merges: a pre-token found whole in the vocabulary is one token even if no merge path builds it.
BOOST_AUTO_TEST_CASE(bpe_ignore_merges) {
  json j = ByteLevelTokenizer({{"x", "y"}}, false);
  j["model"]["vocab"][Mapped("xyz")] = 900;
  auto merging = Make(j);
  BOOST_TEST(Enc(*merging, "xyz") == (Ids{Id(*merging, "xy"), 'z'}), boost::test_tools::per_element());
  j["model"]["ignore_merges"] = true;
  auto whole = Make(j);
  BOOST_TEST(Enc(*whole, "xyz") == (Ids{900}), boost::test_tools::per_element());
}

// Byte-level: every byte has a token, so any text (emoji, CJK, control characters) encodes and decodes
// back exactly; the pre-tokenizer splits words, numbers in threes and whitespace runs.
BOOST_AUTO_TEST_CASE(byte_level_round_trip) {
  auto t = Make(ByteLevelTokenizer({{" ", "w"}, {"o", "r"}}, false));
  const std::string text = "hello world 1234567 \t\n\n  日本語 👨‍👩‍👧 \x01\x7f end  ";
  const Ids ids = Enc(*t, text);
  BOOST_TEST(Dec(*t, ids) == text);
  // " world" uses the " w" merge (a leading space joins the word, as in GPT-2's scheme).
  const Ids w = Enc(*t, " wor");
  BOOST_TEST(w == (Ids{Id(*t, Mapped(" w")), Id(*t, "or")}), boost::test_tools::per_element());
  // Digits go in groups of at most three.
  BOOST_TEST(Enc(*t, "12345").size() == 5u);
  BOOST_TEST(Dec(*t, Enc(*t, "12345")) == "12345");
}

// The ByteLevel decoder reads bytes lossily, as Rust's from_utf8_lossy: maximal invalid subparts
// become one U+FFFD each.
BOOST_AUTO_TEST_CASE(byte_level_decode_invalid_utf8) {
  auto t = Make(ByteLevelTokenizer({}, false));
  BOOST_TEST(Dec(*t, {0xF0, 0x9F, 0x98, 'A'}) == "\xEF\xBF\xBD" "A");
  BOOST_TEST(Dec(*t, {0xC0, 0x80}) == "\xEF\xBF\xBD\xEF\xBF\xBD");
  BOOST_TEST(Dec(*t, {0xED, 0xA0, 0x80}) == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  BOOST_TEST(Dec(*t, {0xF0, 0x9F, 0x98, 0x80}) == "\xF0\x9F\x98\x80");
}

// Metaspace with prepend_scheme "first": "▁" only at the start of the input, not after a special token.
BOOST_AUTO_TEST_CASE(metaspace_prepend_scheme) {
  const json first = {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "first"}, {"split", false}};
  auto t = Make(MetaspaceTokenizer(first, true, false));
  const int32_t hi = Id(*t, "\u2581hi"), sp = Id(*t, "\u2581");
  BOOST_TEST(Enc(*t, "hi") == (Ids{1, hi}), boost::test_tools::per_element());
  BOOST_TEST(Enc(*t, "hi hi", false) == (Ids{hi, hi}), boost::test_tools::per_element());
  // After <s> the piece does not start the input: no ▁ is prepended, so "hi" merges without it.
  BOOST_TEST(Enc(*t, "<s>hi", false) == (Ids{1, Id(*t, "hi")}), boost::test_tools::per_element());
  const json always = {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "always"}, {"split", true}};
  auto a = Make(MetaspaceTokenizer(always, true, false));
  BOOST_TEST(Enc(*a, "<s>hi", false) == (Ids{1, hi}), boost::test_tools::per_element());
  // split: "▁▁hi" becomes "▁" and "▁hi".
  BOOST_TEST(Enc(*a, "  hi", false) == (Ids{sp, hi}), boost::test_tools::per_element());
  const json never = {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "never"}, {"split", false}};
  auto n = Make(MetaspaceTokenizer(never, true, false));
  BOOST_TEST(Enc(*n, "hi", false) == (Ids{Id(*n, "hi")}), boost::test_tools::per_element());
  // Decoding drops the leading space (Strip) and spells bytes.
  BOOST_TEST(Dec(*t, Enc(*t, "hi hi")) == "<s> hi hi");
  BOOST_TEST(Dec(*t, Enc(*t, "hi hi"), true) == "hi hi");
}

// Byte fallback: a character not in the vocabulary becomes its UTF-8 bytes as <0xXX> tokens; without
// byte tokens it is <unk>, consecutive unknowns fused when fuse_unk is set.
BOOST_AUTO_TEST_CASE(byte_fallback_and_unk) {
  const json pre = {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "first"}, {"split", false}};
  auto t = Make(MetaspaceTokenizer(pre, true, false));
  const Ids ids = Enc(*t, "hé", false);
  // ▁h merges; é is C3 A9.
  BOOST_TEST(ids == (Ids{Id(*t, "\u2581h"), Id(*t, "<0xC3>"), Id(*t, "<0xA9>")}), boost::test_tools::per_element());
  BOOST_TEST(Dec(*t, ids) == "hé");
  // A lone continuation byte decodes as U+FFFD per byte.
  BOOST_TEST(Dec(*t, {Id(*t, "<0xA9>"), Id(*t, "h")}) == "\xEF\xBF\xBD" "h");

  auto fused = Make(MetaspaceTokenizer(pre, false, true));
  BOOST_TEST(Enc(*fused, "héé", false) == (Ids{Id(*fused, "\u2581h"), 0}), boost::test_tools::per_element());
  auto unfused = Make(MetaspaceTokenizer(pre, false, false));
  BOOST_TEST(Enc(*unfused, "héé", false) == (Ids{Id(*unfused, "\u2581h"), 0, 0}), boost::test_tools::per_element());
}

// Added tokens are matched before anything else, longest first; lstrip/rstrip take the whitespace
// around them; single_word refuses matches inside words; a normalized token matches after normalization.
BOOST_AUTO_TEST_CASE(added_tokens_options) {
  json j = ByteLevelTokenizer({}, false);
  j["added_tokens"] = {
      {{"id", 300}, {"content", "<|a|>"}, {"special", true}, {"normalized", false}},
      {{"id", 301}, {"content", "<|a|>x"}, {"special", true}, {"normalized", false}},
      {{"id", 302}, {"content", "<L>"}, {"special", false}, {"normalized", false}, {"lstrip", true}, {"rstrip", true}},
      {{"id", 303}, {"content", "cat"}, {"special", false}, {"normalized", false}, {"single_word", true}}};
  auto t = Make(j);
  BOOST_TEST(Enc(*t, "q<|a|>q") == (Ids{'q', 300, 'q'}), boost::test_tools::per_element());
  BOOST_TEST(Enc(*t, "<|a|>xy") == (Ids{301, 'y'}), boost::test_tools::per_element());  // longest wins
  BOOST_TEST(Enc(*t, "q  <L>\t r") == (Ids{'q', 302, 'r'}), boost::test_tools::per_element());
  const Ids cat_word = Enc(*t, "a cat.");
  BOOST_TEST(std::count(cat_word.begin(), cat_word.end(), 303) == 1);
  const Ids in_word = Enc(*t, "concatenate");
  BOOST_TEST(std::count(in_word.begin(), in_word.end(), 303) == 0);
  BOOST_TEST(Dec(*t, in_word) == "concatenate");
  BOOST_TEST(Dec(*t, {'q', 300, 'q'}) == "q<|a|>q");
  BOOST_TEST(Dec(*t, {'q', 300, 'q'}, true) == "qq");
  BOOST_TEST(Dec(*t, {'q', 302, 'q'}, true) == "q<L>q");  // not special: kept
  BOOST_TEST(t->IsSpecial(300));
  BOOST_TEST(!t->IsSpecial(302));

  // normalized: true matches the normalized form (here, after Prepend adds "#").
  json k = MetaspaceTokenizer({{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "first"}, {"split", false}}, true, false);
  k["normalizer"] = {{"type", "Replace"}, {"pattern", {{"String", "Z"}}}, {"content", "h"}};
  k["added_tokens"].push_back({{"id", 999}, {"content", "hZ"}, {"special", false}, {"normalized", true}});
  auto n = Make(k);
  // "hZ" normalizes to "hh"; the token's normalized form is "hh" too, so it matches.
  BOOST_TEST(Enc(*n, "hZ", false) == (Ids{999}), boost::test_tools::per_element());
  BOOST_TEST(Enc(*n, "hh", false) == (Ids{999}), boost::test_tools::per_element());
}

// Post-processors: BOS exactly where the file says, nothing without add_special_tokens.
BOOST_AUTO_TEST_CASE(post_processors) {
  json j = ByteLevelTokenizer({}, false);
  j["added_tokens"] = {{{"id", 300}, {"content", "<bos>"}, {"special", true}, {"normalized", false}},
                       {{"id", 301}, {"content", "<eos>"}, {"special", true}, {"normalized", false}}};
  j["post_processor"] = {
      {"type", "Sequence"},
      {"processors",
       {{{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}, {"use_regex", true}},
        {{"type", "TemplateProcessing"},
         {"single",
          {{{"SpecialToken", {{"id", "<bos>"}, {"type_id", 0}}}},
           {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
           {{"SpecialToken", {{"id", "<eos>"}, {"type_id", 0}}}}}},
         {"special_tokens",
          {{"<bos>", {{"id", "<bos>"}, {"ids", {300}}, {"tokens", {"<bos>"}}}},
           {"<eos>", {{"id", "<eos>"}, {"ids", {301}}, {"tokens", {"<eos>"}}}}}}}}}};
  auto t = Make(j);
  BOOST_TEST(Enc(*t, "hi") == (Ids{300, 'h', 'i', 301}), boost::test_tools::per_element());
  BOOST_TEST(Enc(*t, "hi", false) == (Ids{'h', 'i'}), boost::test_tools::per_element());
  BOOST_TEST(Enc(*t, "") == (Ids{300, 301}), boost::test_tools::per_element());
}

// tokenizer_config.json: special tokens as strings or {"content"}, the chat template, stop ids.
BOOST_AUTO_TEST_CASE(config_and_stop_ids) {
  json j = ByteLevelTokenizer({}, false);
  j["added_tokens"] = {{{"id", 300}, {"content", "<bos>"}, {"special", true}, {"normalized", false}},
                       {{"id", 301}, {"content", "<eos>"}, {"special", true}, {"normalized", false}},
                       {{"id", 302}, {"content", "<eot>"}, {"special", true}, {"normalized", false}}};
  const json config = {{"bos_token", {{"content", "<bos>"}}}, {"eos_token", "<eos>"}, {"chat_template", "{{ bos_token }}"}};
  auto t = Tokenizer::FromJson(j.dump(), config.dump(), R"({"eos_token_id": [301, 302]})");
  BOOST_REQUIRE(t.ok());
  const TokenizerConfig& c = (*t)->config();
  BOOST_TEST(c.bos_token == "<bos>");
  BOOST_TEST(c.chat_template == "{{ bos_token }}");
  BOOST_TEST(c.template_variables["eos_token"] == "<eos>");
  BOOST_TEST(c.stop_ids == (Ids{301, 302}), boost::test_tools::per_element());
}

// Streaming decode never releases half a character, and what it releases adds up to the full decode.
BOOST_AUTO_TEST_CASE(text_stream) {
  const json pre = {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "first"}, {"split", false}};
  for (int kind = 0; kind < 2; ++kind) {
    auto t = kind == 0 ? Make(ByteLevelTokenizer({}, false)) : Make(MetaspaceTokenizer(pre, true, false));
    const std::string text = "hi 日本 👨‍👩‍👧 hi";
    const Ids ids = Enc(*t, text, false);
    TextStream stream(t.get());
    std::string out;
    for (int32_t id : ids) {
      const size_t before = out.size();
      BOOST_REQUIRE(stream.Push(id, &out).ok());
      BOOST_TEST(utf8::IsValid(std::string_view(out).substr(before)));
    }
    BOOST_REQUIRE(stream.Finish(&out).ok());
    BOOST_TEST(out == Dec(*t, ids, true));
    BOOST_TEST(out == text);
  }
}

// The batch API gives each text's ids, on any number of threads, and names a failing text.
BOOST_AUTO_TEST_CASE(encode_batch) {
  auto t = Make(ByteLevelTokenizer({{"a", "b"}, {"ab", "c"}}, false));
  std::vector<std::string> texts;
  for (int i = 0; i < 500; ++i) texts.push_back(std::string(i % 37, 'a') + " abc " + std::to_string(i * 7919));
  for (int threads : {1, 2, 0}) {
    std::vector<std::vector<int32_t>> out;
    BOOST_REQUIRE(t->EncodeBatch(texts, true, &out, threads).ok());
    BOOST_REQUIRE(out.size() == texts.size());
    for (size_t i = 0; i < texts.size(); ++i) BOOST_TEST(out[i] == Enc(*t, texts[i]), boost::test_tools::per_element());
  }
  texts[123] = "bad \xFF byte";
  std::vector<std::vector<int32_t>> out;
  const Status s = t->EncodeBatch(texts, true, &out, 2);
  BOOST_TEST(s.IsInvalidArgument());
  BOOST_TEST(s.message().find("text 123") != std::string::npos, s.message());
}

// Bad input: invalid UTF-8 names its offset; a malformed file is one line naming the problem; an
// unsupported component is NotSupported naming it.
BOOST_AUTO_TEST_CASE(errors) {
  auto t = Make(ByteLevelTokenizer({}, false));
  auto bad = t->Encode("ok\xC3(");
  BOOST_TEST(bad.status().IsInvalidArgument());
  BOOST_TEST(bad.status().message().find("byte 2") != std::string::npos, bad.status().message());

  BOOST_TEST(Tokenizer::FromJson("{not json").status().IsInvalidArgument());
  BOOST_TEST(Tokenizer::FromJson("[]").status().IsInvalidArgument());
  const auto expect = [](json j, const std::string& what, bool not_supported) {
    auto r = Tokenizer::FromJson(j.dump());
    BOOST_TEST_CONTEXT(what) {
      BOOST_TEST(!r.ok());
      if (r.ok()) return;
      BOOST_TEST(r.status().IsNotSupported() == not_supported, r.status().ToString());
      BOOST_TEST(r.status().message().find(what) != std::string::npos, r.status().ToString());
      BOOST_TEST(r.status().message().find('\n') == std::string::npos);
    }
  };
  json j = ByteLevelTokenizer({}, false);
  json k = j;
  k["normalizer"] = {{"type", "Lowercase"}};
  expect(k, "Lowercase", true);
  k = j;
  k["pre_tokenizer"] = {{"type", "Whitespace"}};
  expect(k, "Whitespace", true);
  k = j;
  k["decoder"] = {{"type", "WordPiece"}};
  expect(k, "WordPiece", true);
  k = j;
  k["model"]["type"] = "Unigram";
  expect(k, "Unigram", true);
  k = j;
  k["post_processor"] = {{"type", "Mystery"}};
  expect(k, "Mystery", true);
  k = j;
  k["model"]["merges"] = {"a"};
  expect(k, "merges[0]", false);
  k = j;
  k["model"]["merges"] = {Mapped("q") + " " + Mapped("q")};  // "qq" is not in the vocabulary
  expect(k, "merges[0]", false);
  k = j;
  k["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
  expect(k, "(unclosed", false);
  k = j;
  k["model"]["vocab"] = {{"a", "zero"}};
  expect(k, "vocab", false);
  k = j;
  k.erase("model");
  expect(k, "model", false);
}

// utf8 helpers against the cases Rust's from_utf8_lossy documents.
BOOST_AUTO_TEST_CASE(utf8_lossy) {
  const auto lossy = [](std::string_view s) {
    std::string out;
    utf8::AppendLossy(s, &out);
    return out;
  };
  const std::string r = "\xEF\xBF\xBD";
  BOOST_TEST(lossy("Hello \xF0\x90\x80World") == "Hello " + r + "World");
  BOOST_TEST(lossy("\xF4\x90\x80\x80") == r + r + r + r);  // above U+10FFFF: each byte
  BOOST_TEST(lossy("\xE1\x80") == r);                      // truncated: one replacement
  BOOST_TEST(utf8::FindInvalid("ab\xC3\xA9" "c") == std::string_view::npos);
  BOOST_TEST(utf8::FindInvalid("abc\xC3") == 3u);
  BOOST_TEST(utf8::FindInvalid("0123456789\xED\xA0\x80") == 10u);  // a surrogate
}

BOOST_AUTO_TEST_SUITE_END()
