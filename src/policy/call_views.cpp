// How the views are found: each argument gets a role (path, command, code, URL, free text) from
// the tool's inputSchema (property name, format, description), from the tool's own name (a shell
// tool's strings are commands), or from the value's shape; commands are read as a shell would
// read them (shell_parse), wrappers and `sh -c` unwrapped, inline code and base64 payloads fed to
// an interpreter set aside as code, and every path and URL they name collected on the way.
#include "policy/call_views.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <optional>
#include <unordered_map>

#include "membrane/core/ascii.hpp"
#include "policy/shell_parse.hpp"

namespace membrane::policy {
namespace {

// Bounds: a call is untrusted input. Past any of them the views are marked incomplete.
constexpr std::size_t max_values_per_view = 4096;
constexpr int max_json_depth = 32;
constexpr int max_script_depth = 6;                      // sh -c "sh -c …", $(…), decoded
constexpr std::size_t max_analyzed_bytes = 1024 * 1024;  // commands and code, per call
constexpr std::size_t max_path_length = 4096;
constexpr std::size_t max_downloads = 64;  // files a call's commands download to

// "file_path", "filePath", "FILE-PATH" -> "filepath"
std::string squashed_key(std::string_view key) {
  std::string out;
  out.reserve(key.size());
  for (const char c : key) {
    if (c == '_' || c == '-' || c == '.' || c == ' ') continue;
    out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  return out;
}

// "start_process" -> {"start", "process"}; "runCommand" -> {"run", "command"}.
std::vector<std::string> name_tokens(std::string_view name) {
  std::vector<std::string> tokens;
  std::string current;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool upper = std::isupper(static_cast<unsigned char>(c));
    if (!std::isalnum(static_cast<unsigned char>(c)) ||
        (upper && !current.empty() && i > 0 &&
         std::islower(static_cast<unsigned char>(name[i - 1])))) {
      if (!current.empty()) tokens.push_back(std::move(current));
      current.clear();
      if (!std::isalnum(static_cast<unsigned char>(c))) continue;
    }
    current.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  if (!current.empty()) tokens.push_back(std::move(current));
  return tokens;
}

template <std::size_t N>
bool one_of(std::string_view text, const std::array<std::string_view, N>& set) {
  return std::find(set.begin(), set.end(), text) != set.end();
}

bool contains_word(std::string_view haystack_lower, std::string_view word) {
  std::size_t at = 0;
  while ((at = haystack_lower.find(word, at)) != std::string_view::npos) {
    const bool start_ok =
        at == 0 || !std::isalnum(static_cast<unsigned char>(haystack_lower[at - 1]));
    const std::size_t end = at + word.size();
    const bool end_ok = end >= haystack_lower.size() ||
                        !std::isalnum(static_cast<unsigned char>(haystack_lower[end]));
    if (start_ok && end_ok) return true;
    at = end;
  }
  return false;
}

enum class Role { unknown, path, command, code, url, text };

constexpr std::array<std::string_view, 34> path_keys = {"path",
                                                        "paths",
                                                        "file",
                                                        "files",
                                                        "filename",
                                                        "filenames",
                                                        "filepath",
                                                        "filepaths",
                                                        "dir",
                                                        "dirs",
                                                        "directory",
                                                        "directories",
                                                        "folder",
                                                        "folders",
                                                        "cwd",
                                                        "workdir",
                                                        "workingdir",
                                                        "workingdirectory",
                                                        "source",
                                                        "destination",
                                                        "src",
                                                        "dst",
                                                        "dest",
                                                        "root",
                                                        "notebookpath",
                                                        "target",
                                                        "targetpath",
                                                        "sourcepath",
                                                        "destinationpath",
                                                        "outputpath",
                                                        "inputpath",
                                                        "location",
                                                        "mountpath",
                                                        "hostpath"};
constexpr std::array<std::string_view, 14> command_keys = {
    "command", "commands", "cmd",        "cmds",  "argv",        "shellcommand", "commandline",
    "run",     "exec",     "entrypoint", "shell", "bashcommand", "cmdline",      "commandargs"};
constexpr std::array<std::string_view, 7> code_keys = {
    "code", "script", "sourcecode", "snippet", "program", "scripts", "function"};
constexpr std::array<std::string_view, 11> url_keys = {
    "url",      "uri",     "urls",    "uris",       "href",       "link",
    "endpoint", "webhook", "baseurl", "webhookurl", "callbackurl"};
constexpr std::array<std::string_view, 26> text_keys = {
    "content", "contents", "text",         "body",      "message",  "messages", "description",
    "query",   "pattern",  "prompt",       "comment",   "comments", "title",    "summary",
    "note",    "notes",    "newstring",    "oldstring", "newtext",  "oldtext",  "replacement",
    "search",  "thought",  "observations", "name",      "label"};
constexpr std::array<std::string_view, 5> language_keys = {"language", "lang", "interpreter",
                                                           "runtime", "kernel"};

// Every key name above, by squashed name: one lookup per argument instead of a hundred compares.
const std::unordered_map<std::string_view, Role>& roles_by_key() {
  static const auto table = [] {
    std::unordered_map<std::string_view, Role> roles;
    // Later inserts do not overwrite: the first list a name appears in decides (text first).
    for (const auto key : text_keys)
      roles.emplace(key, Role::text);
    for (const auto key : language_keys)
      roles.emplace(key, Role::text);
    for (const auto key : command_keys)
      roles.emplace(key, Role::command);
    for (const auto key : code_keys)
      roles.emplace(key, Role::code);
    for (const auto key : url_keys)
      roles.emplace(key, Role::url);
    for (const auto key : path_keys)
      roles.emplace(key, Role::path);
    return roles;
  }();
  return table;
}

Role role_of_key(std::string_view squashed) {
  if (const auto known = roles_by_key().find(squashed); known != roles_by_key().end())
    return known->second;
  if (squashed.ends_with("url") || squashed.ends_with("uri") || squashed.ends_with("urls"))
    return Role::url;
  if (squashed.ends_with("path") || squashed.ends_with("paths") || squashed.ends_with("file") ||
      squashed.ends_with("dir") || squashed.ends_with("directory") ||
      squashed.ends_with("filename"))
    return Role::path;
  if (squashed.ends_with("command")) return Role::command;
  return Role::unknown;
}

Role role_of_schema(const Json* schema) {
  if (!schema || !schema->is_object()) return Role::unknown;
  if (const auto format = schema->find("format"); format != schema->end() && format->is_string()) {
    const auto& text = format->get_ref<const std::string&>();
    if (text == "uri" || text == "url" || text == "iri" || text == "uri-reference")
      return Role::url;
    if (text == "path" || text == "file-path" || text == "filepath") return Role::path;
  }
  const auto description = schema->find("description");
  if (description == schema->end() || !description->is_string()) return Role::unknown;
  const std::string text = ascii::lower(description->get_ref<const std::string&>().substr(0, 512));
  if (contains_word(text, "shell command") || contains_word(text, "command to run") ||
      contains_word(text, "command to execute") || contains_word(text, "command line") ||
      contains_word(text, "bash command"))
    return Role::command;
  if (contains_word(text, "code to run") || contains_word(text, "code to execute") ||
      contains_word(text, "script to run") || contains_word(text, "script to execute"))
    return Role::code;
  if (contains_word(text, "url") || contains_word(text, "uri")) return Role::url;
  if (contains_word(text, "path") || contains_word(text, "file") ||
      contains_word(text, "directory") || contains_word(text, "folder"))
    return Role::path;
  return Role::unknown;
}

// The schema of member `key` of an object described by `schema`.
const Json* member_schema(const Json* schema, const std::string& key) {
  if (!schema || !schema->is_object()) return nullptr;
  if (const auto properties = schema->find("properties");
      properties != schema->end() && properties->is_object()) {
    if (const auto found = properties->find(key); found != properties->end()) return &*found;
  }
  if (const auto additional = schema->find("additionalProperties");
      additional != schema->end() && additional->is_object())
    return &*additional;
  return nullptr;
}

const Json* items_schema(const Json* schema) {
  if (!schema || !schema->is_object()) return nullptr;
  const auto items = schema->find("items");
  return items != schema->end() && items->is_object() ? &*items : nullptr;
}

std::string_view basename_of(std::string_view program) {
  const auto slash = program.rfind('/');
  if (slash != std::string_view::npos) program.remove_prefix(slash + 1);
  const auto backslash = program.rfind('\\');
  if (backslash != std::string_view::npos) program.remove_prefix(backslash + 1);
  if (program.size() > 4) {
    const std::string tail = ascii::lower(program.substr(program.size() - 4));
    if (tail == ".exe") program.remove_suffix(4);
  }
  return program;
}

constexpr std::array<std::string_view, 12> shells = {
    "sh", "bash", "zsh", "dash", "ksh", "ash", "mksh", "fish", "csh", "tcsh", "yash", "rbash"};
bool is_shell(std::string_view program) {
  return one_of(program, shells);
}

// Interpreters and the option that introduces inline code.
struct Interpreter {
  std::string_view prefix;  // "python" matches python, python3, python3.12
  std::array<std::string_view, 4> inline_flags;
};
constexpr std::array<Interpreter, 14> interpreters = {{
    {"python", {"-c", "", "", ""}},
    {"pypy", {"-c", "", "", ""}},
    {"node", {"-e", "--eval", "-p", "--print"}},
    {"nodejs", {"-e", "--eval", "-p", "--print"}},
    {"bun", {"-e", "--eval", "-p", "--print"}},
    {"deno", {"eval", "-e", "", ""}},
    {"perl", {"-e", "-E", "", ""}},
    {"ruby", {"-e", "", "", ""}},
    {"php", {"-r", "", "", ""}},
    {"lua", {"-e", "", "", ""}},
    {"osascript", {"-e", "", "", ""}},
    {"rscript", {"-e", "", "", ""}},
    {"pwsh", {"-c", "-command", "", ""}},
    {"powershell", {"-c", "-command", "", ""}},
}};

const Interpreter* interpreter_of(std::string_view program) {
  const std::string name = ascii::lower(program);
  for (const auto& interpreter : interpreters) {
    if (!name.starts_with(interpreter.prefix)) continue;
    const std::string_view rest = std::string_view(name).substr(interpreter.prefix.size());
    if (std::all_of(rest.begin(), rest.end(),
                    [](char c) { return std::isdigit(static_cast<unsigned char>(c)) || c == '.'; }))
      return &interpreter;
  }
  return nullptr;
}

bool is_powershell(std::string_view program) {
  const std::string name = ascii::lower(program);
  return name == "pwsh" || name == "powershell";
}

// A fetcher's long options that take a value (the value is not a URL to fetch).
constexpr std::array<std::string_view, 20> fetch_value_options = {
    "--output",      "--output-document", "--data",    "--data-binary",
    "--data-raw",    "--data-urlencode",  "--header",  "--request",
    "--user",        "--user-agent",      "--referer", "--form",
    "--upload-file", "--write-out",       "--config",  "--cookie",
    "--cookie-jar",  "--max-time",        "--range",   "--post-file"};

// Programs that run the rest of their words as another command.
constexpr std::array<std::string_view, 16> wrappers = {
    "sudo", "doas",    "env",     "nohup",  "time",   "nice",  "ionice",  "timeout",
    "exec", "command", "builtin", "stdbuf", "setsid", "xargs", "busybox", "unbuffer"};
constexpr std::array<std::string_view, 17> reserved_words = {
    "if",  "then", "else", "elif", "fi",       "do", "done", "while", "until",
    "for", "case", "esac", "in",   "function", "{",  "}",    "!"};

bool is_assignment(std::string_view word) {
  const auto equals = word.find('=');
  if (equals == std::string_view::npos || equals == 0) return false;
  for (std::size_t i = 0; i < equals; ++i) {
    const char c = word[i];
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  }
  return !std::isdigit(static_cast<unsigned char>(word.front()));
}

// Options of a wrapper that take the next word as their value.
bool wrapper_option_takes_value(std::string_view wrapper, std::string_view option) {
  if (wrapper == "sudo" || wrapper == "doas")
    return option == "-u" || option == "-g" || option == "-C" || option == "-D" || option == "-h" ||
           option == "-p" || option == "-r" || option == "-t" || option == "-U" ||
           option == "--user" || option == "--group";
  if (wrapper == "env") return option == "-u" || option == "-C" || option == "--unset";
  if (wrapper == "nice" || wrapper == "ionice") return option == "-n" || option == "-c";
  if (wrapper == "timeout") return option == "-s" || option == "-k" || option == "--signal";
  if (wrapper == "xargs")
    return option == "-I" || option == "-n" || option == "-P" || option == "-d" || option == "-L" ||
           option == "-s" || option == "-E" || option == "-a";
  if (wrapper == "exec") return option == "-a";
  return false;
}

// Base64 text of at least `min_size` symbols (an explicit decoder in front needs fewer to be sure).
bool looks_base64(std::string_view text, std::size_t min_size = 16) {
  if (text.size() < min_size) return false;
  std::size_t symbols = 0;
  for (const char c : text) {
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/' || c == '-' ||
        c == '_') {
      ++symbols;
    } else if (c != '=' && c != '\n' && c != '\r' && c != ' ') {
      return false;
    }
  }
  return symbols >= min_size;
}

std::optional<std::string> decode_base64(std::string_view text) {
  std::string out;
  std::uint32_t buffer = 0;
  int bits = 0;
  for (const char c : text) {
    int value = -1;
    if (c >= 'A' && c <= 'Z')
      value = c - 'A';
    else if (c >= 'a' && c <= 'z')
      value = c - 'a' + 26;
    else if (c >= '0' && c <= '9')
      value = c - '0' + 52;
    else if (c == '+' || c == '-')
      value = 62;
    else if (c == '/' || c == '_')
      value = 63;
    else if (c == '=' || c == '\n' || c == '\r' || c == ' ')
      continue;
    else
      return std::nullopt;
    buffer = (buffer << 6) | static_cast<std::uint32_t>(value);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buffer >> bits) & 0xFF));
    }
  }
  // PowerShell's -EncodedCommand is UTF-16LE: ASCII text then has a zero after every byte.
  if (out.size() >= 4 && out.size() % 2 == 0) {
    bool utf16 = true;
    for (std::size_t i = 1; i < out.size(); i += 2) {
      if (out[i] != '\0') {
        utf16 = false;
        break;
      }
    }
    if (utf16) {
      std::string narrow;
      for (std::size_t i = 0; i < out.size(); i += 2)
        narrow.push_back(out[i]);
      out = std::move(narrow);
    }
  }
  // Text, not bytes: a decoded payload that is to run is a script.
  std::size_t printable = 0;
  for (const char c : out) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 || c == '\n' || c == '\t' || c == '\r') ++printable;
  }
  if (out.empty() || printable * 10 < out.size() * 9) return std::nullopt;
  return out;
}

