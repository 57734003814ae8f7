-- Pipelined GET: each write carries DEPTH requests, sent together, and the next write
-- goes out once all DEPTH responses are in (the TechEmpower plaintext shape).
--
--   wrk -t1 -c64 -d10s -s scripts/wrk/pipeline.lua http://127.0.0.1:8080/ -- 16 [PATH]
--
-- wrk counts every response, so Requests/sec is responses per second; each latency
-- sample runs from the write of a batch to one of its responses.

local depth = 16
local batch

function init(args)
    depth = tonumber(args[1] or "16")
    if depth == nil or depth < 1 then
        error("pipeline depth must be a positive number, got " .. tostring(args[1]))
    end
    local path = args[2] or wrk.path
    local one = wrk.format("GET", path)
    local parts = {}
    for i = 1, depth do
        parts[i] = one
    end
    batch = table.concat(parts)
end

function request()
    return batch
end
