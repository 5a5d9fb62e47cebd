#include "attnscope/build_info.h"

#include <ATen/Parallel.h>
#include <Eigen/Core>

#include <string>

#include "row_kernels.h"

namespace attnscope {

std::map<std::string, std::string> build_info() {
  std::map<std::string, std::string> info;
#ifdef ATTNSCOPE_TORCH_VERSION_STR
  info["torch_version"] = ATTNSCOPE_TORCH_VERSION_STR;
#endif
#if defined(__clang__)
  info["compiler"] = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  info["compiler"] = std::string("gcc ") + __VERSION__;
#else
  info["compiler"] = "unknown";
#endif
  info["eigen_version"] = std::to_string(EIGEN_WORLD_VERSION) + "." + std::to_string(EIGEN_MAJOR_VERSION) + "." +
                          std::to_string(EIGEN_MINOR_VERSION);
  info["cplusplus"] = std::to_string(__cplusplus);
  info["parallel_backend"] = at::get_parallel_info();
  info["attention_kernels"] = attention_kernels_isa();
  // Whether the core's own at::parallel_for loops run on several threads: they do only when the core is compiled
  // with OpenMP (the pragma is in ATen's header template); PyTorch's backend says nothing about it.
#ifdef _OPENMP
  info["core_openmp"] = std::to_string(_OPENMP);
#else
  info["core_openmp"] = "off";
#endif
  return info;
}

}  // namespace attnscope
