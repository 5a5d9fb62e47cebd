// What the extension was built with, for attnscope.show_config().
#pragma once

#include <map>
#include <string>

namespace attnscope {

std::map<std::string, std::string> build_info();

}  // namespace attnscope
