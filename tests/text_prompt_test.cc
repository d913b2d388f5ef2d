// Text prompts end to end on a synthetic model with its tokenizer: where the block boundaries fall in
// each prompt format, passages by id against passages by text, prompt and corpus files in every shape
// and their errors, and the CLI (precompute a text corpus, answer by passage id, stream text out).
#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <nlohmann/json.hpp>

#include "attention/model/synthetic_tokenizer.h"
#include "attention/model/tokenizer.h"
#include "attention/prompt_file.h"
#include "attention/synthetic_model.h"
#include "attention/text_prompt.h"
#include "tests/test_util.h"

using namespace blockkv;
using namespace blockkv::testing;

namespace {

int Run(const std::string& args, std::string* out) { return RunCommand(CliPath() + " " + args, out); }

std::string Decode(const Tokenizer& t, const std::vector<int32_t>& ids) {
  auto s = t.Decode(ids, false);
  BOOST_REQUIRE(s.ok());
  return *s;
}

// A tiny model directory with its tokenizer, and a store holding the demo corpus's passages by text.
struct TextFixture {
  TempDir dir;
  std::string model = dir.str("model"), store = dir.str("store"), corpus = dir.str("corpus.jsonl");
  TextFixture() {
    std::string o;
    BOOST_REQUIRE_MESSAGE(Run("make-model --preset tiny --seed 3 --dtype f32 --out " + model, &o) == 0, o);
    std::ofstream(corpus) << DemoCorpusJsonl();
  }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(text_prompt)

// The chat format cuts the rendered template where the user message goes: block 0 is what comes
// before (BOS, system turn, user header), then one block per passage, then the question with the end of
// the turn and the assistant header.
BOOST_AUTO_TEST_CASE(chat_and_paper_block_boundaries) {
  TempDir dir;
  BOOST_REQUIRE(WriteSyntheticTokenizer(SyntheticTokenizerStyle::kLlama3, 512, -1, dir.str()).ok());
  auto tok = Tokenizer::Load(dir.path());
  BOOST_REQUIRE_MESSAGE(tok.ok(), tok.status().ToString());
  const Tokenizer& t = **tok;
  TextPrompt p;
  p.system = "Answer briefly.";
  p.question = "How tall is it?";
  p.passages = {PassageRef{"a", "Lighthouse", "It is 31 meters tall."}, PassageRef{"", "", "Built in 1789."}};
  auto chat = BuildTextRequest(p, t, nullptr, ModelFingerprint{});
  BOOST_REQUIRE_MESSAGE(chat.ok(), chat.status().ToString());
  BOOST_REQUIRE(chat->blocks.size() == 3u);
  BOOST_TEST(Decode(t, chat->blocks[0].tokens) ==
             "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nAnswer briefly.<|eot_id|>"
             "<|start_header_id|>user<|end_header_id|>\n\n");
  BOOST_TEST(Decode(t, chat->blocks[1].tokens) == "- Title: Lighthouse\nIt is 31 meters tall.\n");
  BOOST_TEST(chat->blocks[1].name == "a");
  BOOST_TEST(Decode(t, chat->blocks[2].tokens) == "Built in 1789.\n");  // no title: no title line
  BOOST_TEST(Decode(t, chat->final_tokens) ==
             "How tall is it?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
  // Block 0 starts with exactly one BOS, from the template (no post-processor BOS on the pieces).
  BOOST_TEST(std::count(chat->blocks[0].tokens.begin(), chat->blocks[0].tokens.end(), t.TokenToId("<|begin_of_text|>")) == 1);

  TextPromptOptions paper;
  paper.format = PromptFormatKind::kPaper;
  p.system.clear();
  auto pr = BuildTextRequest(p, t, nullptr, ModelFingerprint{}, paper);
  BOOST_REQUIRE(pr.ok());
  BOOST_TEST(Decode(t, pr->blocks[0].tokens) == "<|user|>\n" + std::string(kPaperSystemPrompt) + "\n\n");
  BOOST_TEST(Decode(t, pr->final_tokens) == "How tall is it?\n<|assistant|>\n");
  // The passage blocks do not depend on the format: they are what precompute stored.
  BOOST_TEST(pr->blocks[1].tokens == chat->blocks[1].tokens, boost::test_tools::per_element());

  // A custom passage template.
  paper.passage_template = "[{id}] {title}: {text} {{literal}}";
  auto custom = BuildTextRequest(p, t, nullptr, ModelFingerprint{}, paper);
  BOOST_REQUIRE(custom.ok());
  BOOST_TEST(Decode(t, custom->blocks[1].tokens) == "[a] Lighthouse: It is 31 meters tall. {literal}");
}

// Every family's chat template renders and is cut, with the markers of that family.
BOOST_AUTO_TEST_CASE(chat_format_in_each_family) {
  for (auto style : {SyntheticTokenizerStyle::kLlama3, SyntheticTokenizerStyle::kQwen2, SyntheticTokenizerStyle::kLlama2}) {
    TempDir dir;
    BOOST_REQUIRE(WriteSyntheticTokenizer(style, 512, -1, dir.str()).ok());
    auto tok = Tokenizer::Load(dir.path());
    BOOST_REQUIRE_MESSAGE(tok.ok(), tok.status().ToString());
    TextPrompt p;
    p.system = "Be brief.";
    p.question = "Why?";
    p.passages = {PassageRef{"", "", "Because."}};
    auto r = BuildTextRequest(p, **tok, nullptr, ModelFingerprint{});
    BOOST_REQUIRE_MESSAGE(r.ok(), r.status().ToString());
    const std::string pre = Decode(**tok, r->blocks[0].tokens), fin = Decode(**tok, r->final_tokens);
    BOOST_TEST_INFO("style " << int(style) << ": " << pre << " | " << fin);
    BOOST_TEST(pre.find("Be brief.") != std::string::npos);
    BOOST_TEST(fin.find("Why?") == 0u);
    if (style == SyntheticTokenizerStyle::kQwen2) {
      BOOST_TEST(pre == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n");
      BOOST_TEST(fin == "Why?<|im_end|>\n<|im_start|>assistant\n");
    }
    if (style == SyntheticTokenizerStyle::kLlama2) {
      BOOST_TEST(pre == "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n");
      BOOST_TEST(fin == "Why? [/INST]");
    }
  }
}

BOOST_AUTO_TEST_CASE(prompt_files_in_every_shape) {
  auto text = ParsePrompt(R"({"question": "Q?", "passages": ["doc-1", 17, {"text": "T", "title": "Ti", "id": "x"}],
                              "system": "S", "format": "paper"})", "p.json");
  BOOST_REQUIRE_MESSAGE(text.ok(), text.status().ToString());
  BOOST_TEST((text->kind == PromptFile::Kind::kText));
  BOOST_TEST(text->text.passages.size() == 3u);
  BOOST_TEST(text->text.passages[0].by_id());
  BOOST_TEST(text->text.passages[1].id == "17");
  BOOST_TEST(!text->text.passages[2].by_id());
  BOOST_TEST((text->text.format == PromptFormatKind::kPaper));

  auto seed = ParsePrompt(R"({"prompt": "whole", "blocks": ["a ", "b ", "q"], "response": "r"})", "s.jsonl");
  BOOST_REQUIRE(seed.ok());
  BOOST_TEST((seed->kind == PromptFile::Kind::kTextBlocks));
  BOOST_TEST(seed->text_blocks.blocks.size() == 3u);

  auto many = ParsePrompts("{\"question\": \"a\"}\n\n{\"blocks\": [[1], [2]]}\n", "m.jsonl");
  BOOST_REQUIRE_MESSAGE(many.ok(), many.status().ToString());
  BOOST_TEST(many->size() == 2u);
  BOOST_TEST((*many)[1].label == "m.jsonl:3");

  const std::pair<const char*, const char*> bad[] = {
      {R"({"question": ""})", "question"},
      {R"({"question": 3})", "question"},
      {R"({"question": "q", "passages": "doc"})", "passages"},
      {R"({"question": "q", "passages": [{"title": "t"}]})", "passages[0]"},
      {R"({"question": "q", "passages": [{"text": ""}]})", "passages[0].text"},
      {R"({"question": "q", "passages": [[1]]})", "passages[0]"},
      {R"({"question": "q", "format": "html"})", "format"},
      {R"({"question": "q", "system": 1})", "system"},
      {R"({"blocks": ["a", 1]})", "blocks[1]"},
      {"{\"question\": \"\xff\"}", "UTF-8"},
  };
  for (const auto& [json, what] : bad) {
    auto r = ParsePrompt(json, "p.json");
    BOOST_TEST_INFO(json);
    BOOST_TEST(r.status().IsInvalidArgument());
    BOOST_TEST(r.status().message().find(what) != std::string::npos, r.status().message());
  }
  auto bad_line = ParsePrompts("{\"question\": \"a\"}\n{\"question\": 5}\n", "m.jsonl");
  BOOST_TEST(bad_line.status().message().find("m.jsonl:2") == 0u, bad_line.status().message());
}

BOOST_AUTO_TEST_CASE(corpus_lines) {
  auto c = ParseCorpus("{\"id\": \"a\", \"text\": \"x\", \"title\": \"t\"}\n{\"id\": 7, \"tokens\": [3]}\n", "c.jsonl");
  BOOST_REQUIRE(c.ok());
  BOOST_TEST((*c)[0].is_text());
  BOOST_TEST((*c)[0].title == "t");
  BOOST_TEST(!(*c)[1].is_text());
  const std::pair<const char*, const char*> bad[] = {
      {"{\"text\": \"x\"}", "id"},
      {"{\"id\": \"a\", \"text\": \"x\", \"tokens\": [1]}", "exactly one"},
      {"{\"id\": \"a\", \"text\": \"\"}", "text is empty"},
      {"{\"id\": \"a\", \"text\": 5}", "\"text\""},
      {"{\"id\": \"a\", \"text\": \"ok\", \"title\": [1]}", "\"title\""},
      {"{\"id\": \"a\", \"text\": \"bad \xC3\x28\"}", "invalid UTF-8 at byte"},
      {"not json", "not valid JSON"},
  };
  for (const auto& [line, what] : bad) {
    auto lines = ParseCorpusLines(std::string("{\"id\": \"ok\", \"text\": \"fine\"}\n") + line + "\n", "c.jsonl");
    BOOST_REQUIRE(lines.size() == 2u);
    BOOST_TEST(lines[0].entry.ok());
    BOOST_TEST_INFO(line);
    BOOST_TEST(!lines[1].entry.ok());
    BOOST_TEST(lines[1].entry.status().message().find("c.jsonl:2") == 0u, lines[1].entry.status().message());
    BOOST_TEST(lines[1].entry.status().message().find(what) != std::string::npos, lines[1].entry.status().message());
  }
}

// The CLI on text: precompute the shipped corpus, answer by passage id (streamed text), by text, from a
// seed-format prompt and from a file of several prompts; ids that are not stored are errors naming them.
BOOST_AUTO_TEST_CASE(cli_text_end_to_end) {
  TextFixture f;
  std::string o;
  BOOST_REQUIRE_MESSAGE(Run("precompute --json --model " + f.model + " --store " + f.store + " --corpus " + f.corpus, &o) == 0, o);
  auto pj = nlohmann::json::parse(o);
  BOOST_TEST(pj["encoded"].get<int>() == 12);
  BOOST_TEST(pj["tokens"].get<int>() > 12 * 20);

  const std::string base = "run --model " + f.model + " --store " + f.store;
  BOOST_REQUIRE_MESSAGE(Run(base + " --json --max-new-tokens 6 --question 'How tall is the lighthouse?' --passage harbor-002 "
                                   "--passage harbor-011 --logits-out " + f.dir.str("by_id.npy"), &o) == 0, o);
  auto j = nlohmann::json::parse(o);
  BOOST_TEST(j.contains("text"));
  BOOST_TEST(j["blocks"].size() == 3u);  // the preamble and two passages
  BOOST_TEST(j["blocks"][1]["name"].get<std::string>() == "harbor-002");
  BOOST_TEST(j["blocks"][1]["hit"].get<bool>());
  BOOST_TEST(j["blocks"][2]["hit"].get<bool>());
  BOOST_TEST(j["timing"]["generated_tokens"].get<int>() <= 6);

  // The same passages given as text give the same blocks, so the same logits, bit for bit.
  std::string line2, line11;
  {
    std::ifstream in(f.corpus);
    for (std::string l; std::getline(in, l);) {
      if (l.find("harbor-002") != std::string::npos) line2 = l;
      if (l.find("harbor-011") != std::string::npos) line11 = l;
    }
  }
  const auto p2 = nlohmann::json::parse(line2), p11 = nlohmann::json::parse(line11);
  nlohmann::json by_text = {{"question", "How tall is the lighthouse?"},
                            {"passages", {{{"text", p2["text"]}, {"title", p2["title"]}},
                                          {{"text", p11["text"]}, {"title", p11["title"]}}}}};
  std::ofstream(f.dir.str("by_text.json")) << by_text.dump();
  BOOST_REQUIRE_MESSAGE(Run(base + " --json --max-new-tokens 0 --prompt " + f.dir.str("by_text.json") +
                                " --logits-out " + f.dir.str("by_text.npy"), &o) == 0, o);
  auto jt = nlohmann::json::parse(o);
  BOOST_TEST(jt["timing"]["hits"].get<int>() == 3);
  std::string a, b;
  BOOST_REQUIRE(RunCommand("cmp " + f.dir.str("by_id.npy") + " " + f.dir.str("by_text.npy"), &a) == 0);

  // Plain output: the answer's text on stdout (the timings go to stderr).
  BOOST_REQUIRE(RunCommand(CliPath() + " " + base + " --max-new-tokens 4 --question 'When?' --passage harbor-001 2>/dev/null", &a) == 0);
  BOOST_TEST(a.find("generated:") == std::string::npos, a);
  BOOST_TEST(a.back() == '\n');

  // A passage id that is not stored is an error naming it; nothing is answered.
  BOOST_TEST(Run(base + " --question 'q' --passage harbor-001 --passage no-such-doc", &o) == 1);
  BOOST_TEST(o.find("no-such-doc") != std::string::npos, o);
  BOOST_TEST(std::count(o.begin(), o.end(), '\n') == 1, o);

  // The seed's JSONL, and several prompts in one file: one JSON line each.
  std::ofstream(f.dir.str("many.jsonl")) << R"({"prompt": "x", "blocks": ["<|user|>\nHi\n\n", "- Title: A\nB\n", "Q?\n<|assistant|>\n"], "response": "r"})" "\n"
                                         << R"({"question": "Where is the ferry going?", "passages": ["harbor-005"]})" "\n";
  BOOST_REQUIRE_MESSAGE(Run(base + " --json --max-new-tokens 3 --prompt " + f.dir.str("many.jsonl"), &o) == 0, o);
  std::vector<nlohmann::json> lines;
  std::istringstream in(o);
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) lines.push_back(nlohmann::json::parse(l));
  BOOST_REQUIRE(lines.size() == 2u);
  BOOST_TEST(lines[0]["blocks"].size() == 2u);
  BOOST_TEST(lines[1]["blocks"][1]["hit"].get<bool>());
  BOOST_TEST(lines[1]["prompt"].get<std::string>().find("many.jsonl:2") != std::string::npos);

  // Full mode answers text prompts too (the store resolves the ids).
  BOOST_REQUIRE_MESSAGE(Run(base + " --mode full --json --max-new-tokens 2 --question 'q' --passage harbor-003", &o) == 0, o);
}

// Bad corpus lines stop precompute with file:line and the field, storing nothing; --skip-bad stores the
// good lines and counts the bad ones.
BOOST_AUTO_TEST_CASE(cli_bad_corpus) {
  TextFixture f;
  const std::string bad = f.dir.str("bad.jsonl");
  std::ofstream(bad) << "{\"id\": \"good-1\", \"text\": \"A fine passage.\"}\n"
                     << "{\"id\": \"broken\", \"text\": \"bad \xC3\x28 bytes\"}\n"
                     << "{\"id\": \"good-2\", \"title\": \"T\", \"text\": \"Another.\"}\n"
                     << "{\"id\": \"no-text\"}\n";
  std::string o;
  const std::string args = " --model " + f.model + " --store " + f.store + " --corpus " + bad;
  BOOST_TEST(Run("precompute" + args, &o) == 1);
  BOOST_TEST(o.find("bad.jsonl:2") != std::string::npos, o);
  BOOST_TEST(o.find("UTF-8") != std::string::npos, o);
  // Nothing was stored: the corpus is checked and tokenized before the store is opened.
  BOOST_TEST(!std::filesystem::exists(f.store));
  BOOST_REQUIRE_MESSAGE(Run("precompute --skip-bad --json" + args, &o) == 0, o);
  const std::string json = o.substr(o.find('{'));
  auto j = nlohmann::json::parse(json);
  BOOST_TEST(j["skipped_bad_lines"].get<int>() == 2);
  BOOST_TEST(j["encoded"].get<int>() == 2);
  BOOST_TEST(o.find("bad.jsonl:4") != std::string::npos, o);
}

// blockkv tokenize from the shell: text to ids and back.
BOOST_AUTO_TEST_CASE(cli_tokenize) {
  TextFixture f;
  std::string o;
  BOOST_REQUIRE(Run("tokenize --model " + f.model + " --json --text 'Port Velland, 1712.'", &o) == 0);
  auto j = nlohmann::json::parse(o);
  std::string ids;
  for (const auto& id : j["ids"]) ids += std::to_string(id.get<int>()) + " ";
  BOOST_REQUIRE(Run("tokenize --model " + f.model + " --decode --skip-special --text '" + ids + "'", &o) == 0);
  BOOST_TEST(o == "Port Velland, 1712.\n");
  BOOST_TEST(Run("tokenize --model " + f.model + " --decode --text '1 2 99999999'", &o) == 1);
  BOOST_TEST(o.find("99999999") != std::string::npos, o);
  BOOST_TEST(Run("tokenize --model /nonexistent --text x", &o) == 1);
  BOOST_TEST(std::count(o.begin(), o.end(), '\n') == 1, o);
}

BOOST_AUTO_TEST_SUITE_END()
