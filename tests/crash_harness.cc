// Crash harness, in the manner of RocksDB's db_crashtest: a child process writes blocks whose content
// derives from a seed and a key and acknowledges each write only after it returned (synced); the parent
// kills it with SIGKILL at random moments, reopens the store and checks that every acknowledged block is
// present and bit-exact, that no block is partly visible, that metadata, names and payload agree, and that
// RocksDB's file checksums verify. Deletions, evictions and compactions run in some cycles.
//
//   blockkv_crash run --cycles N [--seed S] [--dir DIR] [--json FILE]   the parent (exit 0 iff no violation)
//   blockkv_crash child --dir DIR --seed S --first-key K --mode M        the child (used by run)
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "db/block_store.h"
#include "tests/test_util.h"

using namespace blockkv;

namespace {

constexpr uint32_t kLayers = 3;

testing::TestBlock BlockFor(uint64_t seed, uint64_t key) {
  return testing::MakeTestBlock(testing::TestModel(7), kLayers, 8 + static_cast<uint32_t>(key % 57), 2, 16,
                                DType::kBF16, seed * 1000003 + key, "k" + std::to_string(key));
}

std::string Arg(int argc, char** argv, const char* name, const char* def) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) return argv[i + 1];
  return def;
}

void Say(const char* what, uint64_t key = 0) {
  // One line per event, written with write(2) so nothing sits in a user-space buffer when killed.
  char buf[64];
  int n = std::snprintf(buf, sizeof buf, "%s %llu\n", what, static_cast<unsigned long long>(key));
  if (write(1, buf, n) != n) _exit(2);
}

// ---- child ----------------------------------------------------------------------------------------

int Child(int argc, char** argv) {
  const std::string dir = Arg(argc, argv, "--dir", "");
  const uint64_t seed = std::stoull(Arg(argc, argv, "--seed", "1"));
  uint64_t key = std::stoull(Arg(argc, argv, "--first-key", "0"));
  const int mode = std::stoi(Arg(argc, argv, "--mode", "0"));  // bit 0: deletes, 1: evictions, 2: compactions
  auto opened = BlockStore::Open(dir, StoreOptions());
  if (!opened.ok()) {
    std::fprintf(stderr, "child: %s\n", opened.status().ToString().c_str());
    return 1;
  }
  auto store = std::move(opened).value();
  std::mt19937_64 rng(seed * 31 + key);
  std::vector<uint64_t> mine;
  Say("R");  // ready
  for (uint64_t op = 0;; ++op) {
    if ((mode & 1) && !mine.empty() && rng() % 5 == 0) {
      const size_t i = rng() % mine.size();
      const uint64_t k = mine[i];
      auto b = BlockFor(seed, k);
      Say("D", k);
      Status s = store->Delete(ComputeBlockId(b.put.model, b.put.tokens));
      if (!s.ok() && !s.IsNotFound()) return 3;
      Say("d", k);
      mine.erase(mine.begin() + static_cast<long>(i));
      continue;
    }
    if ((mode & 2) && op % 23 == 22) {
      auto st = store->GetStats();
      if (!st.ok()) return 3;
      Say("E");
      auto r = store->EvictTo(st->stored_bytes * 7 / 10);
      if (!r.ok()) return 3;
      // Report every key (of this run and earlier ones) that is not there now.
      for (uint64_t k = 0; k < key; ++k) {
        auto b = BlockFor(seed, k);
        if (!*store->Contains(ComputeBlockId(b.put.model, b.put.tokens))) Say("G", k);
      }
      std::erase_if(mine, [&](uint64_t k) {
        auto b = BlockFor(seed, k);
        return !*store->Contains(ComputeBlockId(b.put.model, b.put.tokens));
      });
      Say("e");
      continue;
    }
    if ((mode & 4) && op % 17 == 16) {
      Say("C");
      if (!store->Compact().ok()) return 3;
      Say("c");
      continue;
    }
    auto b = BlockFor(seed, key);
    Say("P", key);
    auto id = store->Put(b.put);
    if (!id.ok()) {
      std::fprintf(stderr, "child: %s\n", id.status().ToString().c_str());
      return 3;
    }
    Say("A", key);
    mine.push_back(key);
    ++key;
  }
}

