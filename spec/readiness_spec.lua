-- Readiness: a report counts only from the worker it names.
local H = require("helpers")
local proc = H.proc

local CPATH = "package.cpath = " .. string.format("%q", H.root .. "/build/spec/?.so;") .. " .. package.cpath\n"

describe("readiness", function()
  local fd

  after_each(function()
    if fd then proc.close(fd) end
    fd = nil
  end)

  it("is not forged by a worker that sends another worker's pid", function()
    local dir = H.tmpdir()
    local path = dir .. "/notify.sock"
    fd = assert(proc.dgram_socket(path))
    local p = H.run_app(CPATH .. [[
local hp = require("proc")
local Slow = { name = "slow" }
function Slow:init()
  ev("slow init %d", cotylua.getpid())
  while not io.open("go") do cotylua.sleep(0.01) end
  ev("slow init done")
end
local Forger = { name = "forger" }
-- during init the readiness socket is its only socket: send it slow's pid
function Forger:init()
  local f = assert(io.open(os.getenv("EVENTS")))
  local pid
  repeat
    pid = f:read("a"):match("slow init (%d+)")
    f:seek("set")
    if not pid then cotylua.sleep(0.01) end
  until pid
  f:close()
  local sent = 0
  for _, name in ipairs(hp.listdir("/proc/self/fd")) do
    if (hp.readlink("/proc/self/fd/" .. name) or ""):find("^socket:") then
      if hp.write(tonumber(name), string.pack("i", tonumber(pid))) then sent = sent + 1 end
    end
  end
  ev("forged %d", sent)
end
local m = cotylua.manager()
m:add(Slow)
m:add(Forger)
return m
]], "binary", { dir = dir, env = { "NOTIFY_SOCKET=" .. path } })
    assert.are.equal("forged 1", p:wait_event("^forged %d+$"))
    -- the forger is ready, slow is not: READY=1 must not come
    local function no_ready()
      local msg = proc.recv(fd, 0)
      assert.is_falsy(msg and msg:find("READY=1"), "READY=1 before slow's init ended")
      return msg
    end
    H.wait_until(function()
      no_ready()
      return p:stderr():find("readiness report for pid %d+ ignored")
    end, 2, "the forged report to be read")
    while no_ready() do end
    H.write(dir .. "/go", "")
    local deadline = proc.now() + 5
    local ready
    repeat
      local msg = proc.recv(fd, deadline - proc.now())
      ready = msg and msg:find("READY=1")
    until ready or proc.now() > deadline
    assert.truthy(ready)
    assert.are.equal(1, p:count_events("^slow init done$"))
    H.stop(p)
  end)
end)
