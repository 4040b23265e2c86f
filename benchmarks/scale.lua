-- Mixed traffic for benchmarks/scale.py: reads and writes by several users at once.
--   SCALE_USERS   "token:first:last;..."  each user's bearer token and the ids it owns
--   SCALE_ID_MAX  the highest seeded product id (anonymous reads pick from 1..SCALE_ID_MAX)
-- Each request picks an operation by weight and a user at random. done() prints one line
-- "SCALE_JSON {...}" with the totals and the count of every status code.

local users = {}
for token, first, last in string.gmatch(os.getenv("SCALE_USERS") or "", "([^:;]+):(%d+):(%d+)") do
  users[#users + 1] = { token = token, first = tonumber(first), last = tonumber(last) }
end
local id_max = tonumber(os.getenv("SCALE_ID_MAX") or "1")

-- SCALE_LOGIN "user1,user2,...:password": 1 request in 101 logs one of them in (a
-- password hash each; parallel attempts on one name are throttled, so they are spread)
local login = os.getenv("SCALE_LOGIN")
local login_names, login_password = {}, nil
if login then
  local names
  names, login_password = string.match(login, "([^:]+):(.+)")
  for name in string.gmatch(names, "[^,]+") do login_names[#login_names + 1] = name end
end

-- name, weight: 70% reads, 30% writes
local operations = {
  { "retrieve", 25 }, { "retrieve-token", 15 }, { "list", 15 }, { "list-filtered", 15 },
  { "create", 15 }, { "patch", 15 },
}
if login then operations[#operations + 1] = { "login", 1 } end
local total_weight = 0
for _, op in ipairs(operations) do total_weight = total_weight + op[2] end

statuses = {}  -- global: done() reads it from each thread
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  threads = threads or {}
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() + id * 7919)
end

local function pick()
  local r = math.random(1, total_weight)
  for _, op in ipairs(operations) do
    r = r - op[2]
    if r <= 0 then return op[1] end
  end
end

local function price()
  return string.format("%d.%02d", math.random(1, 999), math.random(0, 99))
end

request = function()
  local user = users[math.random(1, #users)]
  local auth = { ["Authorization"] = "Bearer " .. user.token }
  local json = { ["Authorization"] = auth["Authorization"], ["Content-Type"] = "application/json" }
  local op = pick()
  if op == "retrieve" then
    return wrk.format("GET", "/api/v1/products/" .. math.random(1, id_max), {})
  elseif op == "retrieve-token" then
    return wrk.format("GET", "/api/v1/products/" .. math.random(1, id_max), auth)
  elseif op == "list" then
    return wrk.format("GET", "/api/v1/products?limit=50&offset=" .. math.random(0, 1000), {})
  elseif op == "list-filtered" then
    local path = "/api/v1/products?limit=50&ordering=-price&price__gte=" .. math.random(1, 900)
      .. "&category_id=" .. math.random(1, 20)
    return wrk.format("GET", path, auth)
  elseif op == "login" then
    local username = login_names[math.random(1, #login_names)]
    local form = { ["Content-Type"] = "application/x-www-form-urlencoded" }
    return wrk.format("POST", "/api/v1/auth/token", form,
      "username=" .. username .. "&password=" .. login_password)
  elseif op == "create" then
    local body = string.format(
      '{"name": "Load %d", "price": "%s", "category_id": %d}',
      math.random(1, 1000000000), price(), math.random(1, 20))
    return wrk.format("POST", "/api/v1/products", json, body)
  else
    local path = "/api/v1/products/" .. math.random(user.first, user.last)
    return wrk.format("PATCH", path, json, string.format('{"price": "%s"}', price()))
  end
end

response = function(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local merged = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      merged[status] = (merged[status] or 0) + count
    end
  end
  local parts = {}
  for status, count in pairs(merged) do
    parts[#parts + 1] = string.format('"%d": %d', status, count)
  end
  local e = summary.errors
  io.write(string.format(
    'SCALE_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, '
      .. '"p99_us": %d, "max_us": %d, "non2xx": %d, "socket_errors": %d, "statuses": {%s}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.status, e.connect + e.read + e.write + e.timeout,
    table.concat(parts, ", ")))
end
