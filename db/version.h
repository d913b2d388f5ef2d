// The library's version (the CMake project's), for the CLI, the server's /health and the Python module.
// Thread-safe (constants).
#pragma once

namespace blockkv {

// "MAJOR.MINOR.PATCH".
const char* Version();

}  // namespace blockkv
