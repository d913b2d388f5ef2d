// Equality of blockkv's chat template interpreter with Python's Jinja2, byte for byte, over every
// template x conversation: the real templates of tests/data/fetch_tokenizers.sh's cache (llama3_1,
// llama3, qwen3) and blockkv's own under tests/data/chat_templates/, rendered over
// tests/data/chat_conversations.json. tests/oracle/render_chat_templates.py renders them with
// Jinja2 set up as transformers sets it up, and records the context it used, which is rendered here
// unchanged.
//
// A render that fails in Python must fail here too; when raise_exception() failed it, our error
// must carry the same message. Mismatches are written, both sides, under
// $TMPDIR/blockkv-chat-template-mismatch/ for diffing.
#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "attention/model/chat_template.h"
#include "tests/test_util.h"

namespace blockkv {
namespace {

using testing::ReportSkipped;
using testing::RunCommand;
using testing::TempDir;

const std::filesystem::path kSource = BLOCKKV_SOURCE_DIR;

std::string Quote(const std::filesystem::path& p) { return "'" + p.string() + "'"; }

// Empty when python3 with jinja2 can run the oracle; else why not.
std::string OracleUnavailable() {
  std::string out;
  if (RunCommand("/usr/bin/python3 -c 'import jinja2'", &out) != 0)
    return "python3 with the jinja2 module is not available: " + out;
  return "";
}

struct Totals {
  int templates = 0;
  int renders = 0;
  int both_failed = 0;
  int mismatches = 0;
};

std::string Describe(const std::string& expected, const std::string& actual) {
  size_t i = 0;
  while (i < expected.size() && i < actual.size() && expected[i] == actual[i]) ++i;
  std::ostringstream o;
  o << "first difference at byte " << i << " of " << expected.size() << " (jinja2) / "
    << actual.size() << " (blockkv): jinja2 \"" << expected.substr(i > 20 ? i - 20 : 0, 60)
    << "\" vs blockkv \"" << actual.substr(i > 20 ? i - 20 : 0, 60) << "\"";
  return o.str();
}

void WriteMismatch(const std::string& name, const std::string& expected,
                   const std::string& actual) {
  const auto dir = std::filesystem::temp_directory_path() / "blockkv-chat-template-mismatch";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / (name + ".jinja2.txt"), std::ios::binary) << expected;
  std::ofstream(dir / (name + ".blockkv.txt"), std::ios::binary) << actual;
}

// Runs the oracle with `oracle_args` and compares every render.
Totals CompareWithJinja2(const std::string& oracle_args) {
  Totals t;
  TempDir dir;
  const auto out_path = dir.path() / "jinja2.json";
  std::string log;
  const std::string cmd =
      "/usr/bin/python3 " + Quote(kSource / "tests/oracle/render_chat_templates.py") +
      " --conversations " + Quote(kSource / "tests/data/chat_conversations.json") + " --out " +
      Quote(out_path) + " " + oracle_args;
  BOOST_REQUIRE_MESSAGE(RunCommand(cmd, &log) == 0, "the oracle failed: " + cmd + "\n" + log);
  std::ifstream in(out_path, std::ios::binary);
  const nlohmann::ordered_json oracle = nlohmann::ordered_json::parse(in);
  BOOST_TEST_MESSAGE("Jinja2 " << oracle["jinja2_version"].get<std::string>());
  for (const auto& tmpl : oracle["templates"]) {
    const std::string name = tmpl["name"];
    ++t.templates;
    StatusOr<ChatTemplate> parsed = ChatTemplate::Parse(tmpl["source"].get<std::string>());
    BOOST_REQUIRE_MESSAGE(parsed.ok(), name + ": " + parsed.status().ToString());
    for (const auto& r : tmpl["renders"]) {
      const std::string label = name + " x " + r["conversation"].get<std::string>();
      ++t.renders;
      StatusOr<std::string> ours = parsed->Render(r["context"]);
      if (r.contains("error")) {
        const std::string expected = r["error"];
        BOOST_CHECK_MESSAGE(!ours.ok(), label + ": Jinja2 fails (" +
                                            r["error_type"].get<std::string>() + ": " + expected +
                                            ") but blockkv rendered");
        if (ours.ok()) {
          ++t.mismatches;
          continue;
        }
        ++t.both_failed;
        if (r["raised"].get<bool>()) {
          BOOST_CHECK_MESSAGE(
              ours.status().message().find("TemplateError: " + expected) != std::string::npos,
              label + ": raise_exception(\"" + expected + "\") but blockkv says " +
                  ours.status().ToString());
        }
        continue;
      }
      const std::string expected = r["output"];
      if (!ours.ok()) {
        BOOST_ERROR(label + ": Jinja2 renders but blockkv fails: " + ours.status().ToString());
        ++t.mismatches;
        continue;
      }
      if (*ours != expected) {
        ++t.mismatches;
        WriteMismatch(name + "." + r["conversation"].get<std::string>(), expected, *ours);
        BOOST_ERROR(label + ": " + Describe(expected, *ours));
      }
    }
  }
  return t;
}

void Report(const char* what, const Totals& t) {
  BOOST_TEST_MESSAGE(what << ": " << t.templates << " templates x "
                          << (t.templates > 0 ? t.renders / t.templates : 0) << " conversations = "
                          << t.renders << " renders compared with Jinja2 (" << t.both_failed
                          << " fail on both sides, " << t.mismatches << " mismatches)");
}

BOOST_AUTO_TEST_SUITE(chat_template_jinja2)

BOOST_AUTO_TEST_CASE(real_templates_match_jinja2) {
  if (const std::string why = OracleUnavailable(); !why.empty()) {
    ReportSkipped(why);
    return;
  }
  const auto cache = kSource / ".cache/tokenizers";
  for (const char* name : {"llama3_1", "llama3", "qwen3"}) {
    if (!std::filesystem::exists(cache / name / "tokenizer_config.json")) {
      ReportSkipped(std::string("no ") + (cache / name / "tokenizer_config.json").string() +
                    "; run tests/data/fetch_tokenizers.sh to fetch the real templates");
      return;
    }
  }
  const Totals t = CompareWithJinja2("--tokenizers " + Quote(cache) +
                                     " --tokenizer llama3_1 --tokenizer llama3 --tokenizer qwen3");
  Report("real templates (llama3_1, llama3, qwen3)", t);
  BOOST_TEST(t.templates == 3);
  BOOST_TEST(t.renders >= 3 * 25);
  BOOST_TEST(t.mismatches == 0);
}

BOOST_AUTO_TEST_CASE(own_templates_match_jinja2) {
  if (const std::string why = OracleUnavailable(); !why.empty()) {
    ReportSkipped(why);
    return;
  }
  const Totals t =
      CompareWithJinja2("--templates-dir " + Quote(kSource / "tests/data/chat_templates"));
  Report("blockkv's templates (tests/data/chat_templates)", t);
  BOOST_TEST(t.templates >= 4);
  BOOST_TEST(t.mismatches == 0);
  // The Mistral-style template must refuse some conversations (raise_exception), and the others
  // render.
  BOOST_TEST(t.both_failed > 0);
  BOOST_TEST(t.both_failed < t.renders / 2);
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace blockkv
