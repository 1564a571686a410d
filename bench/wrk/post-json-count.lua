-- Like post-json.lua, but stops after a fixed number of answers (env WRK_REQUESTS) instead of
-- after a duration: a run that has to do a known amount of work (enqueue N events). One wrk
-- thread (-t1) is assumed: the count is per thread.
wrk.method = "POST"
wrk.body = '{"bench":true}'
wrk.headers["Content-Type"] = "application/json"

local limit = tonumber(os.getenv("WRK_REQUESTS") or "1000")
local answered = 0

function response(status, headers, body)
  answered = answered + 1
  if answered >= limit then
    wrk.thread:stop()
  end
end

-- done(): the result line the benchmarks read, from report.lua in this script's folder.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")
