#include "policy/shell_parse.hpp"

#include <cctype>
#include <optional>

namespace membrane::policy::shell {
namespace {

bool is_blank(char c) {
  return c == ' ' || c == '\t' || c == '\r';
}

bool all_digits(std::string_view text) {
  if (text.empty()) return false;
  for (const char c : text) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

class Reader {
 public:
  Reader(std::string_view text, std::size_t max_words) : text_(text), max_words_(max_words) {}

  Script read() {
    while (pos_ < text_.size() && !script_.truncated)
      step();
    end_pipeline();
    return std::move(script_);
  }

 private:
  // Where a here-document's text goes once its line ends: the command it was written on.
  struct PendingHeredoc {
    std::string delimiter;
    bool strip_tabs = false;
    std::size_t pipeline = 0;
    std::size_t command = 0;
  };

  void step() {
    const char c = text_[pos_];
    if (is_blank(c)) {
      end_word();
      ++pos_;
      return;
    }
    if (c == '\n') {
      end_word();
      ++pos_;
      end_pipeline();
      read_heredocs();
      return;
    }
    if (c == '#' && !in_word_) {
      while (pos_ < text_.size() && text_[pos_] != '\n')
        ++pos_;
      return;
    }
    if (c == '\\') {
      if (pos_ + 1 < text_.size()) {
        if (text_[pos_ + 1] != '\n') append(text_[pos_ + 1]);
        pos_ += 2;
      } else {
        ++pos_;
      }
      return;
    }
    if (c == '\'') {
      in_word_ = true;
      const auto close = text_.find('\'', pos_ + 1);
      const auto end = close == std::string_view::npos ? text_.size() : close;
      word_.append(text_.substr(pos_ + 1, end - pos_ - 1));
      pos_ = end == text_.size() ? end : end + 1;
      return;
    }
    if (c == '"') {
      read_double_quoted();
      return;
    }
    if (c == '`') {
      in_word_ = true;
      read_backticks();
      return;
    }
    if (c == '$' && pos_ + 1 < text_.size() && text_[pos_ + 1] == '(') {
      read_dollar_paren();
      return;
    }
    if ((c == '<' || c == '>') && pos_ + 1 < text_.size() && text_[pos_ + 1] == '(' && !in_word_) {
      // Process substitution: its output (or input) is a file the command reads.
      pos_ += 1;
      in_word_ = true;
      substitution(balanced_body());
      word_ = "/dev/fd/63";
      return;
    }
    if (c == '|') {
      end_word();
      if (pos_ + 1 < text_.size() && text_[pos_ + 1] == '|') {
        pos_ += 2;
        end_pipeline();
      } else {
        pos_ += (pos_ + 1 < text_.size() && text_[pos_ + 1] == '&') ? 2 : 1;
        end_command();
      }
      return;
    }
    if (c == '&') {
      if (pos_ + 1 < text_.size() && text_[pos_ + 1] == '>') {
        end_word();
        const bool append_mode = pos_ + 2 < text_.size() && text_[pos_ + 2] == '>';
        pos_ += append_mode ? 3 : 2;
        pending_redirect_ = append_mode ? "&>>" : "&>";
        return;
      }
      end_word();
      pos_ += (pos_ + 1 < text_.size() && text_[pos_ + 1] == '&') ? 2 : 1;
      end_pipeline();
      return;
    }
    if (c == ';' || c == '(' || c == ')') {
      end_word();
      ++pos_;
      end_pipeline();
      return;
    }
    if (c == '<' || c == '>') {
      read_redirect_operator();
      return;
    }
    append(c);
    ++pos_;
  }

  void append(char c) {
    in_word_ = true;
    word_.push_back(c);
  }

  void read_double_quoted() {
    in_word_ = true;
    ++pos_;
    while (pos_ < text_.size() && text_[pos_] != '"') {
      const char c = text_[pos_];
      if (c == '\\' && pos_ + 1 < text_.size()) {
        const char next = text_[pos_ + 1];
        if (next == '$' || next == '`' || next == '"' || next == '\\') {
          word_.push_back(next);
          pos_ += 2;
          continue;
        }
        if (next == '\n') {
          pos_ += 2;
          continue;
        }
      }
      if (c == '$' && pos_ + 1 < text_.size() && text_[pos_ + 1] == '(') {
        read_dollar_paren();
        continue;
      }
      if (c == '`') {
        read_backticks();
        continue;
      }
      word_.push_back(c);
      ++pos_;
    }
    if (pos_ < text_.size()) ++pos_;
  }

  // At '`': the old form of command substitution, up to the next unescaped '`'.
  void read_backticks() {
    ++pos_;
    std::string body;
    while (pos_ < text_.size() && text_[pos_] != '`') {
      if (text_[pos_] == '\\' && pos_ + 1 < text_.size()) ++pos_;
      body.push_back(text_[pos_++]);
    }
    if (pos_ < text_.size()) ++pos_;
    substitution(std::move(body));
  }

  // At "$(": a command substitution, or "$((" arithmetic kept as text.
  void read_dollar_paren() {
    in_word_ = true;
    if (pos_ + 2 < text_.size() && text_[pos_ + 2] == '(') {
      const std::size_t start = pos_;
      pos_ += 1;
      balanced_body();
      word_.append(text_.substr(start, pos_ - start));
      return;
    }
    pos_ += 1;
    substitution(balanced_body());
  }

  // At '(': the text up to its matching ')', quotes respected; pos_ ends after it.
  std::string balanced_body() {
    ++pos_;
    const std::size_t start = pos_;
    int depth = 1;
    while (pos_ < text_.size()) {
      const char c = text_[pos_];
      if (c == '\\') {
        pos_ += 2;
        continue;
      }
      if (c == '\'' || c == '"') {
        const auto close = text_.find(c, pos_ + 1);
        pos_ = close == std::string_view::npos ? text_.size() : close + 1;
        continue;
      }
      if (c == '(') ++depth;
      if (c == ')' && --depth == 0) break;
      ++pos_;
    }
    const std::size_t end = pos_ < text_.size() ? pos_ : text_.size();
    std::string body(text_.substr(start, end - start));
    if (pos_ < text_.size()) ++pos_;
    return body;
  }

  void substitution(std::string body) {
    command_.substitutions.push_back(std::move(body));
    word_.append("$(…)");
  }

  void read_redirect_operator() {
    // "2>" and "2>&1": a word of digits just before the operator names a descriptor.
    if (in_word_ && all_digits(word_)) {
      word_.clear();
      in_word_ = false;
    } else {
      end_word();
    }
    std::string op(1, text_[pos_++]);
    while (pos_ < text_.size() && op.size() < 3 &&
           (text_[pos_] == '>' || text_[pos_] == '<' || text_[pos_] == '&' || text_[pos_] == '|' ||
            (op == "<<" && text_[pos_] == '-'))) {
      if (text_[pos_] == '|' && op != ">") break;
      op.push_back(text_[pos_++]);
    }
    pending_redirect_ = op;
  }

  void end_word() {
    if (!in_word_) return;
    in_word_ = false;
    std::string word = std::move(word_);
    word_.clear();
    if (!pending_redirect_.empty()) {
      std::string op = std::move(pending_redirect_);
      pending_redirect_.clear();
      if (op == "<<" || op == "<<-") {
        heredocs_.push_back(
            {word, op == "<<-", script_.pipelines.size(), pipeline_.commands.size()});
        command_.stdin_is_heredoc = true;
        return;
      }
      if (op == "<<<") {
        command_.stdin_text = word;
        command_.stdin_is_heredoc = false;
        return;
      }
      // "2>&1", ">&-": descriptors, not files.
      if ((op.ends_with("&")) && (all_digits(word) || word == "-")) return;
      command_.redirects.push_back({std::move(op), std::move(word)});
      return;
    }
    if (++words_ > max_words_) {
      script_.truncated = true;
      return;
    }
    command_.words.push_back(std::move(word));
  }

  void end_command() {
    end_word();
    pending_redirect_.clear();
    if (!command_.words.empty() || !command_.redirects.empty() || !command_.substitutions.empty() ||
        command_.stdin_is_heredoc || !command_.stdin_text.empty()) {
      pipeline_.commands.push_back(std::move(command_));
    }
    command_ = SimpleCommand{};
  }

  void end_pipeline() {
    end_command();
    if (!pipeline_.commands.empty()) script_.pipelines.push_back(std::move(pipeline_));
    pipeline_ = Pipeline{};
  }

  // After a newline: the bodies of the here-documents opened on the line just read.
  void read_heredocs() {
    for (auto& pending : heredocs_) {
      std::string body;
      while (pos_ < text_.size()) {
        auto line_end = text_.find('\n', pos_);
        if (line_end == std::string_view::npos) line_end = text_.size();
        std::string_view line = text_.substr(pos_, line_end - pos_);
        pos_ = line_end == text_.size() ? line_end : line_end + 1;
        if (pending.strip_tabs) {
          while (!line.empty() && line.front() == '\t')
            line.remove_prefix(1);
        }
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line == pending.delimiter) break;
        body.append(line);
        body.push_back('\n');
      }
      if (pending.pipeline < script_.pipelines.size() &&
          pending.command < script_.pipelines[pending.pipeline].commands.size()) {
        script_.pipelines[pending.pipeline].commands[pending.command].stdin_text = std::move(body);
      }
    }
    heredocs_.clear();
  }

  std::string_view text_;
  std::size_t max_words_;
  std::size_t pos_ = 0;
  std::size_t words_ = 0;
  Script script_;
  Pipeline pipeline_;
  SimpleCommand command_;
  std::string word_;
  bool in_word_ = false;
  std::string pending_redirect_;
  std::vector<PendingHeredoc> heredocs_;
};

}  // namespace

Script parse(std::string_view text, std::size_t max_words) {
  return Reader(text, max_words).read();
}

}  // namespace membrane::policy::shell
