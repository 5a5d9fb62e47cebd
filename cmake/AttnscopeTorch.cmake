# Finds the Torch that the running Python imports, so the extension matches it exactly.
find_package(Python 3.9 REQUIRED COMPONENTS Interpreter Development.Module)

execute_process(
  COMMAND "${Python_EXECUTABLE}" -c "import torch, torch.utils; print(torch.utils.cmake_prefix_path); print(torch.__version__)"
  OUTPUT_VARIABLE _attnscope_torch_out
  RESULT_VARIABLE _attnscope_torch_rc
  OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT _attnscope_torch_rc EQUAL 0)
  message(FATAL_ERROR
    "attnscope needs torch installed in ${Python_EXECUTABLE} before it is built.\n"
    "Install it first (pip install torch==2.13.0), then build with: pip install --no-build-isolation .")
endif()
string(REPLACE "\n" ";" _attnscope_torch_out "${_attnscope_torch_out}")
list(GET _attnscope_torch_out 0 _attnscope_torch_prefix)
list(GET _attnscope_torch_out 1 ATTNSCOPE_TORCH_VERSION)
list(APPEND CMAKE_PREFIX_PATH "${_attnscope_torch_prefix}")

# TorchConfig warns about kineto on CPU builds; the warning is harmless.
find_package(Torch REQUIRED CONFIG)
message(STATUS "attnscope: torch ${ATTNSCOPE_TORCH_VERSION} from ${TORCH_INSTALL_PREFIX}, flags '${TORCH_CXX_FLAGS}'")

# TorchConfig adds TORCH_CXX_FLAGS (the C++11 ABI define) to the `torch` target's interface; every target
# linking torch gets it. torch_python is not part of TORCH_LIBRARIES: find it beside libtorch.
find_library(TORCH_PYTHON_LIBRARY torch_python PATHS "${TORCH_INSTALL_PREFIX}/lib" NO_DEFAULT_PATH REQUIRED)
