-- POST with a body of SIZE bytes (default 1024) and a Content-Length header.
--
--   wrk -t1 -c64 -d10s -s scripts/wrk/post.lua http://127.0.0.1:8080/ -- 1024 [PATH]

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/octet-stream"

function init(args)
    local size = tonumber(args[1] or "1024")
    if size == nil or size < 0 then
        error("body size must be a number of bytes, got " .. tostring(args[1]))
    end
    wrk.body = string.rep("x", size)
    if args[2] then
        wrk.path = args[2]
    end
end
