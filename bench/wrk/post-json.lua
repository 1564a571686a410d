-- POSTs a small JSON event on every request and, when done, prints one JSON line with the
-- numbers the benchmark reads (latencies in microseconds, duration in microseconds).
wrk.method = "POST"
wrk.body = '{"bench":true}'
wrk.headers["Content-Type"] = "application/json"

-- done(): the result line the benchmarks read, from report.lua in this script's folder.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")
