-- Prints wrk's summary as one JSON line (latencies in microseconds), prefixed so the harness finds it.
-- FASTLB_BENCH_DELAY_MS, when set, makes every connection wait that long before each request: a fixed
-- offered rate of about connections * 1000 / delay requests/s (wrk's own delay() hook).
local delay_ms = tonumber(os.getenv("FASTLB_BENCH_DELAY_MS") or "")
if delay_ms then
   delay = function() return delay_ms end
end

done = function(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
      '"p50":%d,"p90":%d,"p99":%d,"p999":%d,"mean":%.1f,"max":%d}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
      latency.mean, latency.max))
end
