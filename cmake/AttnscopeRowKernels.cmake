# One object library per CPU capability for cpp/src/isa/row_kernels_isa.cpp, linked into attnscope_core.
# The flags mirror ATen's (cmake/Codegen.cmake in PyTorch): CPU_CAPABILITY names the inline namespace of ATen's
# Vectorized and of the kernels, CPU_CAPABILITY_AVX2 selects ATen's AVX2 Vectorized specialisations.
set(_row_kernels_src "${CMAKE_CURRENT_SOURCE_DIR}/cpp/src/isa/row_kernels_isa.cpp")

function(attnscope_row_kernels capability)
  set(target attnscope_row_kernels_${capability})
  add_library(${target} OBJECT "${_row_kernels_src}")
  target_link_libraries(${target} PRIVATE torch)
  target_compile_definitions(${target} PRIVATE CPU_CAPABILITY=${capability} CPU_CAPABILITY_${capability})
  target_compile_options(${target} PRIVATE -O3 -Wall -Wextra -Wno-unused-parameter ${ARGN})
  target_sources(attnscope_core PRIVATE $<TARGET_OBJECTS:${target}>)
endfunction()

attnscope_row_kernels(DEFAULT)
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$" AND CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
  attnscope_row_kernels(AVX2 -mavx2 -mfma -mbmi -mbmi2 -mf16c)
  attnscope_row_kernels(AVX512 -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma)
  target_compile_definitions(attnscope_core PRIVATE ATTNSCOPE_HAVE_AVX2_KERNELS ATTNSCOPE_HAVE_AVX512_KERNELS)
endif()
