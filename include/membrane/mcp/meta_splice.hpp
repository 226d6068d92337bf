// Adds members to params._meta of a JSON-RPC message in its text, without parsing it into a tree
// and serializing it again: one scan of the bytes and one insertion. For what the gateway adds
// to every forwarded request (the trace context), where a parse and a dump of the whole body
// would cost more than the rest of the hop.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace membrane::mcp {

using MetaMembers = std::vector<std::pair<std::string, std::string>>;  // name, string value

// Inserts each member (its value as a JSON string) into params._meta of `message`, creating
// `_meta` and `params` when absent. Returns false, leaving `message` as it was, when the text
// cannot be changed that way without doubt: it is not a JSON object, a key on the way is written
// with escapes or appears twice, params or _meta is not an object, or _meta already has one of
// the members. The caller then parses and rewrites the message instead.
bool splice_meta(std::string& message, const MetaMembers& members);

// Replaces the string at `path` (object keys from the top, e.g. {"params", "name"}) with `value`
// in the text of `message`. Returns false, leaving `message` as it was, when that cannot be done
// without doubt (as splice_meta): a key on the way is escaped or appears twice, a value on the way
// is not an object, or the last one is absent or not a string.
bool replace_string_at(std::string& message, std::initializer_list<std::string_view> path,
                       std::string_view value);

}  // namespace membrane::mcp
