# `cmake --install build --prefix P`: the static library and its public headers, the CLI, the default recipes
# (P/share/fractrain/configs) and a CMake package, so that a project of one's own can
#   find_package(fractrain 0.1 REQUIRED)
#   target_link_libraries(my_app PRIVATE fractrain::fractrain)
# with -DCMAKE_PREFIX_PATH=P (examples/custom_model is such a project; scripts/check_install.sh builds it).
include(CMakePackageConfigHelpers)
set(FRACTRAIN_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/fractrain)

# fractrain_event_proto (the generated TensorBoard messages) is a static library the static fractrain links, so
# a consumer's link needs it too.
install(TARGETS fractrain fractrain_event_proto EXPORT fractrainTargets ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
if(TARGET fractrain_cuda)  # a CUDA build's kernels, which the static library links
  install(TARGETS fractrain_cuda EXPORT fractrainTargets ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
endif()
# A LibTorch outside the system's library paths (a CUDA one from CMAKE_PREFIX_PATH) stays on the installed CLI's
# RPATH; the system's is found without one.
set_target_properties(fractrain_cli PROPERTIES INSTALL_RPATH_USE_LINK_PATH TRUE)
install(TARGETS fractrain_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY include/fractrain DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
# The recipes, sweeps and hardware models, for reading and copying; the library does not read them (the default
# hardware model is compiled in).
install(DIRECTORY configs/ DESTINATION ${CMAKE_INSTALL_DATADIR}/fractrain/configs)

install(EXPORT fractrainTargets NAMESPACE fractrain:: DESTINATION ${FRACTRAIN_CMAKE_DIR})
configure_package_config_file(cmake/fractrainConfig.cmake.in ${PROJECT_BINARY_DIR}/fractrainConfig.cmake
                              INSTALL_DESTINATION ${FRACTRAIN_CMAKE_DIR})
# 0.x: a minor release may break the API, so 0.1 accepts 0.1.* only (SameMinorVersion); from 1.0 on the
# compatibility is by the major version.
if(PROJECT_VERSION_MAJOR EQUAL 0)
  set(FRACTRAIN_VERSION_COMPATIBILITY SameMinorVersion)
else()
  set(FRACTRAIN_VERSION_COMPATIBILITY SameMajorVersion)
endif()
write_basic_package_version_file(${PROJECT_BINARY_DIR}/fractrainConfigVersion.cmake
                                 COMPATIBILITY ${FRACTRAIN_VERSION_COMPATIBILITY})
install(FILES ${PROJECT_BINARY_DIR}/fractrainConfig.cmake ${PROJECT_BINARY_DIR}/fractrainConfigVersion.cmake
        DESTINATION ${FRACTRAIN_CMAKE_DIR})
