-- bench/http.lua [--repeats N] [--seconds S] [--out FILE]: what
-- supervision costs an HTTP server. For examples/http_lua_http.lua and
-- examples/http_luv.lua, requests per second under cotylua (1 worker)
-- against the same server started alone in one process
-- (bench/alone.lua), measured by wrk on loopback, alternating the two so
-- that drift in the machine's load falls on both; the server runs on
-- core 1 and wrk on core 0 (taskset). Target: cotylua within
-- 3% of alone. Prints a table and writes it to FILE (default
-- build/bench/HTTP.md).
local function dirname(path)
  return path:match("^(.*)/[^/]*$") or "."
end

local SCRIPT_DIR = dirname(arg and arg[0] or "bench/http.lua")
package.cpath = SCRIPT_DIR .. "/../build/spec/?.so;" .. package.cpath
local proc = require("proc")
local socket = require("socket")

local ROOT = assert(proc.realpath(SCRIPT_DIR .. "/.."))
local BIN = ROOT .. "/build/bin/cotylua"
local EXAMPLES = { "http_lua_http.lua", "http_luv.lua" }
local TARGET = 0.97

local opts = { repeats = 5, seconds = 5, out = ROOT .. "/build/bench/HTTP.md" }
do
  local i = 1
  while arg[i] do
    local k, v = arg[i]:match("^%-%-(%a+)$"), arg[i + 1]
    if k == "repeats" or k == "seconds" then
      opts[k] = assert(tonumber(v), "--" .. k .. " takes a number")
    elseif k == "out" then
      opts.out = v
    else
      error("usage: lua5.4 bench/http.lua [--repeats N] [--seconds S] [--out FILE]")
    end
    i = i + 2
  end
end

local function free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

local function env(port)
  return { "PATH=" .. (os.getenv("PATH") or "/usr/bin:/bin"), "LANG=C",
           "HTTP_LISTEN=tcp://127.0.0.1:" .. port, "HTTP_WORKERS=1" }
end

-- Waits until the server answers on port.
local function wait_serving(port, pid)
  local deadline = proc.now() + 10
  while proc.now() < deadline do
    local c = socket.connect("127.0.0.1", port)
    if c then
      c:close()
      return
    end
    assert(proc.alive(pid), "the server died")
    proc.sleep(0.02)
  end
  error("the server does not answer on port " .. port)
end

local function wrk(port, seconds)
  local f = assert(io.popen(("taskset -c 0 wrk -t1 -c16 -d%ds http://127.0.0.1:%d/ 2>&1"):format(seconds, port)))
  local out = f:read("a")
  f:close()
  local errors = out:match("Socket errors:[^\n]*") or out:match("Non%-2xx[^\n]*")
  assert(not errors, "wrk reported errors: " .. tostring(errors) .. "\n" .. out)
  return assert(tonumber(out:match("Requests/sec:%s*([%d.]+)")), "no figure from wrk:\n" .. out)
end

-- Requests per second of one server: started, warmed up, measured, stopped.
local function measure(how, example)
  local port = free_port()
  local file = ROOT .. "/examples/" .. example
  local argv = how == "cotylua" and { BIN, file } or { "lua5.4", ROOT .. "/bench/alone.lua", file, tostring(port) }
  -- the server on the second core, wrk on the first: the two do not trade places
  table.insert(argv, 1, "taskset")
  table.insert(argv, 2, "-c")
  table.insert(argv, 3, "1")
  local pid = assert(proc.spawn{ argv = argv, env = env(port), stdout = "/dev/null",
                                 stderr = "/dev/null", newpgrp = true })
  local ok, rps = pcall(function()
    wait_serving(port, pid)
    wrk(port, 1) -- warm-up
    return wrk(port, opts.seconds)
  end)
  proc.kill(pid, "TERM")
  if not proc.wait(pid, 20) then
    proc.killpg(pid, "KILL")
    proc.wait(pid, 5)
  end
  proc.killpg(pid, "KILL") -- nothing of it stays
  assert(ok, rps)
  return rps
end

local function median(t)
  local s = { table.unpack(t) }
  table.sort(s)
  local n = #s
  return n % 2 == 1 and s[(n + 1) // 2] or (s[n // 2] + s[n // 2 + 1]) / 2
end

local rows = {}
for _, example in ipairs(EXAMPLES) do
  local got = { alone = {}, cotylua = {} }
  for r = 1, opts.repeats do
    local order = r % 2 == 1 and { "alone", "cotylua" } or { "cotylua", "alone" }
    for _, how in ipairs(order) do
      local rps = measure(how, example)
      got[how][#got[how] + 1] = rps
      io.stderr:write(("%s %s run %d: %.0f requests/s\n"):format(example, how, r, rps))
    end
  end
  local alone, under = median(got.alone), median(got.cotylua)
  rows[#rows + 1] = ("| %s | %.0f (%.0f – %.0f) | %.0f (%.0f – %.0f) | %.3f | ≥ %.2f | %s |"):format(
    example, under, math.min(table.unpack(got.cotylua)), math.max(table.unpack(got.cotylua)),
    alone, math.min(table.unpack(got.alone)), math.max(table.unpack(got.alone)),
    under / alone, TARGET, under / alone >= TARGET and "met" or "not met")
end

local load = io.open("/proc/loadavg"):read("l")
local text = table.concat({
  "# HTTP servers: cotylua against the same server alone",
  "",
  ("Written by `bench/http.lua` on %s: wrk -t1 -c16 on loopback (wrk on core 0, the server on core 1), "
    .. "%d s per run after a 1 s warm-up, "
    .. "%d runs each, alternating; 1 worker. Median, then (min – max), in requests per second. "
    .. "Load average at the end: %s."):format(os.date("!%Y-%m-%d %H:%M UTC"), opts.seconds, opts.repeats, load),
  "",
  "| server | under cotylua | alone | ratio | target | |",
  "| --- | --- | --- | --- | --- | --- |",
  table.concat(rows, "\n"),
  "",
}, "\n")
io.write(text)
os.execute("mkdir -p '" .. dirname(opts.out) .. "'")
local f = assert(io.open(opts.out, "w"))
f:write(text)
f:close()
