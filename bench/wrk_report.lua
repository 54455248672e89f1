-- wrk report hook for bench/proxy_bench.py.
--
-- Prints wrk's summary as one JSON line prefixed with BENCH_JSON, so the
-- benchmark reads exact counters (microsecond latencies, error breakdown)
-- instead of parsing wrk's human-readable report with its rounded units.
--
-- BENCH_PACE_MS > 0 makes each connection wait that long between requests (a
-- fixed request rate); wrk only paces when the script defines delay(), so it is
-- defined only then and unpaced runs are untouched.
local pace_ms = tonumber(os.getenv("BENCH_PACE_MS") or "0") or 0
if pace_ms > 0 then
  delay = function()
    return pace_ms
  end
end

-- BENCH_VARY=1 gives every request its own path and X-Request-Id value, so no
-- request head repeats the previous one on its connection.
if os.getenv("BENCH_VARY") == "1" then
  local counter = 0
  request = function()
    counter = counter + 1
    local id = tostring(counter)
    return wrk.format(nil, "/item/" .. id, { ["X-Request-Id"] = id })
  end
end

done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,'
      .. '"errors_connect":%d,"errors_read":%d,"errors_write":%d,'
      .. '"errors_status":%d,"errors_timeout":%d,'
      .. '"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    errors.connect, errors.read, errors.write,
    errors.status, errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.max
  ))
end
