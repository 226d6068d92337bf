// The console's static files (src/console/assets), compiled into the binary by
// cmake/embed_assets.cmake.
#pragma once

#include <span>
#include <string_view>

namespace membrane::console {

struct Asset {
  std::string_view name;  // the file's name: index.html, console.js, ...
  std::string_view content_type;
  std::string_view bytes;
};

std::span<const Asset> assets();

}  // namespace membrane::console
