-- examples/echo.lua stops in milliseconds every time: its two workers
-- share one listening socket, a client connects just before SIGTERM, and
-- the worker that loses the race for the connection must not be left
-- blocking in accept() (the manager makes listening sockets non-blocking).
local H = require("helpers")
local proc = H.proc
local socket = require("socket")

local ECHO = H.root .. "/examples/echo.lua"

local free_port = H.free_port

describe("echo example stop", function()
  local p

  it("stops 50 times in a row, each within 0.5 s of SIGTERM (x COTYLUA_SPEC_SLOW), with exit 0", function()
    local port = free_port()
    local slowest, times = 0, {}
    for i = 1, 50 do
      local dir = H.tmpdir()
      p = H.start{ dir = dir, file = ECHO,
                   env = { "ECHO_LISTEN=tcp://127.0.0.1:" .. port, "ECHO_WORKERS=2" } }
      H.wait_until(function() return p:stderr():find("ready: ", 1, true) end, 10, "the workers")
      local c = assert(socket.connect("127.0.0.1", port))
      assert(c:send("whoami\n"))
      local t0 = proc.now()
      assert(p:kill("TERM"))
      local st = p:wait(10)
      local took = proc.now() - t0
      c:close()
      times[#times + 1] = took
      slowest = math.max(slowest, took)
      assert.are.same({ code = 0 }, st, "stop " .. i .. ": " .. p:stderr())
      -- 0.5 s; more for a slow build (COTYLUA_SPEC_SLOW: the sanitizers'
      -- leak check at every exit)
      assert(took < 0.5 * H.slow, ("stop %d took %.3f s:\n%s"):format(i, took, p:stderr()))
      assert.are.equal(0, H.finish(p), "processes were left behind")
      p = nil
    end
    table.sort(times)
    io.stderr:write(("echo stops: median %.1f ms, slowest %.1f ms\n"):format(
      times[25] * 1000, slowest * 1000))
  end)
end)
