# The installed package: `cmake --install build --prefix P` puts
#   P/lib/libblockkv.so            the whole library (store, runtime, engine, tokenizer; the CUDA backend where
#                                  built) in one shared library, its own dependencies (RocksDB, zstd, xxHash,
#                                  OpenBLAS, PCRE2, ICU, CUDA) linked in privately
#   P/include/{db,attention}/...   the public headers
#   P/lib/cmake/blockkv/           blockkvConfig.cmake: find_package(blockkv CONFIG REQUIRED) gives blockkv::blockkv
#   P/bin/blockkv                  the CLI
# A consumer needs nlohmann_json's headers (the metrics' JSON is in the public API) and Threads.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# The shared library is made of the static libraries' own object files (they are built position-independent),
# so nothing is compiled twice; their private dependencies are linked in here.
add_library(blockkv_shared SHARED $<TARGET_OBJECTS:blockkv_db> $<TARGET_OBJECTS:blockkv_attention>)
target_link_libraries(blockkv_shared PRIVATE RocksDB::rocksdb ${BLOCKKV_ZSTD} xxHash::xxhash BLAS::BLAS
                                             PkgConfig::PCRE2 ICU::uc)
if(BLOCKKV_HAVE_CUDA)
  target_sources(blockkv_shared PRIVATE $<TARGET_OBJECTS:blockkv_cuda>)
  target_link_libraries(blockkv_shared PRIVATE CUDA::cudart CUDA::cublasLt)
endif()
set_target_properties(blockkv_shared PROPERTIES OUTPUT_NAME blockkv EXPORT_NAME blockkv LINKER_LANGUAGE CXX
                                                VERSION ${PROJECT_VERSION} SOVERSION ${PROJECT_VERSION_MAJOR})
target_link_libraries(blockkv_shared INTERFACE Threads::Threads nlohmann_json::nlohmann_json)
target_include_directories(blockkv_shared INTERFACE $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}>
                                                   $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
if(BLOCKKV_HAVE_CUDA)
  target_compile_definitions(blockkv_shared INTERFACE BLOCKKV_HAVE_CUDA=1)
endif()
add_library(blockkv::blockkv ALIAS blockkv_shared)

install(TARGETS blockkv_shared EXPORT blockkvTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS blockkv RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
# Public headers: the store's and the runtime's, not the implementation-only ones (RocksDB, CUDA internals).
install(DIRECTORY ${PROJECT_SOURCE_DIR}/db ${PROJECT_SOURCE_DIR}/attention
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
        FILES_MATCHING PATTERN "*.h"
        PATTERN "*_impl.h" EXCLUDE
        PATTERN "*_internal.h" EXCLUDE
        PATTERN "rocksdb_util.h" EXCLUDE
        PATTERN "cpu" EXCLUDE
        PATTERN "cuda" EXCLUDE)
if(BLOCKKV_HAVE_CUDA)
  install(FILES ${PROJECT_SOURCE_DIR}/attention/cuda/cuda_backend.h ${PROJECT_SOURCE_DIR}/attention/cuda/cuda_runtime.h
                ${PROJECT_SOURCE_DIR}/attention/cuda/precision.h
          DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/attention/cuda)
endif()
install(EXPORT blockkvTargets NAMESPACE blockkv:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/blockkv)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/blockkvConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/blockkvConfig.cmake
                              INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/blockkv)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/blockkvConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/blockkvConfig.cmake ${PROJECT_BINARY_DIR}/blockkvConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/blockkv)
