// Serializing a message head into one contiguous buffer. Beast's general serializer walks a
// chain of buffer views per field; for the small, complete messages of the request path a
// single pass into a reused string is several times cheaper, and the head and body then go out
// in one gathered write.
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <string>

namespace membrane::http {

void append_head(std::string& out, const boost::beast::http::response_header<>& head);
void append_head(std::string& out, const boost::beast::http::request_header<>& head);

}  // namespace membrane::http
