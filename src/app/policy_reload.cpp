#include "app/policy_reload.hpp"

#include <signal.h>

#include <boost/asio/signal_set.hpp>

#include <filesystem>
#include <optional>

#include "membrane/core/log.hpp"

namespace membrane::app {
namespace {

// What the policy files look like on disk: paths with their sizes and modification times.
std::string fingerprint(const std::vector<std::string>& paths) {
  std::string out;
  const auto add = [&out](const std::filesystem::path& file) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(file, ec);
    const auto time = std::filesystem::last_write_time(file, ec);
    out += file.string();
    out += '|' + std::to_string(ec ? 0 : size) + '|' +
           std::to_string(ec ? 0 : time.time_since_epoch().count()) + '\n';
  };
  try {
    for (const auto& file : policy::Policy::source_files(paths))
      add(file);
  } catch (const policy::PolicyError& error) {
    out += error.what();  // a directory that cannot be listed now: reload reports it
  }
  return out;
}

void reload(const PolicySource& source, gateway::PolicyFilterFactory& policy_filter,
            std::string_view why) {
  try {
    auto next = load_policy(source);
    const auto rules = next->rule_count();
    // Both or neither: a bad pins file keeps the previous rules and pins.
    std::optional<mcp::ToolPins> pins;
    if (!source.pins.empty()) pins = mcp::read_pins_file(source.pins);
    policy_filter.replace(std::move(next));
    if (pins) policy_filter.catalog().replace_file_pins(std::move(*pins));
    log::info("policy reloaded (", why, "): ", rules, " rules");
  } catch (const std::exception& error) {
    log::error("policy reload (", why,
               ") failed; the previous policy stays in force: ", error.what());
  }
}

}  // namespace

std::shared_ptr<const policy::Policy> load_policy(const PolicySource& source) {
  auto loaded = std::make_shared<const policy::Policy>(
      policy::Policy::load(source.paths, source.default_verdict));
  if (loaded->empty() && source.default_verdict == policy::Verdict::allow && !source.allow_empty) {
    std::string where;
    for (const auto& path : source.paths)
      where += (where.empty() ? "" : ", ") + path;
    throw policy::PolicyError(
        where +
        ": no policy rules or limits found, which would allow every call; add rules, "
        "set policy.default_verdict: deny, or set policy.allow_empty: true if an empty "
        "policy is meant");
  }
  return loaded;
}

awaitable<void> reload_policy_on_signal(asio::any_io_executor executor, PolicySource source,
                                        gateway::PolicyFilterFactory& policy_filter,
                                        std::shared_ptr<bool> stopped) {
  asio::signal_set hangup(executor, SIGHUP);
  while (!*stopped) {
    auto [ec, signal_number] = co_await hangup.async_wait(use_nothrow);
    if (ec || *stopped) co_return;
    reload(source, policy_filter, "SIGHUP");
  }
}

awaitable<void> reload_policy_on_change(PolicySource source,
                                        gateway::PolicyFilterFactory& policy_filter,
                                        std::shared_ptr<bool> stopped) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  auto watched = source.paths;
  if (!source.pins.empty()) watched.push_back(source.pins);
  std::string last = fingerprint(watched);
  while (!*stopped) {
    timer.expires_after(std::chrono::seconds(1));
    co_await timer.async_wait(use_nothrow);
    if (*stopped) co_return;
    std::string now = fingerprint(watched);
    if (now == last) continue;
    last = std::move(now);
    reload(source, policy_filter, "files changed");
  }
}

}  // namespace membrane::app