bool looks_hex(std::string_view text) {
  std::size_t digits = 0;
  for (const char c : text) {
    if (std::isxdigit(static_cast<unsigned char>(c)))
      ++digits;
    else if (c != '\n' && c != ' ' && c != '\r')
      return false;
  }
  return digits >= 4 && digits % 2 == 0;
}

// `xxd -r -p`: hex pairs back to bytes, kept only when they are text.
std::optional<std::string> decode_hex(std::string_view text) {
  std::string out;
  int high = -1;
  for (const char c : text) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) continue;
    const int value = ascii::hex_value(c);
    if (high < 0) {
      high = value;
    } else {
      out.push_back(static_cast<char>(high * 16 + value));
      high = -1;
    }
  }
  for (const char c : out) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 && c != '\n' && c != '\t' && c != '\r') return std::nullopt;
  }
  if (out.empty()) return std::nullopt;
  return out;
}

std::string percent_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() &&
        std::isxdigit(static_cast<unsigned char>(text[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(text[i + 2]))) {
      out.push_back(static_cast<char>(std::stoi(std::string(text.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

bool has_url_scheme(std::string_view text) {
  const auto colon = text.find("://");
  if (colon == std::string_view::npos || colon == 0 || colon > 16) return false;
  if (!std::isalpha(static_cast<unsigned char>(text.front()))) return false;
  for (std::size_t i = 0; i < colon; ++i) {
    const char c = text[i];
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.'))
      return false;
  }
  return true;
}

bool is_file_url(std::string_view text) {
  return text.size() > 5 && ascii::lower(text.substr(0, 5)) == "file:";
}

bool has_space(std::string_view text) {
  return std::any_of(text.begin(), text.end(),
                     [](char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; });
}

// A string that reads as a path: absolute, home-relative, explicitly relative, a dotfile, a
// drive path, or a word with a slash in it.
bool path_shaped(std::string_view text, bool spaces_allowed) {
  if (text.empty() || text.size() > max_path_length) return false;
  if (text.find('\n') != std::string_view::npos || text.find('\0') != std::string_view::npos)
    return false;
  if (has_url_scheme(text)) return false;
  if (is_file_url(text)) return true;
  if (text.front() == '/' || text.front() == '~' || text.starts_with("$HOME") ||
      text.starts_with("${HOME}") || text == "." || text == ".." || text.starts_with("./") ||
      text.starts_with("../"))
    return spaces_allowed || !has_space(text) || text.front() == '/' || text.front() == '~';
  if (text.size() >= 3 && std::isalpha(static_cast<unsigned char>(text[0])) && text[1] == ':' &&
      (text[2] == '\\' || text[2] == '/'))
    return true;
  if (!spaces_allowed && has_space(text)) return false;
  if (text.front() == '.' && text.size() > 1 && std::isalnum(static_cast<unsigned char>(text[1])))
    return true;
  if (text.front() == '-' || text.find('=') != std::string_view::npos) return false;
  // "$X/.ssh/id_rsa", "$(…)/.ssh/id_rsa": an unknown directory, then a path.
  return text.find('/') != std::string_view::npos;
}

// inet_aton's spellings: 1 to 4 parts, each decimal, octal (leading 0) or hex (0x).
std::optional<std::uint32_t> parse_ipv4(std::string_view host) {
  if (host.empty() || host.size() > 64) return std::nullopt;
  std::array<std::uint64_t, 4> parts{};
  std::size_t count = 0;
  std::size_t start = 0;
  while (start <= host.size()) {
    auto dot = host.find('.', start);
    if (dot == std::string_view::npos) dot = host.size();
    std::string_view part = host.substr(start, dot - start);
    if (part.empty() || count == 4) return std::nullopt;
    int base = 10;
    if (part.size() > 2 && part[0] == '0' && (part[1] == 'x' || part[1] == 'X')) {
      base = 16;
      part.remove_prefix(2);
    } else if (part.size() > 1 && part[0] == '0') {
      base = 8;
      part.remove_prefix(1);
    }
    std::uint64_t value = 0;
    for (const char c : part) {
      int digit = -1;
      if (std::isdigit(static_cast<unsigned char>(c)) || base == 16) digit = ascii::hex_value(c);
      if (digit < 0 || digit >= base) return std::nullopt;
      value = value * static_cast<std::uint64_t>(base) + static_cast<std::uint64_t>(digit);
      if (value > 0xFFFFFFFFull) return std::nullopt;
    }
    parts[count++] = value;
    start = dot + 1;
    if (dot == host.size()) break;
  }
  std::uint64_t address = 0;
  switch (count) {
    case 1:
      address = parts[0];
      break;
    case 2:
      if (parts[0] > 0xFF || parts[1] > 0xFFFFFF) return std::nullopt;
      address = (parts[0] << 24) | parts[1];
      break;
    case 3:
      if (parts[0] > 0xFF || parts[1] > 0xFF || parts[2] > 0xFFFF) return std::nullopt;
      address = (parts[0] << 24) | (parts[1] << 16) | parts[2];
      break;
    case 4:
      for (const auto part : parts) {
        if (part > 0xFF) return std::nullopt;
      }
      address = (parts[0] << 24) | (parts[1] << 16) | (parts[2] << 8) | parts[3];
      break;
    default:
      return std::nullopt;
  }
  return static_cast<std::uint32_t>(address);
}

std::string_view classify_ipv4(std::uint32_t a) {
  const auto in = [a](std::uint32_t net, int bits) {
    const std::uint32_t mask = bits == 0 ? 0 : ~std::uint32_t{0} << (32 - bits);
    return (a & mask) == net;
  };
  if (a == 0xA9FEA9FE || a == 0xA9FEAA02 || a == 0xA9FEAA17 || a == 0x646464C8)
    return "metadata";  // 169.254.169.254, 169.254.170.2 and .23 (ECS), 100.100.100.200 (Alibaba)
  if (in(0x7F000000, 8) || a == 0) return "loopback";
  if (in(0xA9FE0000, 16)) return "link-local";
  if (in(0x0A000000, 8) || in(0xAC100000, 12) || in(0xC0A80000, 16) || in(0x64400000, 10))
    return "private";
  return "public";
}

}  // namespace

std::string_view classify_host(std::string_view host_text) {
  std::string host = ascii::lower(host_text);
  if (!host.empty() && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  while (!host.empty() && host.back() == '.')
    host.pop_back();
  if (host.empty()) return "loopback";
  if (const auto v4 = parse_ipv4(host)) return classify_ipv4(*v4);
  if (host.find(':') != std::string::npos) {
    const auto zone = host.find('%');
    const std::string bare = host.substr(0, zone);
    unsigned char bytes[16];
    if (inet_pton(AF_INET6, bare.c_str(), bytes) != 1) return "public";
    static constexpr unsigned char mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
    if (std::memcmp(bytes, mapped_prefix, 12) == 0) {
      return classify_ipv4((std::uint32_t{bytes[12]} << 24) | (std::uint32_t{bytes[13]} << 16) |
                           (std::uint32_t{bytes[14]} << 8) | bytes[15]);
    }
    static constexpr unsigned char aws_metadata[16] = {0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0,    0,
                                                       0,    0,    0,    0,    0, 0, 0x02, 0x54};
    if (std::memcmp(bytes, aws_metadata, 16) == 0) return "metadata";
    static constexpr unsigned char zero[16] = {};
    if (std::memcmp(bytes, zero, 15) == 0 && (bytes[15] == 1 || bytes[15] == 0)) return "loopback";
    if (bytes[0] == 0xfe && (bytes[1] & 0xc0) == 0x80) return "link-local";
    if ((bytes[0] & 0xfe) == 0xfc) return "private";
    return "public";
  }
  if (host == "metadata" || host == "metadata.google.internal" || host == "metadata.goog" ||
      host == "instance-data" || host == "instance-data.ec2.internal" ||
      host.find("169.254.169.254") != std::string::npos ||
      host.find("169-254-169-254") != std::string::npos ||
      host.find("a9fea9fe") != std::string::npos)
    return "metadata";
  if (host == "localhost" || host.ends_with(".localhost") || host == "ip6-localhost" ||
      host.find("127.0.0.1") != std::string::npos || host.find("127-0-0-1") != std::string::npos)
    return "loopback";
  if (host.find('.') == std::string::npos || host.ends_with(".internal") ||
      host.ends_with(".local") || host.ends_with(".svc") || host.ends_with(".cluster.local") ||
      host.ends_with(".lan") || host.ends_with(".home.arpa") || host.ends_with(".corp") ||
      host.ends_with(".intranet"))
    return "private";
  return "public";
}

std::string normalize_view_path(std::string_view input) {
  bool climbs = false;
  return normalize_view_path(input, climbs);
}

std::string normalize_view_path(std::string_view input, bool& climbs_to_root) {
  climbs_to_root = false;
  std::string text;
  if (is_file_url(input)) {
    std::string_view rest = input.substr(5);
    if (rest.starts_with("//")) {
      rest.remove_prefix(2);
      const auto slash = rest.find('/');
      rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
    }
    const auto query = rest.find_first_of("?#");
    text = percent_decode(rest.substr(0, query));
  } else {
    text = std::string(input);
  }
  if (text.starts_with("${HOME}"))
    text = "~" + text.substr(7);
  else if (text.starts_with("$HOME"))
    text = "~" + text.substr(5);
  if (text.size() >= 3 && std::isalpha(static_cast<unsigned char>(text[0])) && text[1] == ':' &&
      text[2] == '\\')
    std::replace(text.begin(), text.end(), '\\', '/');

  std::string head;
  std::string_view rest = text;
  bool absolute = false;
  if (!rest.empty() && rest.front() == '~') {
    const auto slash = rest.find('/');
    head = std::string(rest.substr(0, slash));
    rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
  } else if (!rest.empty() && rest.front() == '/') {
    absolute = true;
  } else if (rest.size() >= 2 && rest[1] == ':') {
    head = std::string(rest.substr(0, 2));
    rest.remove_prefix(2);
    absolute = true;
  }
  std::vector<std::string_view> segments;
  while (!rest.empty()) {
    while (!rest.empty() && rest.front() == '/')
      rest.remove_prefix(1);
    const auto slash = rest.find('/');
    const std::string_view segment = rest.substr(0, slash);
    rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
    if (segment.empty() || segment == ".") continue;
    if (segment == "..") {
      if (!segments.empty() && segments.back() != "..") {
        segments.pop_back();
        if (segments.empty()) climbs_to_root = true;
      } else {
        climbs_to_root = true;
        if (!absolute) segments.push_back(segment);  // above a relative start or ~: kept
      }
      continue;
    }
    segments.push_back(segment);
  }
  std::string out = head;
  if (absolute && (head.empty() || head.size() == 2)) out.push_back('/');
  for (std::size_t i = 0; i < segments.size(); ++i) {
    if (!out.empty() && out.back() != '/') out.push_back('/');
    out.append(segments[i]);
  }
  if (out.empty()) out = ".";
  return out;
}

std::string_view view_name(View view) {
  switch (view) {
    case View::paths:
      return "call.paths";
    case View::argument_paths:
      return "call.paths.arguments";
    case View::written_paths:
      return "call.paths.written";
    case View::escaping_paths:
      return "call.paths.escaping";
    case View::commands:
      return "call.commands";
    case View::programs:
      return "call.commands.program";
    case View::pipelines:
      return "call.commands.pipeline";
    case View::code:
      return "call.code";
    case View::code_interpreters:
      return "call.code.interpreter";
    case View::code_sources:
      return "call.code.source";
    case View::urls:
      return "call.urls";
    case View::url_schemes:
      return "call.urls.scheme";
    case View::url_hosts:
      return "call.urls.host";
    case View::url_ports:
      return "call.urls.port";
    case View::url_paths:
      return "call.urls.path";
    case View::url_host_classes:
      return "call.urls.host_class";
    case View::strings:
      return "call.strings";
    case View::fields:
      return "call.fields";
    case View::count:
      break;
  }
  return "?";
}

std::string_view CallViews::keep(std::string text) {
  if (stored_bytes + text.size() > max_stored_bytes) {
    incomplete = true;
    return {};
  }
  stored_bytes += text.size();
  storage.push_back(std::move(text));
  return storage.back();
}

void CallViews::clear() {
  for (auto& view : values)
    view.clear();
  storage.clear();
  stored_bytes = 0;
  incomplete = false;
  structured = false;
  strings = false;
}

namespace {

// One pass over a call's arguments, filling every view but strings.
class ViewBuilder {
 public:
  ViewBuilder(const CallContext& call, CallViews& views) : call_(call), views_(views) {
    const auto tokens = name_tokens(call.tool);
    static constexpr std::array<std::string_view, 16> exec_tokens = {
        "bash",     "sh",      "shell", "exec",       "execute",    "run", "command", "cmd",
        "terminal", "process", "spawn", "subprocess", "powershell", "zsh", "script",  "commands"};
    static constexpr std::array<std::string_view, 19> write_tokens = {
        "write",  "edit",  "create",  "append", "save",  "put",    "upload",
        "update", "patch", "replace", "insert", "move",  "rename", "copy",
        "mkdir",  "touch", "apply",   "push",   "commit"};
    // A tool named after one command-line program (kubectl_generic, git_command) passes that
    // program's arguments: its commands are read with the program in front.
    static constexpr std::array<std::string_view, 11> cli_programs = {
        "kubectl",   "docker", "git",    "helm",   "npm", "gh",
        "terraform", "aws",    "gcloud", "podman", "az"};
    for (const auto& token : tokens) {
      if (one_of(token, exec_tokens)) exec_tool_ = true;
      if (one_of(token, write_tokens)) write_tool_ = true;
      if (const auto* interpreter = interpreter_of(token)) tool_language_ = interpreter->prefix;
      if (token == "javascript" || token == "js") tool_language_ = "node";
      if (one_of(token, cli_programs) && cli_program_.empty()) cli_program_ = token;
    }
    if (call.tool_definition && call.tool_definition->is_object()) {
      const auto schema = call.tool_definition->find("inputSchema");
      if (schema != call.tool_definition->end()) schema_ = &*schema;
      const auto annotations = call.tool_definition->find("annotations");
      if (annotations != call.tool_definition->end() && annotations->is_object()) {
        if (annotations->value("readOnlyHint", false)) write_tool_ = false;
      }
    }
  }

  void run() {
    if (!call_.arguments) return;
    if (call_.method == "resources/read") {
      if (const auto uri = call_.arguments->find("uri");
          uri != call_.arguments->end() && uri->is_string())
        add_string(uri->get_ref<const std::string&>(), Role::url, {}, false);
      return;
    }
    walk(*call_.arguments, schema_, Role::unknown, {}, 0);
  }

 private:
  // --- values ---
  void push(View view, std::string_view value) {
    auto& list = views_[view];
    if (list.size() >= max_values_per_view) {
      views_.incomplete = true;
      return;
    }
    list.push_back(value);
  }
  std::string_view keep(std::string text) { return views_.keep(std::move(text)); }
  // Values that are the same for every entry (classes, sources) need no storage.
  void push_unique(View view, std::string_view value) {
    auto& list = views_[view];
    // Full: no search either, so that a flood of distinct names costs no quadratic time.
    if (list.size() >= max_values_per_view) {
      views_.incomplete = true;
      return;
    }
    if (std::find(list.begin(), list.end(), value) == list.end()) push(view, value);
  }

  void add_path(std::string_view raw, bool from_argument, bool written) {
    if (raw.empty() || raw.size() > max_path_length) return;
    bool climbs = false;
    const std::string_view path = keep(normalize_view_path(raw, climbs));
    if (path.empty()) return;  // over the storage bound
    push(View::paths, path);
    if (climbs) push(View::escaping_paths, path);
    if (from_argument) push(View::argument_paths, path);
    if (written) push(View::written_paths, path);
  }

  void add_url(std::string_view text) {
    if (text.size() > 8192) {
      views_.incomplete = true;
      return;
    }
    const std::string_view url = keep(std::string(text));
    if (url.empty()) return;
    push(View::urls, url);
    const auto scheme_end = url.find(':');
    const std::string_view scheme = keep(ascii::lower(url.substr(0, scheme_end)));
    push(View::url_schemes, scheme);
    std::string_view rest = url.substr(scheme_end + 1);
    if (scheme == "file") {
      add_path(text, false, false);
      push(View::url_hosts, "");
      push(View::url_ports, "");
      push(View::url_paths, keep(normalize_view_path(text)));
      push(View::url_host_classes, "loopback");
      return;
    }
    if (rest.starts_with("//")) rest.remove_prefix(2);
    // The host ends where a URL's host cannot go on: "http://169.254.170.2$URI" is that host.
    const auto authority_end = rest.find_first_of("/?#\\$`'\"{}|<>^ ;()");
    std::string_view authority = rest.substr(0, authority_end);
    const std::string_view path =
        authority_end == std::string_view::npos ? std::string_view() : rest.substr(authority_end);
    if (const auto at = authority.rfind('@'); at != std::string_view::npos)
      authority.remove_prefix(at + 1);
    std::string_view host = authority;
    std::string_view port;
    if (authority.starts_with("[")) {
      const auto close = authority.find(']');
      host = authority.substr(0, close == std::string_view::npos ? authority.size() : close + 1);
      if (close != std::string_view::npos && close + 1 < authority.size() &&
          authority[close + 1] == ':')
        port = authority.substr(close + 2);
    } else if (const auto colon = authority.rfind(':'); colon != std::string_view::npos) {
      host = authority.substr(0, colon);
      port = authority.substr(colon + 1);
    }
    const std::string decoded_host = ascii::lower(percent_decode(host));
    push(View::url_hosts, keep(decoded_host));
    if (port.empty()) {
      if (scheme == "http" || scheme == "ws")
        port = "80";
      else if (scheme == "https" || scheme == "wss")
        port = "443";
      else if (scheme == "ftp")
        port = "21";
    }
    push(View::url_ports, keep(std::string(port)));
    const auto query = path.find_first_of("?#");
    push(View::url_paths, keep(percent_decode(path.substr(0, query))));
    push(View::url_host_classes, classify_host(decoded_host));
  }

  void add_code(std::string_view interpreter, std::string_view body, std::string_view source,
                int depth) {
    if (!spend(body.size())) return;
    const std::string_view kept = keep(std::string(body));
    if (kept.empty()) return;
    push(View::code, kept);
    push(View::code_interpreters, keep(std::string(interpreter)));
    push(View::code_sources, source);
    if (is_shell(interpreter)) {
      read_script(body, depth + 1);
      return;
    }
    if (is_powershell(interpreter)) read_windows_paths(body);
    read_code_literals(interpreter, body, depth);
  }

  bool spend(std::size_t bytes) {
    if (analyzed_ + bytes > max_analyzed_bytes) {
      views_.incomplete = true;
      return false;
    }
    analyzed_ += bytes;
    return true;
  }

  // --- arguments ---
  void walk(const Json& value, const Json* schema, Role role, std::string_view key, int depth) {
    if (depth > max_json_depth) {
      views_.incomplete = true;
      return;
    }
    if (value.is_string()) {
      add_string(value.get_ref<const std::string&>(), role, key, true);
      return;
    }
    if (value.is_array()) {
      // `commands: ["make", "make test"]` lists command lines; `argv: ["cat", "x"]` is one.
      const bool list_of_lines =
          key == "commands" || key == "cmds" || key == "scripts" || key == "steps" || key == "run";
      if (role == Role::command && all_strings(value) && !list_of_lines) {
        std::vector<std::string> argv;
        for (const auto& word : value)
          argv.push_back(word.get<std::string>());
        read_argv(argv, depth);
        return;
      }
      const Json* items = items_schema(schema);
      for (const auto& element : value)
        walk(element, items, role == Role::command ? Role::command : role, key, depth + 1);
      return;
    }
    if (!value.is_object()) return;
    // {command: "prog", args: [...]} and {command: [...], args: [...]}: one argv.
    const Json* program = nullptr;
    const Json* program_args = nullptr;
    std::string_view language;
    for (const auto& [member, member_value] : value.items()) {
      const std::string squashed = squashed_key(member);
      if ((squashed == "command" || squashed == "cmd" || squashed == "program" ||
           squashed == "executable") &&
          (member_value.is_string() || all_strings(member_value)))
        program = &member_value;
      if ((squashed == "args" || squashed == "argv" || squashed == "arguments") &&
          all_strings(member_value) && !member_value.empty())
        program_args = &member_value;
      if (one_of(squashed, language_keys) && member_value.is_string())
        language = member_value.get_ref<const std::string&>();
    }
    if (program && program_args && (exec_tool_ || !cli_program_.empty() || program->is_array())) {
      std::vector<std::string> argv;
      if (program->is_string())
        argv.push_back(program->get<std::string>());
      else
        for (const auto& word : *program)
          argv.push_back(word.get<std::string>());
      for (const auto& word : *program_args)
        argv.push_back(word.get<std::string>());
      read_argv(argv, depth);
    }
    const std::string_view saved_language = language_;
    if (!language.empty()) language_ = language;
    for (const auto& [member, member_value] : value.items()) {
      if (program && program_args && (exec_tool_ || !cli_program_.empty() || program->is_array()) &&
          (&member_value == program || &member_value == program_args))
        continue;
      const Json* child_schema = member_schema(schema, member);
      const std::string squashed = squashed_key(member);
      Role child_role = role_of_key(squashed);
      if (child_role == Role::unknown) child_role = role_of_schema(child_schema);
      if (child_role == Role::unknown && role != Role::unknown && role != Role::text)
        child_role = role;
      walk(member_value, child_schema, child_role, squashed, depth + 1);
    }
    language_ = saved_language;
  }

  static bool all_strings(const Json& value) {
    return value.is_array() && std::all_of(value.begin(), value.end(),
                                           [](const Json& element) { return element.is_string(); });
  }

  // `key`: the argument's squashed name ("filepath").
  void add_string(std::string_view text, Role role, std::string_view key, bool from_argument) {
    if (text.empty()) return;
    const bool source_key = key == "source" || key == "src" || key == "from";
    const bool written = write_tool_ && !source_key;
    if (role == Role::text) {
      // Free text is read as text: only a whole-value URL counts (a message is not a path).
      if (has_url_scheme(text) && !has_space(text)) add_url(text);
      return;
    }
    if (role == Role::url ||
        (role != Role::command && role != Role::code && has_url_scheme(text) && !has_space(text))) {
      if (has_url_scheme(text) || is_file_url(text)) {
        add_url(text);
      } else if (path_shaped(text, true)) {
        add_path(text, from_argument, written);
      }
      return;
    }
    if (is_file_url(text) && role != Role::command && role != Role::code) {
      add_url(text);
      return;
    }
    if (role == Role::path) {
      if (text.size() <= max_path_length && text.find('\n') == std::string_view::npos)
        add_path(text, from_argument, written);
      return;
    }
    if (role == Role::command) {
      read_windows_paths(text);
      read_script(with_cli_program(text), 0);
      return;
    }
    if (role == Role::code) {
      std::string_view interpreter = language_.empty() ? tool_language_ : language_;
      const std::string lowered = ascii::lower(interpreter);
      if (lowered == "bash" || lowered == "shell" || lowered == "sh" || lowered == "zsh") {
        add_code("sh", text, "argument", 0);
      } else if (lowered == "javascript" || lowered == "js" || lowered == "typescript") {
        add_code("node", text, "argument", 0);
      } else if (interpreter.empty()) {
        // A script in no named language is read both ways: its literals, and as a shell would.
        add_code("unknown", text, "argument", 0);
        read_script(text, 1);
      } else {
        add_code(interpreter, text, "argument", 0);
      }
      return;
    }
    // Unknown role: a shell tool's strings are commands; otherwise the shape decides.
    if (exec_tool_ && !path_shaped(text, false)) {
      read_windows_paths(text);
      read_script(text, 0);
      return;
    }
    if (path_shaped(text, false)) add_path(text, from_argument, written);
  }

  // --- commands ---
  // What reading a script found that its caller builds on.
  struct ScriptRead {
    std::optional<std::string> output;   // the last pipeline's output, when a decoded payload
    std::vector<std::string> pipelines;  // each pipeline's programs: "curl | tee"
  };

  ScriptRead read_script(std::string_view text, int depth) {
    ScriptRead read;
    if (depth > max_script_depth) {
      views_.incomplete = true;
      return read;
    }
    if (!spend(text.size())) return read;
    const shell::Script script = shell::parse(text);
    if (script.truncated) views_.incomplete = true;
    for (const auto& pipeline : script.pipelines) {
      PipelineRead piped = read_pipeline(pipeline, depth);
      read.output = std::move(piped.output);
      if (!piped.programs.empty()) read.pipelines.push_back(std::move(piped.programs));
    }
    return read;
  }

  // A POSIX shell reads `C:\\Users\\x\\.ssh` as `C:Usersx.ssh`; cmd.exe and PowerShell read it as
  // a path, and so do `%USERPROFILE%\\.ssh\\id_rsa` and `$env:USERPROFILE\\.ssh\\id_rsa`. Both
  // readings count: the command's raw words with a backslash between names are paths as well.
  void read_windows_paths(std::string_view text) {
    std::size_t at = 0;
    while (at < text.size()) {
      while (at < text.size() && is_word_break(text[at]))
        ++at;
      std::size_t end = at;
      while (end < text.size() && !is_word_break(text[end]))
        ++end;
      const std::string_view word = text.substr(at, end - at);
      at = end;
      const auto backslash = word.find('\\');
      if (backslash == std::string_view::npos || backslash + 1 >= word.size() ||
          word.size() > max_path_length)
        continue;
      const char next = word[backslash + 1];
      if (!(std::isalnum(static_cast<unsigned char>(next)) || next == '.' || next == '_')) continue;
      std::string path(word);
      std::replace(path.begin(), path.end(), '\\', '/');
      if (path_shaped(path, false) || path.find("/.") != std::string::npos)
        add_path(path, false, false);
    }
  }

  static bool is_word_break(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '"' || c == '\'' || c == ';' ||
           c == '|' || c == '&' || c == '(' || c == ')' || c == '`';
  }

  // "delete ns x" from kubectl_generic is "kubectl delete ns x".
  std::string with_cli_program(std::string_view text) const {
    if (cli_program_.empty()) return std::string(text);
    std::string_view head = text.substr(0, text.find(' '));
    if (basename_of(head) == cli_program_) return std::string(text);
    return cli_program_ + " " + std::string(text);
  }

  void read_argv(const std::vector<std::string>& argv, int depth) {
    shell::Pipeline pipeline;
    shell::SimpleCommand command;
    command.words = argv;
    if (depth == 0 && !cli_program_.empty() && !argv.empty() &&
        basename_of(argv.front()) != cli_program_)
      command.words.insert(command.words.begin(), cli_program_);
    pipeline.commands.push_back(std::move(command));
    read_pipeline(pipeline, depth);
  }

  struct PipelineRead {
    std::string programs;               // "curl | sh"
    std::optional<std::string> output;  // what it prints, when that is a decoded payload
  };

  // Reads a pipeline: its programs (also pushed as a view value), and what it prints when that is
  // a decoded payload (for `$(…)`).
  PipelineRead read_pipeline(const shell::Pipeline& pipeline, int depth) {
    std::string programs_text;
    std::optional<std::string> data;
    bool decoded = false;
    for (std::size_t index = 0; index < pipeline.commands.size(); ++index) {
      const auto& command = pipeline.commands[index];
      const std::string program = read_command(command, depth, index > 0, data, decoded);
      if (!program.empty()) {
        if (!programs_text.empty()) programs_text += " | ";
        programs_text += program;
      }
    }
    if (!programs_text.empty()) push(View::pipelines, keep(programs_text));
    PipelineRead read{std::move(programs_text), std::nullopt};
    if (decoded && data) read.output = std::move(data);
    return read;
  }

  // Reads one simple command: its effective program (returned), its text, its paths and URLs,
  // and what it runs in turn. `data` is what flows in from the left of a pipe.
  std::string read_command(const shell::SimpleCommand& command, int depth, bool piped,
                           std::optional<std::string>& data, bool& decoded) {
    const auto& words = command.words;
    std::size_t first = 0;
    std::string_view last_wrapper;
    // Assignments, reserved words and wrappers come before the program that runs.
    while (first < words.size()) {
      const std::string_view word = words[first];
      if (is_assignment(word) || one_of(word, reserved_words)) {
        ++first;
        continue;
      }
      const std::string_view name = basename_of(word);
      if (!one_of(name, wrappers)) break;
      push_unique(View::programs, keep(std::string(name)));
      last_wrapper = name;
      ++first;
      // The wrapper's own options, and `timeout`'s duration.
      while (first < words.size()) {
        const std::string_view option = words[first];
        if (option == "--") {
          ++first;
          break;
        }
        if (name == "env" && (option == "-S" || option == "--split-string") &&
            first + 1 < words.size()) {
          read_script(words[first + 1], depth + 1);
          first = words.size();
          break;
        }
        if (option.size() > 1 && option.front() == '-') {
          ++first;
          if (wrapper_option_takes_value(name, option) && first < words.size()) ++first;
          continue;
        }
        if (name == "timeout" && !option.empty() &&
            std::isdigit(static_cast<unsigned char>(option.front()))) {
          ++first;
          continue;
        }
        if ((name == "nice" || name == "ionice") && !option.empty() &&
            std::isdigit(static_cast<unsigned char>(option.front()))) {
          ++first;
          continue;
        }
        if (name == "env" && is_assignment(option)) {
          ++first;
          continue;
        }
        break;
      }
    }
    std::string program;
    if (first < words.size()) program = std::string(basename_of(words[first]));
    // `env` or `time` alone runs nothing else: it is the program (env | nc prints the environment).
    if (program.empty() && !last_wrapper.empty() && command.substitutions.empty())
      program = std::string(last_wrapper);
    if (!program.empty()) push_unique(View::programs, keep(program));

    // The command's text: program and arguments, redirections after them.
    std::string text = program;
    for (std::size_t i = first + 1; i < words.size(); ++i) {
      text.push_back(' ');
      text.append(words[i]);
    }
    for (const auto& redirect : command.redirects) {
      if (!text.empty()) text.push_back(' ');
      text += redirect.op + " " + redirect.target;
    }
    if (!text.empty()) push(View::commands, keep(std::move(text)));

    // Files it names, where its output goes, the URLs it fetches.
    const bool fetches = program == "curl" || program == "wget" || program == "http" ||
                         program == "https" || program == "xh" || program == "aria2c" ||
                         program == "lynx";
    for (std::size_t i = first + 1; i < words.size(); ++i) {
      // A fetcher's option values (-o FILE, -d @FILE, -H header) are not URLs.
      const std::string_view previous = words[i - 1];
      const bool option_value =
          fetches && i > first + 1 && previous.size() >= 2 && previous[0] == '-' &&
          (previous[1] == '-' ? one_of(previous, fetch_value_options)
                              : std::string_view("oOdHXuAeFTwKbcmrPU").find(previous.back()) !=
                                    std::string_view::npos);
      read_word(words[i], fetches && !option_value);
    }
    if (fetches) remember_download(program, words, first, command.redirects);
    ran_download(program, words, first);
    for (const auto& redirect : command.redirects) {
      const bool writes = redirect.op.find('>') != std::string::npos;
      add_path(redirect.target, false, writes);
    }
    read_written_operands(program, words, first);

    // What it runs in turn.
    const bool shell =
        is_shell(program) || program == "eval" || program == "source" || program == ".";
    const Interpreter* interpreter = interpreter_of(program);
    bool consumes_stdin = false;
    if (program == "eval" || program == "source" || program == ".") {
      std::string script;
      for (std::size_t i = first + 1; i < words.size(); ++i) {
        if (!script.empty()) script.push_back(' ');
        script += words[i];
      }
      if (program == "eval") read_script(script, depth + 1);
    } else if (is_shell(program)) {
      consumes_stdin = read_shell_invocation(words, first, depth);
    } else if (interpreter) {
      consumes_stdin = read_interpreter_invocation(program, *interpreter, words, first, depth);
    } else if (program == "watch") {
      std::string script;
      for (std::size_t i = first + 1; i < words.size(); ++i) {
        if (words[i].starts_with("-")) continue;
        script += (script.empty() ? "" : " ") + words[i];
      }
      read_script(script, depth + 1);
    } else if (program == "su" || program == "runuser" || program == "script") {
      for (std::size_t i = first + 1; i + 1 < words.size(); ++i) {
        if (words[i] == "-c" || words[i] == "--command") read_script(words[i + 1], depth + 1);
      }
    } else if (program == "nsenter" || program == "chroot" || program == "flock") {
      // The command after their own options and operands runs inside.
      std::size_t i = first + 1;
      while (i < words.size() &&
             (words[i].starts_with("-") || (program != "nsenter" && i == first + 1)))
        ++i;
      if (program == "chroot" && i == first + 1 && i < words.size()) ++i;
      if (i < words.size()) {
        const std::vector<std::string> inner(words.begin() + static_cast<std::ptrdiff_t>(i),
                                             words.end());
        read_argv(inner, depth + 1);
      }
    }

    // Substitutions run first; a decoded one run by a shell or eval is a payload.
    for (const auto& body : command.substitutions) {
      const ScriptRead inner = read_script(body, depth + 1);
      if (!shell && !interpreter) continue;
      if (inner.output) {
        add_code(shell ? std::string_view("sh") : std::string_view(program), *inner.output,
                 "decoded", depth + 1);
      }
      // `bash <(curl …)`, `sh -c "$(curl …)"`: the substitution's programs feed this one.
      for (const auto& chain : inner.pipelines)
        push(View::pipelines, keep(chain + " | " + program));
    }

    // Standard input: here-documents, here-strings, and what flows through the pipe.
    if (!command.stdin_text.empty()) {
      data = command.stdin_text;
      decoded = false;
    } else if (!piped) {
      data.reset();
      decoded = false;
      if ((program == "echo" || program == "printf") && first + 1 < words.size()) {
        std::string printed;
        for (std::size_t i = first + 1; i < words.size(); ++i) {
          if (words[i].starts_with("-") && printed.empty()) continue;
          printed += (printed.empty() ? "" : " ") + words[i];
        }
        data = std::move(printed);
        return program;  // what it prints flows on
      }
    }
    if (is_decoder(program, words, first)) {
      const bool hex = program == "xxd";
      if (data && (hex ? looks_hex(*data) : looks_base64(*data, 4))) {
        if (auto plain = hex ? decode_hex(*data) : decode_base64(*data)) {
          data = std::move(*plain);
          decoded = true;
        } else {
          data.reset();
        }
      } else {
        data.reset();
      }
      return program;
    }
    if ((shell || interpreter) && (consumes_stdin || program == "eval") && data) {
      const std::string_view source =
          decoded ? "decoded" : (command.stdin_is_heredoc ? "heredoc" : "stdin");
      add_code(shell ? std::string_view("sh") : std::string_view(program), *data, source, depth);
      data.reset();
      decoded = false;
      return program;
    }
    if (program != "cat" && program != "tee" && program != "tr" && program != "rev") {
      data.reset();
      decoded = false;
    }
    return program;
  }

  void remember_download(const std::string& program, const std::vector<std::string>& words,
                         std::size_t first, const std::vector<shell::Redirect>& redirects) {
    for (std::size_t i = first + 1; i + 1 < words.size(); ++i) {
      const std::string& word = words[i];
      // -o FILE, and clustered short options ending in it: curl -sSLo FILE, wget -qO FILE.
      const char output_flag = program == "wget" ? 'O' : 'o';
      const bool output =
          word == "--output" || word == "--output-document" ||
          (word.size() >= 2 && word[0] == '-' && word[1] != '-' && word.back() == output_flag);
      if (output) remember_downloaded(words[i + 1]);
    }
    for (const auto& redirect : redirects) {
      if (redirect.op.find('>') != std::string::npos) remember_downloaded(redirect.target);
    }
  }

  void remember_downloaded(std::string_view path) {
    // Bounded: every later command is compared with each of them.
    if (downloaded_files_.size() >= max_downloads) {
      views_.incomplete = true;
      return;
    }
    downloaded_files_.push_back(normalize_view_path(path));
  }

  // `curl -o /tmp/a.sh URL && bash /tmp/a.sh`, `… && chmod +x a.sh && ./a.sh`: a download run.
  void ran_download(const std::string& program, const std::vector<std::string>& words,
                    std::size_t first) {
    if (downloaded_files_.empty() || first >= words.size()) return;
    const auto downloaded = [this](std::string_view word) {
      const std::string path = normalize_view_path(word);
      return std::find(downloaded_files_.begin(), downloaded_files_.end(), path) !=
             downloaded_files_.end();
    };
    std::string runner;
    if (downloaded(words[first])) {
      runner = "sh";
    } else if (is_shell(program) || interpreter_of(program) || program == "source" ||
               program == ".") {
      for (std::size_t i = first + 1; i < words.size(); ++i) {
        if (!words[i].starts_with("-") && downloaded(words[i])) runner = program;
      }
    }
    if (!runner.empty()) push(View::pipelines, keep("curl | " + runner));
  }

  static bool is_decoder(const std::string& program, const std::vector<std::string>& words,
                         std::size_t first) {
    const auto has = [&](std::string_view option) {
      for (std::size_t i = first + 1; i < words.size(); ++i) {
        if (words[i] == option) return true;
      }
      return false;
    };
    if (program == "base64" || program == "b64" || program == "base32")
      return has("-d") || has("--decode") || has("-D") || has("-di") || has("-id");
    if (program == "openssl") return (has("base64") || has("enc")) && has("-d");
    if (program == "xxd") return has("-r") && (has("-p") || has("-ps") || has("-plain"));
    return false;
  }

  // `sh -c SCRIPT`, `bash -lc SCRIPT`, `sh -s`, `bash` alone: returns whether it reads stdin.
  bool read_shell_invocation(const std::vector<std::string>& words, std::size_t first, int depth) {
    bool inline_script = false;
    for (std::size_t i = first + 1; i < words.size(); ++i) {
      const std::string& word = words[i];
      if (word == "--") {
        if (inline_script && i + 1 < words.size()) read_script(words[i + 1], depth + 1);
        return false;
      }
      if (word.size() > 1 && word.front() == '-' && word[1] != '-') {
        if (word.find('c') != std::string::npos) inline_script = true;
        if (word == "-o" || word == "-O") ++i;  // -o option takes a name
        continue;
      }
      if (word.starts_with("--")) continue;
      if (word == "-") return true;
      if (inline_script) {
        read_script(word, depth + 1);
        return false;
      }
      return false;  // a script file (read_word saw it as a path)
    }
    return !inline_script;
  }

  bool read_interpreter_invocation(const std::string& program, const Interpreter& interpreter,
                                   const std::vector<std::string>& words, std::size_t first,
                                   int depth) {
    const bool powershell = is_powershell(program);
    for (std::size_t i = first + 1; i < words.size(); ++i) {
      const std::string word = powershell ? ascii::lower(words[i]) : words[i];
      if (powershell &&
          (word == "-e" || word == "-enc" || word == "-ec" || word == "-encodedcommand") &&
          i + 1 < words.size()) {
        if (auto plain = decode_base64(words[i + 1])) add_code(program, *plain, "decoded", depth);
        return false;
      }
      const bool inline_flag =
          std::find(interpreter.inline_flags.begin(), interpreter.inline_flags.end(), word) !=
              interpreter.inline_flags.end() &&
          !word.empty();
      if (inline_flag && i + 1 < words.size()) {
        std::string body = words[i + 1];
        if (powershell) {
          for (std::size_t j = i + 2; j < words.size(); ++j)
            body += " " + words[j];
        }
        add_code(program, body, "inline", depth);
        return false;
      }
      // python -c"code" / node -e'code' written without a space
      for (const auto flag : interpreter.inline_flags) {
        if (flag.size() == 2 && word.size() > 2 && word.starts_with(flag)) {
          add_code(program, std::string_view(words[i]).substr(2), "inline", depth);
          return false;
        }
      }
      if (word == "-m" || word == "-W" || word == "-X" || word == "-r" || word == "--require") {
        ++i;
        continue;
      }
      if (word == "-") return true;
      if (word.starts_with("-")) continue;
      return false;  // a script file
    }
    return true;
  }

  // A word of a command: a path, a URL, `name=@file` (curl -F), `--opt=/path`, `src:dst` mounts.
  void read_word(std::string_view word, bool fetches) {
    if (word.empty() || word.size() > 8192) return;
    if (has_url_scheme(word) || is_file_url(word)) {
      add_url(word);
      return;
    }
    if (word.front() == '-') {
      const auto equals = word.find('=');
      if (equals != std::string_view::npos) read_word(word.substr(equals + 1), fetches);
      return;
    }
    if (const auto at = word.find('@');
        at != std::string_view::npos &&
        (at == 0 || word.substr(0, at).find('=') != std::string_view::npos)) {
      read_word(word.substr(at + 1), false);  // curl -d @file, -F name=@file
      return;
    }
    if (word.starts_with("/dev/fd/")) return;  // a process substitution's stand-in
    // An argv word keeps its backslashes: a Windows path (%USERPROFILE%\\.ssh\\id_rsa).
    if (const auto backslash = word.find('\\');
        backslash != std::string_view::npos && backslash + 1 < word.size() &&
        (std::isalnum(static_cast<unsigned char>(word[backslash + 1])) ||
         word[backslash + 1] == '.')) {
      read_windows_paths(word);
      return;
    }
    // curl's operands are URLs, with or without a scheme: "x.io/i", "0xA9FEA9FE/latest".
    if (fetches && word.front() != '/' && word.front() != '.' && word.front() != '~' &&
        word.front() != '$' && !has_space(word) &&
        (word.find('.') != std::string_view::npos || word.find(':') != std::string_view::npos ||
         word.find('/') != std::string_view::npos)) {
      add_url("http://" + std::string(word));
      return;
    }
    if (path_shaped(word, false)) {
      // A mount or copy spec: "/host:/container", "/var/run/docker.sock:/x:ro".
      const auto colon = word.find(':');
      if (colon != std::string_view::npos && colon > 0 && word.front() != '~' &&
          !(colon == 1 && std::isalpha(static_cast<unsigned char>(word.front())))) {
        add_path(word.substr(0, colon), false, false);
        std::string_view rest = word.substr(colon + 1);
        const auto next = rest.find(':');
        if (!rest.empty()) add_path(rest.substr(0, next), false, false);
        return;
      }
      add_path(word, false, false);
      return;
    }
    if (fetches &&
        (word.find('.') != std::string_view::npos || word.find(':') != std::string_view::npos) &&
        !has_space(word)) {
      add_url("http://" + std::string(word));  // curl's default scheme
      return;
    }
    if (word.front() == '.' && word.size() > 1) add_path(word, false, false);
  }

  // Paths a command writes besides its redirections: tee's files, cp/mv/install/ln's target,
  // dd's of=, sed -i's files.
  void read_written_operands(const std::string& program, const std::vector<std::string>& words,
                             std::size_t first) {
    std::vector<std::string_view> operands;
    for (std::size_t i = first + 1; i < words.size(); ++i) {
      if (!words[i].starts_with("-")) operands.push_back(words[i]);
    }
    const auto written = [&](std::string_view path) {
      if (!path.empty() && path_shaped(path, true)) {
        const std::string_view kept = keep(normalize_view_path(path));
        push(View::written_paths, kept);
      }
    };
    if (program == "tee" || program == "touch" || program == "truncate" || program == "chmod" ||
        program == "chown" || program == "rm" || program == "shred" || program == "mkdir") {
      for (const auto operand : operands)
        written(operand);
    } else if ((program == "cp" || program == "mv" || program == "install" || program == "ln" ||
                program == "rsync" || program == "scp") &&
               !operands.empty()) {
      written(operands.back());
    } else if (program == "dd") {
      for (const auto operand : operands) {
        if (operand.starts_with("of=")) written(operand.substr(3));
      }
    } else if (program == "sed" || program == "perl") {
      bool in_place = false;
      for (std::size_t i = first + 1; i < words.size(); ++i) {
        if (words[i].starts_with("-i") || words[i] == "--in-place") in_place = true;
      }
      if (in_place && operands.size() > 1) {
        for (std::size_t i = 1; i < operands.size(); ++i)
          written(operands[i]);
      }
    }
  }

  // --- code ---
  // Paths and URLs in a script's string literals, and base64 literals it decodes and runs.
  void read_code_literals(std::string_view interpreter, std::string_view body, int depth) {
    const std::string lowered = ascii::lower(body.substr(0, 64 * 1024));
    const bool decodes = lowered.find("b64decode") != std::string::npos ||
                         lowered.find("base64") != std::string::npos ||
                         lowered.find("atob(") != std::string::npos ||
                         lowered.find("frombase64string") != std::string::npos ||
                         lowered.find("decode64") != std::string::npos ||
                         lowered.find("unpack(") != std::string::npos;
    const bool runs =
        lowered.find("exec") != std::string::npos || lowered.find("eval") != std::string::npos ||
        lowered.find("system") != std::string::npos || lowered.find("popen") != std::string::npos ||
        lowered.find("subprocess") != std::string::npos ||
        lowered.find("child_process") != std::string::npos ||
        lowered.find("spawn") != std::string::npos ||
        lowered.find("invoke-expression") != std::string::npos ||
        lowered.find("iex") != std::string::npos || lowered.find("function(") != std::string::npos;
    // A script that opens files for writing writes the paths it names (a heuristic: the
    // literal is not traced to the call that uses it).
    const bool writes =
        lowered.find("'w") != std::string::npos || lowered.find("\"w") != std::string::npos ||
        lowered.find("'a'") != std::string::npos || lowered.find("\"a\"") != std::string::npos ||
        lowered.find("writefile") != std::string::npos ||
        lowered.find("appendfile") != std::string::npos ||
        lowered.find("write_text") != std::string::npos ||
        lowered.find("file.write") != std::string::npos ||
        lowered.find("out-file") != std::string::npos ||
        lowered.find("set-content") != std::string::npos ||
        lowered.find("add-content") != std::string::npos;
    std::size_t literals = 0;
    for (std::size_t i = 0; i < body.size(); ++i) {
      const char quote = body[i];
      if (quote != '\'' && quote != '"' && quote != '`') continue;
      const auto close = body.find(quote, i + 1);
      if (close == std::string_view::npos) break;
      const std::string_view literal = body.substr(i + 1, close - i - 1);
      i = close;
      if (++literals > 1024) {
        views_.incomplete = true;
        break;
      }
      if (literal.empty() || literal.size() > max_path_length) {
        if (decodes && runs && looks_base64(literal)) decode_literal(interpreter, literal, depth);
        continue;
      }
      if (has_url_scheme(literal) || is_file_url(literal)) {
        add_url(literal);
      } else if (runs && has_space(literal) && depth < max_script_depth) {
        read_script(literal, depth + 1);  // os.system("…"), execSync('…'): a command line
      } else if (path_shaped(literal, false)) {
        add_path(literal, false, writes);
      } else if (decodes && runs && looks_base64(literal)) {
        decode_literal(interpreter, literal, depth);
      }
    }
  }

  void decode_literal(std::string_view interpreter, std::string_view literal, int depth) {
    if (depth >= max_script_depth) {
      views_.incomplete = true;
      return;
    }
    if (auto plain = decode_base64(literal)) add_code(interpreter, *plain, "decoded", depth + 1);
  }

  const CallContext& call_;
  CallViews& views_;
  const Json* schema_ = nullptr;
  bool exec_tool_ = false;
  bool write_tool_ = false;
  std::string_view tool_language_;
  std::string_view language_;
  std::string cli_program_;
  // Files a download was saved to: running one later is running the download.
  std::vector<std::string> downloaded_files_;
  std::size_t analyzed_ = 0;
};

// call.strings (every string leaf) and call.fields ("a.b.0.c=value" for every scalar leaf).
void collect_strings(const Json& value, CallViews& views, std::string& path, int depth) {
  if (depth > max_json_depth) {
    views.incomplete = true;
    return;
  }
  auto& strings = views[View::strings];
  auto& fields = views[View::fields];
  if (value.is_structured()) {
    std::size_t index = 0;
    for (auto it = value.begin(); it != value.end(); ++it, ++index) {
      const std::size_t mark = path.size();
      if (!path.empty()) path.push_back('.');
      path += value.is_object() ? it.key() : std::to_string(index);
      if (path.size() <= 1024)
        collect_strings(*it, views, path, depth + 1);
      else
        views.incomplete = true;
      path.resize(mark);
    }
    return;
  }
  if (value.is_null() || value.is_discarded()) return;
  if (strings.size() >= max_values_per_view || fields.size() >= max_values_per_view) {
    views.incomplete = true;
    return;
  }
  if (value.is_string()) {
    const auto& text = value.get_ref<const std::string&>();
    strings.push_back(text);
    if (text.size() <= 4096) {
      const auto kept = views.keep(path + "=" + text);
      if (!kept.empty()) fields.push_back(kept);
    }
    return;
  }
  const auto kept = views.keep(path + "=" + value.dump());
  if (!kept.empty()) fields.push_back(kept);
}

}  // namespace

void compute_view(View view, const CallContext& call, CallViews& views) {
  if (view == View::strings || view == View::fields) {
    if (views.strings) return;
    views.strings = true;
    std::string path;
    if (call.arguments) collect_strings(*call.arguments, views, path, 0);
    return;
  }
  if (views.structured) return;
  views.structured = true;
  ViewBuilder(call, views).run();
}

Json describe_views(const CallContext& call) {
  CallViews views;
  compute_view(View::paths, call, views);
  compute_view(View::strings, call, views);
  Json out = Json::object();
  for (std::size_t i = 0; i < static_cast<std::size_t>(View::count); ++i) {
    const auto view = static_cast<View>(i);
    if (views[view].empty()) continue;
    Json values = Json::array();
    for (const auto value : views[view])
      values.push_back(std::string(value));
    out[std::string(view_name(view))] = std::move(values);
  }
  if (views.incomplete) out["call.incomplete"] = true;
  return out;
}

}  // namespace membrane::policy
