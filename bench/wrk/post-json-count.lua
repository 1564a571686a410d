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

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests":%d,"durationUs":%d,"p50Us":%d,"p99Us":%d,"meanUs":%.1f,' ..
    '"connectErrors":%d,"readErrors":%d,"writeErrors":%d,"statusErrors":%d,"timeouts":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.mean,
    errors.connect, errors.read, errors.write, errors.status, errors.timeout))
end
