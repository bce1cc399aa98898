-- wrk script for bench/escalate_throughput.py: POST to a path template, one session id per
-- request so every escalate hits a fresh session. Arguments after `--`:
--   first_id last_id template token
-- `template` is a path with one %d (the session id) or without (the same path every time).
-- Thread n of T takes ids first_id + n, first_id + n + T, ... up to last_id.

local threads = {}

function setup(thread)
  thread:set("thread_index", #threads)
  table.insert(threads, thread)
end

function init(args)
  first_id = tonumber(args[1])
  last_id = tonumber(args[2])
  template = args[3]
  step = tonumber(args[5])
  next_id = first_id + thread_index
  ran_out = 0
  statuses = {}
  wrk.method = "POST"
  wrk.body = '{"reason": "Spooler keeps crashing after the driver update", "notes": "wrk"}'
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. args[4]
end

function request()
  local id = next_id
  if id > last_id then
    ran_out = ran_out + 1
    id = last_id
  end
  next_id = next_id + step
  return wrk.format(nil, string.format(template, id))
end

function response(status, headers, body)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
end

function done(summary, latency, requests)
  local merged, out_of_ids = {}, 0
  for _, thread in ipairs(threads) do
    out_of_ids = out_of_ids + (thread:get("ran_out") or 0)
    for status, count in pairs(thread:get("statuses") or {}) do
      merged[status] = (merged[status] or 0) + count
    end
  end
  local parts = {}
  for status, count in pairs(merged) do
    table.insert(parts, string.format('"%s": %d', status, count))
  end
  io.write(string.format(
    '{"wrk": {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "max": %d, "mean": %.1f}, ' ..
    '"statuses": {%s}, "ran_out_of_ids": %d}}\n',
    summary.requests, summary.duration, summary.bytes,
    summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean, table.concat(parts, ", "), out_of_ids))
end
