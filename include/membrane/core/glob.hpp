// Shell-style glob matching of names and paths: `*` (any run of characters, '/' included), `?` (one
// character) and `[a-z]` / `[!a-z]` sets. A `[` without its `]` matches itself. Linear in the text
// for each star it backtracks to, never recursive.
#pragma once

#include <string_view>

namespace membrane::core {

bool glob_match(std::string_view pattern, std::string_view text);

}  // namespace membrane::core
