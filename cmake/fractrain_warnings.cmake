# Compiler warnings for fractrain's own targets (library, CLI, tests, benchmarks, fuzz targets).
#
# A function rather than an INTERFACE target: a PRIVATE link of an interface target to the static library would
# land in its exported link interface, and an installed fractrain would then have to export it too.
# The flags go on the targets that hold fractrain's hand-written sources only; generated code (protobuf, say)
# belongs in a target of its own that does not call this, so -Werror never fails on code we do not write.
# Third-party headers (LibTorch, GoogleTest, fmt, ...) come from imported targets, whose include directories CMake
# passes as -isystem, so their warnings stay quiet.
option(FRACTRAIN_WARNINGS_AS_ERRORS "Treat compiler warnings in fractrain's own code as errors (CI turns this on)"
       OFF)

set(FRACTRAIN_WARNING_FLAGS -Wall -Wextra -Wno-unused-parameter)
if(FRACTRAIN_WARNINGS_AS_ERRORS)
  list(APPEND FRACTRAIN_WARNING_FLAGS -Werror)
endif()

function(fractrain_target_warnings)
  foreach(target IN LISTS ARGN)
    target_compile_options(${target} PRIVATE ${FRACTRAIN_WARNING_FLAGS})
  endforeach()
endfunction()
