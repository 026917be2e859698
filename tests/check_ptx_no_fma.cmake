# cmake -DPTX="a.ptx;b.ptx" -P check_ptx_no_fma.cmake: fails if a PTX file holds a single-precision fused
# multiply-add (fma.rn.f32), which would round `t * s + lo` differently from the CPU kernels. Also fails if a file
# is missing or holds no arithmetic at all (a check that reads nothing must not pass).
if(NOT PTX)
  message(FATAL_ERROR "no PTX files given")
endif()
foreach(file IN LISTS PTX)
  if(NOT EXISTS "${file}")
    message(FATAL_ERROR "${file}: missing (build the fractrain_cuda_ptx target)")
  endif()
  file(READ "${file}" text)
  if(NOT text MATCHES "div\\.rn\\.f32")
    message(FATAL_ERROR "${file}: no f32 division found: not the quantization kernels' PTX?")
  endif()
  if(text MATCHES "fma\\.rn\\.f32")
    message(FATAL_ERROR "${file}: holds fma.rn.f32: compile the CUDA kernels with --fmad=false")
  endif()
  message(STATUS "${file}: no fma.rn.f32")
endforeach()
