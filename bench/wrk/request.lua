-- One request shape taken from the environment, with a check of every response.
-- BENCH_METHOD, BENCH_PATH, BENCH_BODY, BENCH_HEADERS ("Name: value" lines),
-- BENCH_EXPECT (comma-separated statuses), BENCH_MATCH ("|"-separated substrings; one must occur).
-- done() prints one BENCH_RESULT JSON line that bench/lib/wrk.ts parses.
local method = os.getenv("BENCH_METHOD") or "GET"
local path = os.getenv("BENCH_PATH") or "/"
local body = os.getenv("BENCH_BODY")
if body == "" then body = nil end
local headers = {}
for line in string.gmatch(os.getenv("BENCH_HEADERS") or "", "[^\n]+") do
  local name, value = string.match(line, "^([^:]+):%s*(.*)$")
  if name then headers[name] = value end
end
local expected = {}
for status in string.gmatch(os.getenv("BENCH_EXPECT") or "200", "%d+") do
  expected[tonumber(status)] = true
end
local matches = {}
for m in string.gmatch(os.getenv("BENCH_MATCH") or "", "[^|]+") do
  table.insert(matches, m)
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  good = 0
  bad = 0
  sample = ""
  prepared = wrk.format(method, path, headers, body)
end

function request()
  return prepared
end

function response(status, _, resp_body)
  local ok = expected[status] == true
  if ok and #matches > 0 then
    ok = false
    for _, m in ipairs(matches) do
      if resp_body and string.find(resp_body, m, 1, true) then ok = true break end
    end
  end
  if ok then
    good = good + 1
  else
    bad = bad + 1
    if sample == "" then sample = status .. " " .. string.sub(resp_body or "", 1, 160) end
  end
end

function done(summary, latency, requests)
  local g, b, s = 0, 0, ""
  for _, t in ipairs(threads) do
    g = g + t:get("good")
    b = b + t:get("bad")
    local ts = t:get("sample")
    if ts and ts ~= "" then s = ts end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"good":%d,"bad":%d,"socket_errors":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, g, b, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
  if s ~= "" then io.write("BENCH_SAMPLE " .. string.gsub(s, "\n", " ") .. "\n") end
end
