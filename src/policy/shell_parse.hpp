// A POSIX-shell reader for policy views: what a command line would run, not what it prints. It
// splits a script into pipelines of simple commands, removes quotes, and sets aside what the shell
// would run on its own (command and process substitutions, here-documents) for the caller to read
// in turn. It never expands variables or globs and never fails: odd input yields odd words.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace membrane::policy::shell {

struct Redirect {
  std::string op;      // ">", ">>", "<", ">&", "<<<", …
  std::string target;  // the word after it, quotes removed
};

struct SimpleCommand {
  std::vector<std::string> words;  // quotes removed; substitutions stand as "$(…)"
  std::vector<Redirect> redirects;
  std::string stdin_text;                  // a here-document's or here-string's text
  bool stdin_is_heredoc = false;           // stdin_text came from << (else <<<)
  std::vector<std::string> substitutions;  // $(…), `…`, <(…), >(…) bodies: scripts of their own
};

struct Pipeline {
  std::vector<SimpleCommand> commands;  // a | b | c
};

struct Script {
  std::vector<Pipeline> pipelines;  // separated by ; && || & newlines and ( )
  bool truncated = false;           // more than `max_words` words: the rest was not read
};

Script parse(std::string_view text, std::size_t max_words = 4096);

}  // namespace membrane::policy::shell
