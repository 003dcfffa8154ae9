-- A NOTIFY_SOCKET whose reader stops reading never stops the manager: its
-- messages are dropped and counted, and supervision goes on.
local H = require("helpers")
local proc = H.proc
-- the sanitizer build starts and stops processes several times more slowly
local SLOW = H.slow or 1

describe("a NOTIFY_SOCKET nobody reads", function()
  local fd

  after_each(function()
    if fd then proc.close(fd) end
    fd = nil
  end)

  it("does not block the manager: a SIGKILLed worker is respawned, SIGTERM stops it", function()
    local dir = H.tmpdir()
    local path = dir .. "/notify.sock"
    fd = assert(proc.dgram_socket(path))
    -- a watchdog ping every 10 ms fills the socket's queue (10 datagrams) at once
    local p = H.run_app([[
local S = { name = "w" }
function S:run() ev("run %d", cotylua.getpid()) cotylua.sleep(1e9) end
local m = cotylua.manager()
m:add(S, { workers = 2 })
return m
]], "binary", { dir = dir, env = { "NOTIFY_SOCKET=" .. path, "WATCHDOG_USEC=20000" } })
    local first = tonumber(p:wait_event("^run (%d+)$"))
    H.wait_until(function() return p:count_events("^run ") == 2 end)
    proc.sleep(0.5) -- 50 watchdog intervals: the queue is long full
    assert(proc.kill(first, "KILL"))
    local t0 = proc.now()
    H.wait_until(function() return p:count_events("^run ") == 3 end, 1, "the respawn") -- scaled by wait_until
    assert.is_true(proc.now() - t0 < 1 * SLOW)
    -- the reader reads again: the next message goes, and the count is logged
    while proc.recv(fd, 0) do end
    H.wait_until(function()
      return p:stderr():find("%d+ messages to NOTIFY_SOCKET dropped")
    end, 2, "the count of dropped messages")
    proc.sleep(0.3) -- full again
    t0 = proc.now()
    assert(p:kill("TERM"))
    assert.are.same({ code = 0 }, p:wait(2 * SLOW))
    assert.is_true(proc.now() - t0 < 2 * SLOW)
  end)
end)
