#include "membrane/telemetry/metrics.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace membrane::telemetry {
namespace {

std::string number(double value) {
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (std::isnan(value)) return "NaN";
  // The shortest text that reads back as the same double: 0.1, not 0.10000000000000001.
  char text[32];
  std::snprintf(text, sizeof text, "%.15g", value);
  if (std::strtod(text, nullptr) != value) std::snprintf(text, sizeof text, "%.17g", value);
  return text;
}

std::string escape_help(std::string_view help) {
  std::string out;
  for (const char c : help) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out.push_back(c);
  }
  return out;
}

// `{a="1"}` + `le="0.5"` -> `{a="1",le="0.5"}`.
std::string with_label(const std::string& rendered, std::string_view name, std::string_view value) {
  const std::string extra = std::string(name) + "=\"" + std::string(value) + "\"";
  if (rendered.empty()) return "{" + extra + "}";
  return rendered.substr(0, rendered.size() - 1) + "," + extra + "}";
}

}  // namespace

std::string render_labels(const Labels& labels) {
  if (labels.empty()) return {};
  std::string out = "{";
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (i) out.push_back(',');
    out.append(labels[i].first);
    out += "=\"";
    for (const char c : labels[i].second) {
      if (c == '\\')
        out += "\\\\";
      else if (c == '"')
        out += "\\\"";
      else if (c == '\n')
        out += "\\n";
      else
        out.push_back(c);
    }
    out.push_back('"');
  }
  out.push_back('}');
  return out;
}

void Metrics::declare(std::string name, std::string type, std::string help,
                      std::vector<double> bounds, std::function<double()> read) {
  auto family = std::make_unique<Family>();
  family->type = std::move(type);
  family->help = std::move(help);
  family->bounds = std::move(bounds);
  family->read = std::move(read);
  families_.emplace(std::move(name), std::move(family));
}

void Metrics::declare_counter(std::string name, std::string help) {
  declare(std::move(name), "counter", std::move(help), {}, {});
}
void Metrics::declare_gauge(std::string name, std::string help) {
  declare(std::move(name), "gauge", std::move(help), {}, {});
}
void Metrics::declare_histogram(std::string name, std::string help, std::vector<double> buckets) {
  declare(std::move(name), "histogram", std::move(help), std::move(buckets), {});
}
void Metrics::declare_gauge_function(std::string name, std::string help,
                                     std::function<double()> read) {
  declare(std::move(name), "gauge", std::move(help), {}, std::move(read));
}

void Metrics::declare_counter_function(std::string name, std::string help,
                                       std::function<double()> read) {
  declare(std::move(name), "counter", std::move(help), {}, std::move(read));
}

void Metrics::declare_counter_functions(
    std::string name, std::string help, std::string label,
    std::vector<std::pair<std::string, std::function<double()>>> series) {
  auto family = std::make_unique<Family>();
  family->type = "counter";
  family->help = std::move(help);
  for (auto& [value, read] : series)
    family->labeled_reads.emplace_back(render_labels({{label, value}}), std::move(read));
  families_.emplace(std::move(name), std::move(family));
}

Metrics::Family* Metrics::family(std::string_view name) const {
  const auto it = families_.find(name);
  return it == families_.end() ? nullptr : it->second.get();
}

void Metrics::add(std::string_view counter, const Labels& labels, double amount) {
  Family* target = family(counter);
  if (!target) return;
  const std::string key = render_labels(labels);
  std::lock_guard lock(target->mutex);
  target->series[key].value += amount;
}

void Metrics::set(std::string_view gauge, const Labels& labels, double value) {
  Family* target = family(gauge);
  if (!target) return;
  const std::string key = render_labels(labels);
  std::lock_guard lock(target->mutex);
  target->series[key].value = value;
}

void Metrics::observe(std::string_view histogram, const Labels& labels, double value) {
  Family* target = family(histogram);
  if (!target) return;
  const std::string key = render_labels(labels);
  std::lock_guard lock(target->mutex);
  Series& series = target->series[key];
  if (series.buckets.empty()) series.buckets.assign(target->bounds.size(), 0);
  for (std::size_t i = 0; i < target->bounds.size(); ++i) {
    if (value <= target->bounds[i]) ++series.buckets[i];
  }
  series.sum += value;
  ++series.count;
}

std::string Metrics::exposition() const {
  std::string out;
  for (const auto& [name, family] : families_) {
    out += "# HELP " + name + " " + escape_help(family->help) + "\n";
    out += "# TYPE " + name + " " + family->type + "\n";
    if (family->read) {
      out += name + " " + number(family->read()) + "\n";
      continue;
    }
    for (const auto& [labels, read] : family->labeled_reads)
      out += name + labels + " " + number(read()) + "\n";
    std::lock_guard lock(family->mutex);
    for (const auto& [labels, series] : family->series) {
      if (family->type != "histogram") {
        out += name + labels + " " + number(series.value) + "\n";
        continue;
      }
      for (std::size_t i = 0; i < family->bounds.size(); ++i) {
        out += name + "_bucket" + with_label(labels, "le", number(family->bounds[i])) + " " +
               std::to_string(series.buckets[i]) + "\n";
      }
      out += name + "_bucket" + with_label(labels, "le", "+Inf") + " " +
             std::to_string(series.count) + "\n";
      out += name + "_sum" + labels + " " + number(series.sum) + "\n";
      out += name + "_count" + labels + " " + std::to_string(series.count) + "\n";
    }
  }
  return out;
}

}  // namespace membrane::telemetry
