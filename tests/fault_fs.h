// A RocksDB FileSystem for fault-injection tests, in the manner of LevelDB's fault_injection_test.cc:
// it fails reads, writes and syncs on demand, and simulates a machine crash by dropping every byte that
// was written but not synced (files are truncated to their last synced length; files never synced are
// deleted). Directory entries are assumed durable once created (renames and creations are not rolled back).
#pragma once

#include <rocksdb/env.h>
#include <rocksdb/file_system.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace blockkv::testing {

// Use as: auto fs = std::make_shared<FaultInjectionFS>(); auto env = rocksdb::NewCompositeEnv(fs);
// then StoreOptions::env = env.get().

class FaultInjectionFS : public rocksdb::FileSystemWrapper {
 public:
  explicit FaultInjectionFS(std::shared_ptr<rocksdb::FileSystem> base = rocksdb::FileSystem::Default());

  const char* Name() const override { return "FaultInjectionFS"; }

  // While set, the matching operations return IOError (and do nothing).
  void SetFailWrites(bool v) { fail_writes_ = v; }
  void SetFailSyncs(bool v) { fail_syncs_ = v; }
  void SetFailReads(bool v) { fail_reads_ = v; }
  // Fails every write and sync, as a crashed machine would, until ResetFaults().
  void Deactivate() { fail_writes_ = fail_syncs_ = true; }
  void ResetFaults() { fail_writes_ = fail_syncs_ = fail_reads_ = false; }
  int injected() const { return injected_.load(); }

  // The crash: truncate every tracked file to its last synced size, delete those never synced. Call with
  // the store closed (after Deactivate(), so closing cannot persist anything). Returns files changed.
  int DropUnsyncedData();


  rocksdb::IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r,
                                    rocksdb::IODebugContext* d) override;
  rocksdb::IOStatus ReopenWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                       std::unique_ptr<rocksdb::FSWritableFile>* r,
                                       rocksdb::IODebugContext* d) override;
  rocksdb::IOStatus NewRandomAccessFile(const std::string& f, const rocksdb::FileOptions& o,
                                        std::unique_ptr<rocksdb::FSRandomAccessFile>* r,
                                        rocksdb::IODebugContext* d) override;
  rocksdb::IOStatus NewSequentialFile(const std::string& f, const rocksdb::FileOptions& o,
                                      std::unique_ptr<rocksdb::FSSequentialFile>* r,
                                      rocksdb::IODebugContext* d) override;
  rocksdb::IOStatus RenameFile(const std::string& s, const std::string& t, const rocksdb::IOOptions& o,
                               rocksdb::IODebugContext* d) override;
  rocksdb::IOStatus DeleteFile(const std::string& f, const rocksdb::IOOptions& o,
                               rocksdb::IODebugContext* d) override;

  // Used by the file wrappers.
  rocksdb::IOStatus Fault(const char* what);
  void OnAppend(const std::string& f, uint64_t n);
  void OnSync(const std::string& f);
  std::atomic<bool> fail_writes_{false}, fail_syncs_{false}, fail_reads_{false};

 private:
  struct FileState {
    uint64_t written = 0;
    uint64_t synced = 0;
    bool ever_synced = false;
  };
  std::mutex mu_;
  std::map<std::string, FileState> files_;
  std::atomic<int> injected_{0};
};

}  // namespace blockkv::testing
