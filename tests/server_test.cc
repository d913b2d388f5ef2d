// `blockkv serve` as clients meet it: the OpenAI request parsing and stop strings (unit), then a real server
// process on loopback with the tiny model: health, keys, limits, errors that leave it serving, completions
// (plain and streamed, equal), passages, metrics, a bounded 32-client load test, and a clean stop on SIGTERM.
#include <boost/test/unit_test.hpp>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "tests/test_util.h"
#include "tools/server/openai_api.h"

namespace blockkv::testing {
namespace {

using nlohmann::json;
using serve::CompletionRequest;
using serve::ParseCompletionRequest;
using serve::RequestLimits;
using serve::StopMatcher;

// A `blockkv serve` child process on a free loopback port; killed (SIGTERM) when destroyed.
class ServerProcess {
 public:
  ServerProcess(const std::vector<std::string>& args, const std::string& log) : log_(log) {
    pid_ = fork();
    BOOST_REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      FILE* f = std::freopen(log.c_str(), "w", stderr);
      if (f == nullptr) _exit(127);
      std::vector<char*> argv;
      std::string cli = CliPath();
      argv.push_back(cli.data());
      std::vector<std::string> copy = args;
      for (std::string& a : copy) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(cli.c_str(), argv.data());
      _exit(127);
    }
    const std::regex listening("listening on http://127\\.0\\.0\\.1:([0-9]+)");
    for (int i = 0; i < 600 && port_ == 0; ++i) {
      std::ifstream f(log);
      std::stringstream ss;
      ss << f.rdbuf();
      std::smatch m;
      const std::string text = ss.str();
      if (std::regex_search(text, m, listening)) port_ = std::stoi(m[1]);
      int status = 0;
      if (port_ == 0 && waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        BOOST_FAIL("the server exited: " + text);
      }
      if (port_ == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    BOOST_REQUIRE_MESSAGE(port_ > 0, "the server did not start");
  }
  ~ServerProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
  }
  // Sends SIGTERM and returns the exit status.
  int Stop() {
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  int port() const { return port_; }

 private:
  std::string log_;
  pid_t pid_ = -1;
  int port_ = 0;
};

httplib::Headers Key(const std::string& key) { return {{"Authorization", "Bearer " + key}}; }

BOOST_AUTO_TEST_SUITE(server)

BOOST_AUTO_TEST_CASE(parses_openai_requests) {
  const RequestLimits limits;
  auto chat = ParseCompletionRequest(json::parse(R"({"model": "x", "messages": [
      {"role": "system", "content": "Be brief."},
      {"role": "user", "content": [{"type": "text", "text": "Who "}, {"type": "text", "text": "built it?"}]}],
      "passages": ["doc-1", {"text": "A passage.", "title": "T"}], "max_tokens": 7, "temperature": 0,
      "stop": ["\n\n"], "stream": true, "stream_options": {"include_usage": true}})"),
                                     true, limits);
  BOOST_REQUIRE_MESSAGE(chat.ok(), chat.status().ToString());
  BOOST_TEST(chat->prompt.system == "Be brief.");
  BOOST_TEST(chat->prompt.question == "Who built it?");
  BOOST_REQUIRE(chat->prompt.passages.size() == 2u);
  BOOST_TEST(chat->prompt.passages[0].by_id());
  BOOST_TEST(chat->prompt.passages[1].text == "A passage.");
  BOOST_TEST(chat->max_tokens == 7);
  BOOST_TEST(chat->sampling.temperature == 0.0f);
  BOOST_TEST(chat->stream);
  BOOST_TEST(chat->include_usage);
  BOOST_TEST(chat->stop == std::vector<std::string>{"\n\n"});
  auto plain = ParseCompletionRequest(json::parse(R"({"prompt": "Q?"})"), false, limits);
  BOOST_REQUIRE(plain.ok());
  BOOST_TEST(plain->max_tokens == limits.default_max_tokens);
  BOOST_TEST(plain->sampling.temperature == 1.0f);  // OpenAI's default
  // Each bad field is named.
  const std::pair<const char*, const char*> bad[] = {
      {R"({"prompt": 3})", "'prompt'"},
      {R"({"prompt": "q", "max_tokens": 0})", "'max_tokens'"},
      {R"({"prompt": "q", "max_tokens": 1000000})", "'max_tokens'"},
      {R"({"prompt": "q", "max_tokens": 2.5})", "'max_tokens'"},
      {R"({"prompt": "q", "temperature": "hot"})", "'temperature'"},
      {R"({"prompt": "q", "n": 2})", "'n'"},
      {R"({"prompt": "q", "passages": "doc"})", "'passages'"},
      {R"({"prompt": "q", "passages": [{"title": "no text"}]})", "'passages[0]'"},
      {R"({"prompt": "q", "stop": [1]})", "'stop'"},
      {R"({"prompt": "q", "stream": "yes"})", "'stream'"},
      {R"([1, 2])", "JSON object"},
  };
  for (const auto& [body, field] : bad) {
    auto r = ParseCompletionRequest(json::parse(body), false, limits);
    BOOST_TEST(!r.ok(), body);
    if (!r.ok()) BOOST_TEST(r.status().message().find(field) != std::string::npos, r.status().message());
  }
  RequestLimits few;
  few.max_passages = 2;
  auto many = ParseCompletionRequest(json::parse(R"({"prompt": "q", "passages": ["a", "b", "c"]})"), false, few);
  BOOST_TEST(!many.ok());
  auto turns = ParseCompletionRequest(json::parse(R"({"messages": [{"role": "user", "content": "a"},
      {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]})"), true, limits);
  BOOST_TEST(!turns.ok());
}

BOOST_AUTO_TEST_CASE(stop_strings_hold_back_and_cut) {
  StopMatcher m({"END", "\n\n"});
  std::string out = m.Push("Hello E");
  out += m.Push("N");
  BOOST_TEST(out.find('E') == std::string::npos);  // "EN" may start "END": held back
  out += m.Push("D and more");
  BOOST_TEST(m.stopped());
  BOOST_TEST(out == "Hello ");
  BOOST_TEST(m.Finish().empty());
  StopMatcher none({"XYZ"});
  std::string all = none.Push("caf\xc3");  // half of "é": never emitted alone
  all += none.Push("\xa9 ok");
  all += none.Finish();
  BOOST_TEST(all == "caf\xc3\xa9 ok");
  StopMatcher utf({"ab"});
  const std::string first = utf.Push("x\xc3");
  BOOST_TEST(first == "x");  // the lead byte waits for its continuation
}

BOOST_AUTO_TEST_CASE(serves_clients_and_survives_bad_ones) {
  TempDir dir;
  std::string o;
  BOOST_REQUIRE_MESSAGE(RunCommand(CliPath() + " make-model --preset tiny --seed 5 --out " + dir.str("m"), &o) == 0, o);
  ServerProcess server({"serve", "--model", dir.str("m"), "--store", dir.str("s"), "--port", "0", "--api-key",
                        "k3y", "--max-body", "4096", "--max-passages", "3", "--max-tokens-limit", "64",
                        "--host-tier", "8M"},
                       dir.str("serve.log"));
  httplib::Client c("127.0.0.1", server.port());
  c.set_read_timeout(60, 0);
  // Health needs no key; everything else does.
  auto health = c.Get("/health");
  BOOST_REQUIRE(health);
  BOOST_TEST(health->status == 200);
  BOOST_TEST(json::parse(health->body)["status"] == "ok");
  auto missing = c.Get("/v1/models");
  BOOST_REQUIRE(missing);
  BOOST_TEST(missing->status == 401);
  BOOST_TEST(json::parse(missing->body)["error"]["message"].get<std::string>().find("missing") != std::string::npos);
  auto wrong = c.Post("/v1/chat/completions", Key("nope"), R"({"messages": []})", "application/json");
  BOOST_REQUIRE(wrong);
  BOOST_TEST(wrong->status == 401);
  auto models = c.Get("/v1/models", Key("k3y"));
  BOOST_REQUIRE(models);
  BOOST_TEST(models->status == 200);

  // Passages, then completions over them by id.
  auto stored = c.Post("/v1/passages", Key("k3y"),
                       R"({"passages": [{"id": "harbour", "text": "Port Velland is a harbour town."},
                                        {"id": "light", "text": "The lighthouse was built in 1802.", "title": "Light"}]})",
                       "application/json");
  BOOST_REQUIRE(stored);
  BOOST_TEST(stored->status == 200, stored->body);
  BOOST_TEST(json::parse(stored->body)["encoded"].get<int>() == 2);
  const std::string ask = R"({"messages": [{"role": "user", "content": "When was the lighthouse built?"}],
                              "passages": ["harbour", "light"], "max_tokens": 12, "temperature": 0})";
  auto first = c.Post("/v1/chat/completions", Key("k3y"), ask, "application/json");
  BOOST_REQUIRE(first);
  BOOST_TEST(first->status == 200, first->body);
  const json a = json::parse(first->body);
  BOOST_TEST(a["object"] == "chat.completion");
  BOOST_TEST(a["usage"]["completion_tokens"].get<int>() >= 1);
  BOOST_TEST(a["blockkv"]["blocks"].size() == 3u);  // the system block, then the two passages
  BOOST_TEST(a["blockkv"]["blocks"][1]["name"] == "harbour");
  BOOST_TEST(a["blockkv"]["blocks"][1]["tier"] == "store");
  const std::string text = a["choices"][0]["message"]["content"].get<std::string>();
  // The same request streamed: the deltas make the same text (greedy), and the host tier now serves it.
  json streamed_req = json::parse(ask);
  streamed_req["stream"] = true;
  streamed_req["stream_options"] = {{"include_usage", true}};
  auto sse = c.Post("/v1/chat/completions", Key("k3y"), streamed_req.dump(), "application/json");
  BOOST_REQUIRE(sse);
  BOOST_TEST(sse->status == 200);
  BOOST_TEST(sse->get_header_value("Content-Type").find("text/event-stream") != std::string::npos);
  std::string joined, finish;
  json usage;
  bool done = false;
  std::istringstream events(sse->body);
  for (std::string line; std::getline(events, line);) {
    if (line.rfind("data: ", 0) != 0) continue;
    const std::string data = line.substr(6);
    if (data == "[DONE]") {
      done = true;
      continue;
    }
    const json chunk = json::parse(data);
    if (chunk.contains("usage")) {
      usage = chunk;
      continue;
    }
    BOOST_TEST(chunk["object"] == "chat.completion.chunk");
    const json& choice = chunk["choices"][0];
    if (choice["delta"].contains("content")) joined += choice["delta"]["content"].get<std::string>();
    if (!choice["finish_reason"].is_null()) finish = choice["finish_reason"].get<std::string>();
  }
  BOOST_TEST(done);
  BOOST_TEST(joined == text);
  BOOST_TEST(finish == a["choices"][0]["finish_reason"].get<std::string>());
  BOOST_REQUIRE(usage.is_object());
  BOOST_TEST(usage["blockkv"]["blocks"][2]["tier"] == "host");
  // Text passages in the request work too (encoded now).
  auto by_text = c.Post("/v1/completions", Key("k3y"),
                        R"({"prompt": "Where?", "passages": [{"text": "A new passage."}], "max_tokens": 3})",
                        "application/json");
  BOOST_REQUIRE(by_text);
  BOOST_TEST(by_text->status == 200, by_text->body);
  BOOST_TEST(json::parse(by_text->body)["object"] == "text_completion");

  // Bad requests: each a JSON error, and the server keeps serving.
  auto big = c.Post("/v1/completions", Key("k3y"), std::string(10000, ' ') + R"({"prompt": "q"})", "application/json");
  BOOST_REQUIRE(big);
  BOOST_TEST(big->status == 413);
  BOOST_TEST(json::parse(big->body)["error"]["code"] == 413);
  auto too_many = c.Post("/v1/completions", Key("k3y"), R"({"prompt": "q", "passages": ["a", "b", "c", "d"]})",
                         "application/json");
  BOOST_REQUIRE(too_many);
  BOOST_TEST(too_many->status == 400);
  BOOST_TEST(json::parse(too_many->body)["error"]["message"].get<std::string>().find("at most 3") != std::string::npos);
  auto long_answer = c.Post("/v1/completions", Key("k3y"), R"({"prompt": "q", "max_tokens": 65})", "application/json");
  BOOST_REQUIRE(long_answer);
  BOOST_TEST(long_answer->status == 400);
  auto not_json = c.Post("/v1/completions", Key("k3y"), "{nope", "application/json");
  BOOST_REQUIRE(not_json);
  BOOST_TEST(not_json->status == 400);
  auto unknown = c.Post("/v1/completions", Key("k3y"), R"({"prompt": "q", "passages": ["never-stored"]})",
                        "application/json");
  BOOST_REQUIRE(unknown);
  BOOST_TEST(unknown->status == 404);
  BOOST_TEST(unknown->body.find("never-stored") != std::string::npos);
  auto nowhere = c.Get("/v2/things", Key("k3y"));
  BOOST_REQUIRE(nowhere);
  BOOST_TEST(nowhere->status == 404);
  auto again = c.Post("/v1/chat/completions", Key("k3y"), ask, "application/json");
  BOOST_REQUIRE(again);
  BOOST_TEST(again->status == 200);
  BOOST_TEST(json::parse(again->body)["choices"][0]["message"]["content"].get<std::string>() == text);

  auto metrics = c.Get("/metrics", Key("k3y"));
  BOOST_REQUIRE(metrics);
  BOOST_TEST(metrics->status == 200);
  BOOST_TEST(metrics->body.find("blockkv_requests_total") != std::string::npos);

  // A bounded load test: 32 clients for 3 seconds, no errors (bench-http exits 1 on any).
  BOOST_TEST(RunCommand(CliPath() + " bench-http --port " + std::to_string(server.port()) +
                            " --api-key k3y --clients 32 --seconds 3 --max-tokens 4 --passages harbour,light "
                            "--per-request 2 --json " + dir.str("load.json"),
                        &o) == 0,
             o);
  std::ifstream lf(dir.str("load.json"));
  const json load = json::parse(lf);
  BOOST_TEST(load["errors"].get<int>() == 0);
  BOOST_TEST(load["requests"].get<int>() > 32);

  BOOST_TEST(server.Stop() == 0);  // SIGTERM: a clean exit
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace blockkv::testing
