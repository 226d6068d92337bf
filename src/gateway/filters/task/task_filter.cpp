#include "gateway/filters/task/task_filter.hpp"

#include "membrane/core/json.hpp"

namespace membrane::gateway {
namespace {

// A task id or status is the client's or server's text: bounded before it is recorded.
constexpr std::size_t max_task_id = 256;
constexpr std::size_t max_task_status = 64;

class TaskFilter final : public Filter {
 public:
  FilterStep on_request(Exchange& exchange) override {
    const auto* params = exchange.message->params();
    if (!exchange.message->method().starts_with("tasks/") || !params || !params->is_object())
      return FilterStep::proceed();
    if (const auto id = params->find("taskId"); id != params->end() && id->is_string())
      exchange.task.id = id->get<std::string>().substr(0, max_task_id);
    return FilterStep::proceed();
  }

  void on_upstream_message(Exchange& exchange, std::string& message) override {
    // Most answers are no task's: the parse is only for one that names a task.
    if (message.find("\"taskId\"") == std::string::npos) return;
    const auto parsed = json::parse_or_discarded(message);
    if (!parsed.is_object() || parsed.value("id", mcp::Json()) != exchange.message->id()) return;
    const auto result = parsed.find("result");
    if (result == parsed.end() || !result->is_object()) return;
    // 2025-11-25 wraps the task in `task`; the 2026-07-28 extension answers with the task itself.
    const auto wrapped = result->find("task");
    const mcp::Json& task = wrapped != result->end() && wrapped->is_object() ? *wrapped : *result;
    const auto id = task.find("taskId");
    if (id == task.end() || !id->is_string()) return;
    if (exchange.task.id.empty()) exchange.task.id = id->get<std::string>().substr(0, max_task_id);
    if (const auto status = task.find("status"); status != task.end() && status->is_string())
      exchange.task.status = status->get<std::string>().substr(0, max_task_status);
  }
};

}  // namespace

std::unique_ptr<Filter> TaskFilterFactory::make(const Exchange& exchange) const {
  if (!exchange.message || !exchange.message->is_request()) return nullptr;
  const auto method = exchange.message->method();
  if (method != "tools/call" && !method.starts_with("tasks/")) return nullptr;
  return std::make_unique<TaskFilter>();
}

}  // namespace membrane::gateway