// ---- parent ---------------------------------------------------------------------------------------

enum class State { kAbsent, kPresent, kMaybe };

struct Totals {
  uint64_t cycles = 0, acknowledged = 0, lost = 0, partial = 0, corrupt_served = 0, resurrected = 0,
           verify_failures = 0, blocks_checked = 0, evictions = 0, compactions = 0, deletes = 0;
};

// Checks the reopened store against the expected states; updates uncertain states to what is there.
void Check(BlockStore* store, uint64_t seed, std::map<uint64_t, State>* states, Totals* t) {
  std::set<uint64_t> seen;
  Status ls = store->List({}, [&](const BlockMeta& m) {
    ++t->blocks_checked;
    if (m.name.size() < 2 || m.name[0] != 'k') {
      ++t->partial;
      return true;
    }
    const uint64_t key = std::stoull(m.name.substr(1));
    seen.insert(key);
    auto b = BlockFor(seed, key);
    const BlockId id = ComputeBlockId(b.put.model, b.put.tokens);
    if (m.id != id || m.tokens != b.put.tokens || m.num_layers != kLayers) {
      ++t->partial;
      return true;
    }
    auto named = store->ResolveName(m.name);
    if (!named.ok() || *named != id) ++t->partial;
    const uint64_t tb = m.tensor_bytes();
    std::vector<uint8_t> k(tb), v(tb);
    for (uint32_t l = 0; l < kLayers; ++l) {
      Status s = store->GetLayer(id, l, k.data(), v.data(), tb);
      if (s.IsNotFound()) {
        ++t->partial;  // metadata without a layer: a partly visible block
        break;
      }
      if (!s.ok()) {
        ++t->verify_failures;
        break;
      }
      if (k != b.k[l] || v != b.v[l]) {
        ++t->corrupt_served;  // OK status but wrong bytes
        break;
      }
    }
    auto st = states->find(key);
    if (st != states->end() && st->second == State::kAbsent) ++t->resurrected;
    return true;
  });
  if (!ls.ok()) ++t->verify_failures;
  for (auto& [key, state] : *states) {
    const bool present = seen.count(key) > 0;
    if (state == State::kPresent && !present) {
      ++t->lost;
      state = State::kAbsent;  // counted once
    }
    if (state == State::kMaybe) state = present ? State::kPresent : State::kAbsent;
  }
  auto report = store->Verify();
  if (!report.ok() || !report->ok()) {
    ++t->verify_failures;
    if (report.ok())
      for (auto& p : report->file_problems) std::fprintf(stderr, "verify: %s\n", p.c_str());
  }
}

