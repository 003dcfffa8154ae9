-- spec/support/http_load.lua - drives one of the examples/http_*.lua
-- servers with real clients (wrk for load, curl for requests in flight)
-- through every stop the manager makes, and counts what was lost.
--
--   require("http_load").describe_example("http_luv.lua", _ENV)
--
-- (the spec's _ENV carries busted's describe, it, assert and the rest)
--
-- Loopback only; each wrk run lasts a few seconds (until the case ends it
-- with SIGINT, on which wrk prints its figures). Every case prints one
-- line "http load: EXAMPLE CASE: N requests, N failed, N refused" on
-- stderr, the figures of the report.
local H = require("helpers")
local proc = H.proc
local socket = require("socket")

local L = {}
local assert -- busted's, set by describe_example

local LONGEST = 120       -- seconds: wrk runs until the case has done its part, then gets SIGINT
local CONNECTIONS = 16

local function free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

-- Inodes of the established server-side TCP sockets on port that a
-- process has accepted (a connection still in the backlog has inode 0).
local function accepted_inodes(port)
  local out = {}
  for _, file in ipairs({ "/proc/net/tcp", "/proc/net/tcp6" }) do
    local text = H.read(file)
    for lport, st, inode in text:gmatch("\n%s*%d+: %x+:(%x+) %x+:%x+ (%x+) %S+ %S+ %S+ +%d+ +%d+ (%d+)") do
      if tonumber(lport, 16) == port and st == "01" and inode ~= "0" then
        out[inode] = true
      end
    end
  end
  return out
end

local function count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

-- How many accepted connections on port the process pid holds.
local function held_by(pid, port)
  local inodes, n = accepted_inodes(port), 0
  for _, fd in ipairs(H.fds(pid)) do
    local link = proc.readlink(("/proc/%d/fd/%d"):format(pid, fd)) or ""
    local inode = link:match("^socket:%[(%d+)%]$")
    if inode and inodes[inode] then n = n + 1 end
  end
  return n
end

-- The figures of a finished wrk run.
local function parse_wrk(text)
  local r = {
    requests = tonumber(text:match("(%d+) requests in")),
    non2xx = tonumber(text:match("Non%-2xx or 3xx responses: (%d+)")) or 0,
    connect = 0, read = 0, write = 0, timeout = 0,
  }
  local c, rd, w, t = text:match("Socket errors: connect (%d+), read (%d+), write (%d+), timeout (%d+)")
  if c then
    r.connect, r.read, r.write, r.timeout = tonumber(c), tonumber(rd), tonumber(w), tonumber(t)
  end
  r.failed = r.read + r.write + r.timeout + r.non2xx
  return r
end

local function start_wrk(dir, port)
  return H.start{ dir = dir, argv = { "wrk", "-t2", "-c" .. CONNECTIONS, "-d" .. LONGEST .. "s",
    "--timeout", "10s", ("http://127.0.0.1:%d/"):format(port) } }
end

-- Ends wrk (SIGINT) and returns its figures.
local function finish_wrk(w)
  assert(w:kill("INT"))
  assert.are.same({ code = 0 }, w:wait(20), "wrk: " .. w:stderr())
  local r = parse_wrk(w:stdout())
  assert(r.requests, "no wrk figures in:\n" .. w:stdout())
  return r
end

-- A curl for /slow?ms=MS in the background; its stdout is the status.
local function start_curl(ms, port)
  return H.start{ dir = H.tmpdir(), argv = { "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
    "--max-time", "20", ("http://127.0.0.1:%d/slow?ms=%d"):format(port, ms) } }
end

local function curl_status(c)
  local st = c:wait(25)
  return ("%s %s"):format(c:stdout(), st and st.code or "running")
end

local function report(example, case, r)
  io.stderr:write(("http load: %s %s: %d requests, %d failed, %d refused\n"):format(
    example, case, r.requests or 0, r.failed or 0, r.connect or 0))
end

