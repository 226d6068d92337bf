-- wrk script: MCP `tools/call` of the `echo` tool over Streamable HTTP (JSON-RPC in a POST).
--
--   wrk -t1 -c1 -d10s -s bench/tools_call.lua http://127.0.0.1:PORT/mcp
--
-- Environment:
--   MCP_SESSION_ID    sent as Mcp-Session-Id when set and non-empty
--   MCP_MESSAGE       the echoed text (default "hello from wrk")
--   MCP_TOOL          the tool called (default "echo")
--   MCP_PROTOCOL      2025-11-25 (default) or 2026-07-28: a stateless client, which sends
--                     Mcp-Method / Mcp-Name and the _meta envelope instead of a session
--   MCP_INITIALIZE    when "1", every request is an `initialize` without a session (each
--                     opens a new session: the cost of starting one)
--   MCP_STRICT_STATUS when "0", skip the per-response Lua callback and count only what wrk
--                     itself counts as a status error (HTTP >= 400); default: count every
--                     non-2xx response
--
-- Every request carries a fresh JSON-RPC id (unique across wrk threads): MCP forbids reusing
-- a request id within a session, and a gateway may track in-flight ids.
--
-- done() prints one machine-readable line:
--   RESULT requests=<n> rps=<r> p50_us=<x> p99_us=<y> errors=<non-2xx + socket errors>

local session = os.getenv("MCP_SESSION_ID") or ""
local message = os.getenv("MCP_MESSAGE") or "hello from wrk"
local tool = os.getenv("MCP_TOOL") or "echo"
local strict = os.getenv("MCP_STRICT_STATUS") ~= "0"
local protocol = os.getenv("MCP_PROTOCOL") or "2025-11-25"
local stateless = protocol >= "2026-07-28"
local initialize = os.getenv("MCP_INITIALIZE") == "1"

-- JSON string literal for the message (escapes what JSON requires).
local function json_string(s)
  s = s:gsub('[%c"\\]', function(c)
    local named = { ['"'] = '\\"', ['\\'] = '\\\\', ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t' }
    return named[c] or string.format("\\u%04x", c:byte())
  end)
  return '"' .. s .. '"'
end

local threads = {}
local next_thread = 0

function setup(thread)
  thread:set("thread_index", next_thread)
  next_thread = next_thread + 1
  table.insert(threads, thread)
end

local head, body_prefix, body_suffix
local counter = 0
non2xx = 0

function init(args)
  local lines = {
    "POST " .. wrk.path .. " HTTP/1.1",
    "Host: " .. wrk.headers["Host"],
    "Content-Type: application/json",
    "Accept: application/json, text/event-stream",
    "MCP-Protocol-Version: " .. protocol,
  }
  if stateless then
    table.insert(lines, "Mcp-Method: tools/call")
    table.insert(lines, "Mcp-Name: " .. tool)
  end
  if session ~= "" and not initialize then
    table.insert(lines, "Mcp-Session-Id: " .. session)
  end
  table.insert(lines, "Content-Length: ")
  head = table.concat(lines, "\r\n")
  body_prefix = '{"jsonrpc":"2.0","id":'
  local envelope = ""
  if stateless then
    envelope = ',"_meta":{"io.modelcontextprotocol/protocolVersion":"' .. protocol
        .. '","io.modelcontextprotocol/clientCapabilities":{}}'
  end
  body_suffix = ',"method":"tools/call","params":{"name":' .. json_string(tool) .. ',"arguments":{"message":'
      .. json_string(message) .. '}' .. envelope .. '}}'
  if initialize then
    body_suffix = ',"method":"initialize","params":{"protocolVersion":"' .. protocol
        .. '","capabilities":{},"clientInfo":{"name":"membrane-bench","version":"1.0.0"}}}'
  end
  -- Ids: thread_index * 1e12 + n, exact in a double and unique across threads.
  counter = (thread_index or 0) * 1000000000000
  if not strict then
    response = nil
  end
end

function request()
  counter = counter + 1
  local body = body_prefix .. string.format("%d", counter) .. body_suffix
  return head .. #body .. "\r\n\r\n" .. body
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local socket_errors = e.connect + e.read + e.write + e.timeout
  local status_errors = e.status
  if strict then
    status_errors = 0
    for _, thread in ipairs(threads) do
      status_errors = status_errors + (tonumber(thread:get("non2xx")) or 0)
    end
  end
  local seconds = summary.duration / 1e6
  local rps = seconds > 0 and summary.requests / seconds or 0
  io.write(string.format("RESULT requests=%d rps=%.1f p50_us=%d p99_us=%d errors=%d\n",
    summary.requests, rps, latency:percentile(50), latency:percentile(99),
    socket_errors + status_errors))
end
