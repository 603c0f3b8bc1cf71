-- Request generator for bench/inference_bench.py, run by `wrk -t1 -s bench/wrk_load.lua`.
-- Environment:
--   WRK_PATH      request path (POST)
--   WRK_API_KEY   sent as `Authorization: Bearer ...` when set
--   WRK_BODIES    file of bodies, one a line: sent in turn (the cache-hit workloads)
--   WRK_TEMPLATE  file holding one body with @N@ in it: @N@ becomes a counter, a new body per request (misses)
--   WRK_START     first counter value (each run starts elsewhere, so no body is ever repeated)
--   WRK_OUT       where done() writes its JSON summary (latencies in microseconds)
local path = os.getenv("WRK_PATH")
local headers = { ["Content-Type"] = "application/json" }
local key = os.getenv("WRK_API_KEY")
if key ~= nil and key ~= "" then
  headers["Authorization"] = "Bearer " .. key
end

local function read_all(name)
  local f = assert(io.open(name, "rb"))
  local text = f:read("*a")
  f:close()
  return text
end

local prepared = {}
local template = nil
local counter = tonumber(os.getenv("WRK_START") or "0")
local turn = 0

init = function(args)
  local bodies = os.getenv("WRK_BODIES")
  if bodies ~= nil and bodies ~= "" then
    for line in io.lines(bodies) do
      prepared[#prepared + 1] = wrk.format("POST", path, headers, line)
    end
  else
    template = read_all(os.getenv("WRK_TEMPLATE"))
  end
end

request = function()
  if template == nil then
    turn = turn % #prepared + 1
    return prepared[turn]
  end
  counter = counter + 1
  local body = (string.gsub(template, "@N@", tostring(counter)))
  return wrk.format("POST", path, headers, body)
end

done = function(summary, latency, requests)
  local e = summary.errors
  local f = assert(io.open(os.getenv("WRK_OUT"), "w"))
  f:write(string.format(
    '{"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, "status": %d, ' ..
    '"timeout": %d, "p50_us": %.1f, "p90_us": %.1f, "p99_us": %.1f, "max_us": %.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
  f:close()
end
