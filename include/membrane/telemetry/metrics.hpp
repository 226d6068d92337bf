// Prometheus metrics: counters, gauges and histograms with labels, rendered in the text
// exposition format (version 0.0.4) for /metrics on the admin listener. Families are declared at
// start-up; recording is thread-safe (a short lock per family) and never allocates once a label
// set has been seen.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace membrane::telemetry {

using Labels = std::vector<std::pair<std::string_view, std::string_view>>;

class Metrics {
 public:
  void declare_counter(std::string name, std::string help);
  void declare_gauge(std::string name, std::string help);
  void declare_histogram(std::string name, std::string help, std::vector<double> buckets);
  // A gauge read when /metrics is scraped.
  void declare_gauge_function(std::string name, std::string help, std::function<double()> read);
  // A counter kept elsewhere (a total that only grows), read when /metrics is scraped.
  void declare_counter_function(std::string name, std::string help, std::function<double()> read);
  // The same with one series per label value, e.g. {limit="connections"}: every series is
  // exposed from the start, at 0 until something happens.
  void declare_counter_functions(
      std::string name, std::string help, std::string label,
      std::vector<std::pair<std::string, std::function<double()>>> series);

  void add(std::string_view counter, const Labels& labels, double amount = 1);
  void set(std::string_view gauge, const Labels& labels, double value);
  void observe(std::string_view histogram, const Labels& labels, double value);

  std::string exposition() const;

 private:
  struct Series {
    double value = 0;
    std::vector<std::uint64_t> buckets;  // histogram: cumulative counts per upper bound
    double sum = 0;
    std::uint64_t count = 0;
  };
  struct Family {
    std::string type;
    std::string help;
    std::vector<double> bounds;
    std::function<double()> read;
    std::vector<std::pair<std::string, std::function<double()>>> labeled_reads;  // rendered labels
    mutable std::mutex mutex;
    std::map<std::string, Series, std::less<>> series;  // by rendered label set
  };
  Family* family(std::string_view name) const;
  void declare(std::string name, std::string type, std::string help, std::vector<double> bounds,
               std::function<double()> read);

  std::map<std::string, std::unique_ptr<Family>, std::less<>> families_;
};

// Prometheus label value escaping: backslash, double quote and newline.
std::string render_labels(const Labels& labels);

}  // namespace membrane::telemetry
