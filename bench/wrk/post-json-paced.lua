-- Like post-json.lua, but paced: the requests of all connections together leave on one schedule
-- of WRK_RATE a second (one wrk thread, -t1), so that latency is measured at a given load rather
-- than at saturation. A request whose turn came while every connection was busy leaves as soon
-- as one is free, and the schedule does not catch up: the rate reached shows in the result.
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } hearth_timespec;
  int clock_gettime(int clock, hearth_timespec *now);
]]
local CLOCK_MONOTONIC = 1
local clock = ffi.new("hearth_timespec")
local function nowMs()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, clock)
  return tonumber(clock.tv_sec) * 1000 + tonumber(clock.tv_nsec) / 1e6
end

wrk.method = "POST"
wrk.body = '{"bench":true}'
wrk.headers["Content-Type"] = "application/json"

local intervalMs = 1000 / tonumber(os.getenv("WRK_RATE") or "1000")
local nextAt

-- wrk waits this many whole milliseconds before sending a connection's next request.
function delay()
  local now = nowMs()
  if nextAt == nil or nextAt < now then
    nextAt = now
  end
  local wait = nextAt - now
  nextAt = nextAt + intervalMs
  return math.floor(wait)
end

-- done(): the result line the benchmarks read, from report.lua in this script's folder.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")