function L.describe_example(example, busted_env)
  local describe, it, setup, after_each = busted_env.describe, busted_env.it, busted_env.setup, busted_env.after_each
  assert = busted_env.assert
  local file = H.root .. "/examples/" .. example

  describe(example .. " under load", function()
    local p, port

    setup(function() proc.set_subreaper() end)

    after_each(function()
      assert.are.equal(0, H.finish(p), "processes were left behind")
      p = nil
    end)

    local function start(env_extra, services_file)
      port = free_port()
      local env = { "HTTP_LISTEN=tcp://127.0.0.1:" .. port, "HTTP_WORKERS=2" }
      for _, kv in ipairs(env_extra or {}) do env[#env + 1] = kv end
      p = H.start{ dir = H.tmpdir(), file = services_file or file, env = env }
      H.wait_until(function() return p:stderr():find("ready: 2 workers", 1, true) end, 20,
        "2 workers ready")
      return H.workers_of(p.pid, "http")
    end

    local function tail() return "\n--- manager's stderr:\n" .. p:stderr():sub(-3000) end

    -- H.wait_until, with the manager's log in the message when it times out.
    local function wait_until(pred, timeout, what)
      local r = table.pack(pcall(H.wait_until, pred, timeout, what))
      if not r[1] then error(tostring(r[2]) .. tail(), 2) end
      return table.unpack(r, 2, r.n)
    end

    local function both_replaced(old)
      return function()
        local now, n = H.workers_of(p.pid, "http")
        if n ~= 2 then return false end
        for id, pid in pairs(now) do
          if old[id] == pid then return false end
        end
        return now
      end
    end

    local function stop()
      assert(p:kill("TERM"))
      assert.are.same({ code = 0 }, p:wait(20), p:stderr())
    end

    -- Requests whose connections the workers have accepted: at least n.
    local function wait_accepted(n)
      wait_until(function() return count(accepted_inodes(port)) >= n end, 20,
        n .. " accepted connections")
    end

    it("answers every request in flight when SIGTERM arrives with 200", function()
      start()
      local curls = {}
      for i = 1, 4 do curls[i] = start_curl(1000, port) end
      wait_accepted(4)
      local t0 = proc.now()
      stop()
      for i = 1, 4 do
        assert.are.equal("200 0", curl_status(curls[i]), p:stderr())
      end
      -- the workers waited for their requests, and no longer than that
      assert(proc.now() - t0 < 8, "the stop took " .. (proc.now() - t0) .. " s")
      assert.are_not.matches("timeout exceeded", p:stderr())
      report(example, "SIGTERM", { requests = 4, failed = 0, connect = 0 })
    end)

    it("loses nothing when SIGHUP reloads the workers", function()
      local before = start({ "HTTP_RELOAD=1" })
      local w = start_wrk(p.dir, port)
      wait_accepted(CONNECTIONS)
      local slow = start_curl(800, port)
      for i = 1, 2 do
        assert(p:kill("HUP"))
        wait_until(function()
          return select(2, p:stderr():gsub("reloaded %(" .. i .. "%)", "")) == 2
        end, 10, "both workers to reload (" .. i .. ")")
      end
      wait_accepted(CONNECTIONS) -- wrk is back to full load
      local r = finish_wrk(w)
      report(example, "SIGHUP-reload", r)
      assert.are.equal("200 0", curl_status(slow))
      assert.are.same(before, (H.workers_of(p.pid, "http")), "reload kept the workers:\n" .. p:stderr())
      assert.are.same({ 0, 0 }, { r.connect, r.failed }, "wrk:\n" .. w:stdout() .. tail())
      stop()
    end)

    it("loses nothing when SIGHUP restarts the workers (no reload)", function()
      local workers = start()
      local slow = start_curl(2000, port) -- in flight at the first SIGHUP
      wait_accepted(1)
      local w = start_wrk(p.dir, port)
      wait_accepted(CONNECTIONS)
      for _ = 1, 2 do
        assert(p:kill("HUP"))
        workers = wait_until(both_replaced(workers), 15, "both workers restarted")
        wait_until(function() return held_by(workers[0], port) + held_by(workers[1], port) > 0 end,
          10, "the new workers to serve")
      end
      wait_accepted(CONNECTIONS) -- wrk is back to full load
      local r = finish_wrk(w)
      report(example, "SIGHUP-restart", r)
      assert.are.equal("200 0", curl_status(slow))
      assert.are.same({ 0, 0 }, { r.connect, r.failed }, "wrk:\n" .. w:stdout() .. tail())
      stop()
    end)

    it("loses at most the connections of a SIGKILLed worker, and refuses none", function()
      local workers = start()
      local w = start_wrk(p.dir, port)
      local held, kills = 0, 0
      for i = 1, 3 do
        wait_accepted(CONNECTIONS)
        local victim = workers[i % 2]
        held = held + held_by(victim, port)
        assert(proc.kill(victim, "KILL"))
        kills = kills + 1
        workers = wait_until(function()
          local now, n = H.workers_of(p.pid, "http")
          return n == 2 and now[i % 2] ~= victim and now
        end, 10, "the killed worker respawned")
      end
      wait_accepted(CONNECTIONS) -- wrk is back to full load
      local r = finish_wrk(w)
      report(example, ("SIGKILL x%d (held %d)"):format(kills, held), r)
      assert.are.equal(0, r.connect, "refused:\n" .. w:stdout())
      assert(r.failed <= held, ("%d failed, the killed workers held %d:\n%s"):format(r.failed, held, w:stdout()))
      stop()
    end)

    it("loses nothing when reconfigure takes a worker away", function()
      local dir = H.tmpdir()
      local wrapper = H.write(dir .. "/services.lua", ([[
local manager = dofile(%q)
manager:register_hooks({ on_reload = function() manager:reconfigure(1, 1) end })
return manager
]]):format(file))
      local workers = start({ "HTTP_RELOAD=1" }, wrapper)
      -- slow requests until worker(1), the one to go, has one in flight
      local slow = {}
      repeat
        slow[#slow + 1] = start_curl(3000, port)
        wait_accepted(#slow)
      until held_by(workers[1], port) > 0 or #slow == 30 -- an idle worker 0 may win many in a row
      assert(held_by(workers[1], port) > 0, "no request reached worker(1)")
      local w = start_wrk(p.dir, port)
      wait_accepted(CONNECTIONS)
      assert(p:kill("HUP"))
      wait_until(function() return select(2, H.workers_of(p.pid, "http")) == 1 end, 15,
        "one worker left")
      wait_accepted(CONNECTIONS) -- wrk is back to full load
      local r = finish_wrk(w)
      report(example, "reconfigure-down", r)
      for _, c in ipairs(slow) do
        assert.are.equal("200 0", curl_status(c), tail())
      end
      assert.are.same({ 0, 0 }, { r.connect, r.failed }, "wrk:\n" .. w:stdout() .. tail())
      assert.are_not.matches("timeout exceeded", p:stderr())
      stop()
    end)
  end)
end

return L