int Parent(int argc, char** argv) {
  const int cycles = std::stoi(Arg(argc, argv, "--cycles", "10"));
  const uint64_t seed = std::stoull(Arg(argc, argv, "--seed", "1"));
  const std::string json = Arg(argc, argv, "--json", "");
  std::string dir = Arg(argc, argv, "--dir", "");
  std::unique_ptr<testing::TempDir> tmp;
  if (dir.empty()) {
    tmp = std::make_unique<testing::TempDir>();
    dir = tmp->str("store");
  }
  std::mt19937_64 rng(seed);
  std::map<uint64_t, State> states;
  Totals t;
  uint64_t next_key = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int c = 0; c < cycles; ++c) {
    const int mode = c % 8;  // every combination of deletes, evictions and compactions
    int fds[2];
    if (pipe(fds) != 0) return 2;
    pid_t pid = fork();
    if (pid == 0) {
      dup2(fds[1], 1);
      close(fds[0]);
      close(fds[1]);
      std::string first = std::to_string(next_key), s = std::to_string(seed), m = std::to_string(mode);
      execl("/proc/self/exe", argv[0], "child", "--dir", dir.c_str(), "--seed", s.c_str(), "--first-key",
            first.c_str(), "--mode", m.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    close(fds[1]);
    // Read the child's events until the random kill moment (counted from its "ready").
    std::string log;
    bool ready = false;
    auto kill_at = std::chrono::steady_clock::time_point::max();
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    for (;;) {
      char buf[4096];
      ssize_t n = read(fds[0], buf, sizeof buf);
      if (n > 0) log.append(buf, n);
      if (!ready && log.find("R ") != std::string::npos) {
        ready = true;
        kill_at = std::chrono::steady_clock::now() + std::chrono::milliseconds(20 + rng() % 400);
      }
      if (std::chrono::steady_clock::now() >= kill_at) break;
      int st;
      if (waitpid(pid, &st, WNOHANG) == pid) {
        std::fprintf(stderr, "cycle %d: the child exited by itself (status %d)\n", c, st);
        return 1;
      }
      if (n <= 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    for (;;) {  // whatever the child wrote before dying
      char buf[4096];
      ssize_t n = read(fds[0], buf, sizeof buf);
      if (n <= 0) break;
      log.append(buf, n);
    }
    close(fds[0]);
    // Replay the events. A line cut by the kill is ignored.
    std::vector<uint64_t> evicting;
    size_t pos = 0;
    while (true) {
      size_t end = log.find('\n', pos);
      if (end == std::string::npos) break;
      char ev;
      unsigned long long key;
      if (std::sscanf(log.c_str() + pos, "%c %llu", &ev, &key) == 2) {
        switch (ev) {
          case 'P': states[key] = State::kMaybe; next_key = std::max<uint64_t>(next_key, key + 1); break;
          case 'A': states[key] = State::kPresent; ++t.acknowledged; break;
          case 'D': states[key] = State::kMaybe; break;
          case 'd': states[key] = State::kAbsent; ++t.deletes; break;
          case 'E':
            ++t.evictions;
            evicting.clear();
            for (auto& [k, s] : states)
              if (s == State::kPresent) {
                s = State::kMaybe;
                evicting.push_back(k);
              }
            break;
          case 'G': states[key] = State::kAbsent; break;
          case 'e':
            for (uint64_t k : evicting)
              if (states[k] == State::kMaybe) states[k] = State::kPresent;
            evicting.clear();
            break;
          case 'C': ++t.compactions; break;
          default: break;
        }
      }
      pos = end + 1;
    }
    auto store = BlockStore::Open(dir, StoreOptions());
    if (!store.ok()) {
      std::fprintf(stderr, "cycle %d: reopen failed: %s\n", c, store.status().ToString().c_str());
      ++t.verify_failures;
      break;
    }
    Check(store->get(), seed, &states, &t);
    ++t.cycles;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const bool ok = t.lost == 0 && t.partial == 0 && t.corrupt_served == 0 && t.resurrected == 0 &&
                  t.verify_failures == 0 && t.acknowledged > 0;
  char line[512];
  std::snprintf(line, sizeof line,
                "{\"cycles\": %llu, \"acknowledged\": %llu, \"lost\": %llu, \"partial\": %llu, "
                "\"corrupt_served\": %llu, \"resurrected\": %llu, \"verify_failures\": %llu, "
                "\"blocks_checked\": %llu, \"deletes\": %llu, \"evictions\": %llu, \"compactions\": %llu, "
                "\"seconds\": %.1f, \"ok\": %s}",
                (unsigned long long)t.cycles, (unsigned long long)t.acknowledged, (unsigned long long)t.lost,
                (unsigned long long)t.partial, (unsigned long long)t.corrupt_served,
                (unsigned long long)t.resurrected, (unsigned long long)t.verify_failures,
                (unsigned long long)t.blocks_checked, (unsigned long long)t.deletes,
                (unsigned long long)t.evictions, (unsigned long long)t.compactions, secs, ok ? "true" : "false");
  std::printf("%s\n", line);
  if (!json.empty()) std::ofstream(json) << line << "\n";
  std::printf("%d passed, %d failed\n", ok ? 1 : 0, ok ? 0 : 1);
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "child") == 0) return Child(argc, argv);
  if (argc >= 2 && std::strcmp(argv[1], "run") == 0) return Parent(argc, argv);
  std::fprintf(stderr, "usage: %s run --cycles N [--seed S] [--dir DIR] [--json FILE]\n", argv[0]);
  return 2;
}
