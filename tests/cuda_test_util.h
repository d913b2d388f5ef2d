// Helpers shared by the CUDA test suites: whether a GPU is here (reporting the skip otherwise), and unwrapping
// a StatusOr into a test failure.
#pragma once

#include <boost/test/unit_test.hpp>

#include <string>
#include <utility>

#include "attention/cuda/cuda_runtime.h"
#include "tests/test_util.h"

namespace blockkv::testing {

// True when a CUDA device can be used; otherwise reports BLOCKKV_SKIPPED (CTest counts the suite skipped).
inline bool HaveGpu() {
  std::string why;
  if (cuda::CudaRuntime::DeviceAvailable(&why)) return true;
  ReportSkipped("no CUDA device (" + why + ")");
  BOOST_TEST_MESSAGE("skipped: no CUDA device");
  return false;
}

template <typename T>
T Get(StatusOr<T> v) {
  BOOST_REQUIRE_MESSAGE(v.ok(), v.status().ToString());
  return std::move(v).value();
}

}  // namespace blockkv::testing
