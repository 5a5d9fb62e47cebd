# Eigen3 comes from a package, never vendored: Debian's libeigen3-dev (/usr/share/eigen3/cmake) or PyPI's
# cmeel-eigen (its CMake files live under the Python prefix in cmeel.prefix).
find_package(Eigen3 3.3 CONFIG QUIET NO_MODULE)
if(NOT Eigen3_FOUND)
  execute_process(
    COMMAND "${Python_EXECUTABLE}" -c "import cmeel, sys; print(cmeel.__path__[0] if hasattr(cmeel, '__path__') else '')"
    OUTPUT_VARIABLE _attnscope_cmeel OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  execute_process(
    COMMAND "${Python_EXECUTABLE}" -c "import sysconfig, os; print(os.path.join(sysconfig.get_paths()['purelib'], 'cmeel.prefix'))"
    OUTPUT_VARIABLE _attnscope_cmeel_prefix OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  find_package(Eigen3 3.3 CONFIG NO_MODULE PATHS "${_attnscope_cmeel_prefix}")
endif()
if(NOT Eigen3_FOUND)
  message(FATAL_ERROR "Eigen3 not found: install Debian's libeigen3-dev or `pip install cmeel-eigen`")
endif()
message(STATUS "attnscope: Eigen ${Eigen3_VERSION}")
