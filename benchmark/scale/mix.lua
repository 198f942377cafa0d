-- wrk script of the scale harness (benchmark/scale/run.sh): requests spread over the N sessions
-- bench_server prefilled (PREFILL=N), chosen at random per request. MODE: `mix` (90% /read, 9%
-- /write of a prefilled session, 1% /write without a cookie: a new session), `read` (B),
-- `write` (C) or `new` (D). Ids as bench_server derives them (its header): 5e55, the seed as 8
-- hex digits, 40008, the session's number as 15 hex digits.
local n = tonumber(os.getenv("N") or "100000")
local seed = tonumber(os.getenv("PREFILL_SEED") or "0")
local mode = os.getenv("MODE") or "mix"

local function cookie()
  return { ["Cookie"] = string.format("id=5e55%08x40008%015x", seed, math.random(0, n - 1)) }
end

function init(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
end

function request()
  local r = math.random()
  if mode == "read" or (mode == "mix" and r < 0.90) then
    return wrk.format("GET", "/read", cookie())
  elseif mode == "write" or (mode == "mix" and r < 0.99) then
    return wrk.format("GET", "/write", cookie())
  end
  return wrk.format("GET", "/write")
end

-- One tab-separated line: req/s, p50 us, p99 us, errors, completed requests.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT\t%.1f\t%d\t%d\t%d\t%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout, summary.requests))
end
