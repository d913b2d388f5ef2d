#include "db/status.h"

namespace blockkv {

const char* CodeName(Status::Code code) {
  switch (code) {
    case Status::Code::kOk: return "OK";
    case Status::Code::kNotFound: return "NotFound";
    case Status::Code::kCorruption: return "Corruption";
    case Status::Code::kInvalidArgument: return "InvalidArgument";
    case Status::Code::kIOError: return "IOError";
    case Status::Code::kNotSupported: return "NotSupported";
    case Status::Code::kBusy: return "Busy";
    case Status::Code::kResourceExhausted: return "ResourceExhausted";
    case Status::Code::kInternal: return "Internal";
  }
  return "Unknown";
}

}  // namespace blockkv
