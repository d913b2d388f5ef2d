// Status and StatusOr: errors as values across blockkv's public API.
//
// A Status is either OK or carries a code and a message that names the thing that failed (a block id, a
// file, a tensor). rocksdb::Status is converted in one place (db/rocksdb_util.h).
//
// Threads: values; a Status or StatusOr belongs to whoever holds it.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>

namespace blockkv {

class [[nodiscard]] Status {
 public:
  enum class Code {
    kOk = 0,
    kNotFound,
    kCorruption,
    kInvalidArgument,
    kIOError,
    kNotSupported,
    kBusy,           // the store is locked by another writer
    kResourceExhausted,  // out of space in the byte budget (e.g. everything left is pinned)
    kInternal,
  };

  Status() = default;
  static Status OK() { return Status(); }
  static Status NotFound(std::string msg) { return Status(Code::kNotFound, std::move(msg)); }
  static Status Corruption(std::string msg) { return Status(Code::kCorruption, std::move(msg)); }
  static Status InvalidArgument(std::string msg) {
    return Status(Code::kInvalidArgument, std::move(msg));
  }
  static Status IOError(std::string msg) { return Status(Code::kIOError, std::move(msg)); }
  static Status NotSupported(std::string msg) { return Status(Code::kNotSupported, std::move(msg)); }
  static Status Busy(std::string msg) { return Status(Code::kBusy, std::move(msg)); }
  static Status ResourceExhausted(std::string msg) {
    return Status(Code::kResourceExhausted, std::move(msg));
  }
  static Status Internal(std::string msg) { return Status(Code::kInternal, std::move(msg)); }

  bool ok() const { return code_ == Code::kOk; }
  bool IsNotFound() const { return code_ == Code::kNotFound; }
  bool IsCorruption() const { return code_ == Code::kCorruption; }
  bool IsInvalidArgument() const { return code_ == Code::kInvalidArgument; }
  bool IsIOError() const { return code_ == Code::kIOError; }
  bool IsNotSupported() const { return code_ == Code::kNotSupported; }
  bool IsBusy() const { return code_ == Code::kBusy; }
  bool IsResourceExhausted() const { return code_ == Code::kResourceExhausted; }

  Code code() const { return code_; }
  const std::string& message() const { return msg_; }

  // "Corruption: block 0f3a...: checksum mismatch in layer 3"
  std::string ToString() const;

  // Returns a copy with "context: " put in front of the message; OK stays OK.
  Status WithContext(const std::string& context) const {
    if (ok()) return *this;
    return Status(code_, context + ": " + msg_);
  }

 private:
  Status(Code code, std::string msg) : code_(code), msg_(std::move(msg)) {}
  Code code_ = Code::kOk;
  std::string msg_;
};

const char* CodeName(Status::Code code);

inline std::string Status::ToString() const {
  if (ok()) return "OK";
  return std::string(CodeName(code_)) + ": " + msg_;
}

// A value or the error that prevented it. Holds a value iff status().ok().
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(Status s) : status_(std::move(s)) { assert(!status_.ok()); }  // NOLINT: implicit
  StatusOr(T value) : value_(std::move(value)) {}                       // NOLINT: implicit

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() & { assert(ok()); return *value_; }
  const T& value() const& { assert(ok()); return *value_; }
  T&& value() && { assert(ok()); return std::move(*value_); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace blockkv

#define BLOCKKV_CONCAT_INNER(a, b) a##b
#define BLOCKKV_CONCAT(a, b) BLOCKKV_CONCAT_INNER(a, b)

// Returns from the enclosing function if `expr` (a Status) is not OK.
#define RETURN_IF_ERROR(expr)                     \
  do {                                            \
    ::blockkv::Status _st = (expr);               \
    if (!_st.ok()) return _st;                    \
  } while (0)

// ASSIGN_OR_RETURN(auto x, Foo()): evaluates Foo() (a StatusOr), returns its status on error, else
// moves the value into x.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL(BLOCKKV_CONCAT(_status_or_, __COUNTER__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return tmp.status();         \
  lhs = std::move(tmp).value()
