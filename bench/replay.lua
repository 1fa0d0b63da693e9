-- wrk script: send prepared requests from a file, one per line: METHOD<TAB>PATH<TAB>HEADERS<TAB>BODY, where
-- HEADERS is "Name: value" pairs joined by "|". Args: file [once]. With "once" each line is sent once, then the
-- thread stops; otherwise the lines are sent round and round.
local lines = {}
local next_line = 1
local sent, answered = 0, 0
local once = false
local checked = false  -- wrk calls request() once on the first thread to check the script, and sends nothing

local function split(line)
  local method, path, header_text, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
  local headers = {}
  for pair in header_text:gmatch("[^|]+") do
    local name, value = pair:match("^([^:]+):%s*(.*)$")
    headers[name] = value
  end
  return wrk.format(method, path, headers, body ~= "" and body or nil)
end

function init(args)
  for line in io.lines(args[1]) do
    lines[#lines + 1] = split(line)
  end
  once = args[2] == "once"
end

function request()
  if not checked then
    checked = true
    return lines[1]
  end
  if once and next_line > #lines then
    return lines[#lines]  -- a repeat of the last line (a duplicate delivery, harmless) until the thread stops
  end
  local prepared = lines[next_line]
  next_line = next_line + 1
  if next_line > #lines and not once then
    next_line = 1
  end
  sent = sent + 1
  return prepared
end

function response(status, headers, body)
  answered = answered + 1
  if once and answered >= #lines then
    wrk.thread:stop()
  end
end

done = dofile(os.getenv("BENCH_DIR") .. "/report.lua")
