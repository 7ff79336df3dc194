// One error type for the whole engine: every failure a user can cause (a bad file, a bad argument)
// is thrown as hcattn::Error with a message that says what failed and what to do.
#pragma once
#include <stdexcept>
#include <string>

namespace hcattn {

struct Error : std::runtime_error {
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace hcattn
