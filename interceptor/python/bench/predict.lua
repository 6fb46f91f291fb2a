-- wrk script: POST one iris prediction per request; print exact percentiles (µs) at the end.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"instances":[[5.1,3.5,1.4,0.2]]}'

function done(summary, latency, requests)
  io.write(string.format(
    "RESULT requests=%d duration_us=%d errors=%d p50_us=%d p90_us=%d p99_us=%d\n",
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
