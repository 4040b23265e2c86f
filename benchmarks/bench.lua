-- One wrk script for every scenario, configured through the environment:
--   BENCH_METHOD   GET, POST or PATCH
--   BENCH_PATH     the path; "{id}" becomes a random id in 1..BENCH_ID_MAX
--   BENCH_BODY     a JSON body; "{n}" becomes a counter, "{price}" a random price
--   BENCH_TOKEN    a bearer token, sent when set
-- done() prints one line "BENCH_JSON {...}" that benchmarks/load.py reads.

local method = os.getenv("BENCH_METHOD") or "GET"
local path = os.getenv("BENCH_PATH") or "/"
local id_max = tonumber(os.getenv("BENCH_ID_MAX") or "0")
local body = os.getenv("BENCH_BODY")
local token = os.getenv("BENCH_TOKEN")
local headers = {}
local counter = 0

if body ~= nil and body ~= "" then
  headers["Content-Type"] = "application/json"
else
  body = nil
end
if token ~= nil and token ~= "" then
  headers["Authorization"] = "Bearer " .. token
end

function init(args)
  math.randomseed(os.time())
end

request = function()
  counter = counter + 1
  local p = path
  if id_max > 0 then
    p = (p:gsub("{id}", tostring(math.random(1, id_max))))
  end
  local b = nil
  if body then
    local price = string.format("%d.%02d", math.random(1, 999), math.random(0, 99))
    b = (body:gsub("{n}", tostring(counter)))
    b = (b:gsub("{price}", price))
  end
  return wrk.format(method, p, headers, b)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, '
      .. '"mean_us": %.1f, "non2xx": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.mean, e.status, e.connect + e.read + e.write + e.timeout))
end
