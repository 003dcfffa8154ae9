-- terminate and reload reach a worker promptly wherever run is: in a busy
-- Lua loop, in cotylua.sleep or cotylua.wait, or blocked in a C read.
local H = require("helpers")
local proc = H.proc

local BOUND = 0.2 -- seconds from the signal to terminate being called

local function app(run_body)
  return [[
local S = { name = "s" }
function S:init() self.fifo = os.getenv("FIFO") end
function S:run()
  ev("run %d", cotylua.getpid())
]] .. run_body .. "\n" .. [[
end
function S:reload() ev("reload %d", cotylua.getpid()) end
function S:terminate() ev("term %d %s", cotylua.getpid(), tostring(cotylua.stopping())) end
local m = cotylua.manager()
m:add(S)
return m
]]
end

-- What run does, and whether it then sleeps in the kernel.
local RUNS = {
  ["a busy Lua loop"] = { "local x = 0 while true do x = x + 1 end", false },
  ["cotylua.sleep(60)"] = { "cotylua.sleep(60)", true },
  ["cotylua.wait on a silent fd"] = { [[
    local f = assert(io.open(self.fifo, "r+")) -- fd 3: a worker has only 0-2 of its own
    cotylua.wait(3, "r", 60)]], true },
  ["a busy loop in coroutine.wrap"] = {
    "coroutine.wrap(function() local x = 0 while true do x = x + 1 end end)()", false },
  ["a busy loop in a coroutine.resume nested in another"] = { [[
    local inner = coroutine.create(function() local x = 0 while true do x = x + 1 end end)
    local outer = coroutine.create(function() coroutine.resume(inner) end)
    coroutine.resume(outer)]], false },
  ["a C read blocked on a pipe"] = { [[
    local f = assert(io.open(self.fifo, "r+")) -- O_RDWR: no EOF, no data
    ev("read returned %s", tostring(f:read("l")))]], true },
}

describe("signal delivery", function()
  local p

  local function start(body, blocks)
    local dir = H.tmpdir()
    local fifo = dir .. "/fifo"
    assert(os.execute("mkfifo " .. fifo))
    p = H.run_app(app(body), "binary", { dir = dir, env = { "FIFO=" .. fifo } })
    local pid = tonumber(p:wait_event("^run (%d+)$"))
    if blocks then
      H.wait_until(function() return H.proc_stat(pid).state == "S" end, 2, "run to block")
    end
    return pid
  end

  for what, case in pairs(RUNS) do
    it("calls terminate within " .. BOUND .. " s when run is in " .. what, function()
      local pid = start(case[1], case[2])
      local t0 = proc.now()
      assert(proc.kill(pid, "TERM"))
      assert.are.equal("true", p:wait_event("^term " .. pid .. " (%a+)$", 2))
      local elapsed = proc.now() - t0
      assert.is_true(elapsed < BOUND, ("terminate came after %.3f s"):format(elapsed))
      H.wait_until(function() return not proc.alive(pid) end, 2, "the worker to exit")
      p:kill("TERM")
      assert.are.same({ code = 0 }, p:wait(5))
    end)
  end

  it("calls reload within " .. BOUND .. " s in a busy loop and lets run go on", function()
    local pid = start([[
      local x = 0
      while true do
        x = x + 1
        if x % 1000000 == 0 then ev("tick %d", x) end
      end]], false)
    local t0 = proc.now()
    assert(proc.kill(pid, "HUP"))
    p:wait_event("^reload " .. pid .. "$", 2)
    assert.is_true(proc.now() - t0 < BOUND)
    local n = p:count_events("^tick ")
    H.wait_until(function() return p:count_events("^tick ") > n end, 5, "run to go on after reload")
    assert.is_true(proc.alive(pid))
    p:kill("TERM")
    assert.are.same({ code = 0 }, p:wait(5))
  end)

  it("goes on sleeping after a reload delivered inside cotylua.sleep", function()
    local pid = start([[
      local t = cotylua.now()
      cotylua.sleep(0.6)
      ev("slept %.2f", cotylua.now() - t)]], true)
    assert(proc.kill(pid, "HUP"))
    p:wait_event("^reload " .. pid .. "$", 2)
    local slept = tonumber(p:wait_event("^slept ([%d.]+)$", 3))
    assert.is_true(slept >= 0.59, "slept only " .. slept)
    p:kill("TERM")
    assert.are.same({ code = 0 }, p:wait(5))
  end)
end)

describe("cotylua.wait", function()

  it("returns true when ready, false on timeout, and nil, message, errno on a bad fd", function()
    local dir = H.tmpdir()
    local fifo = dir .. "/fifo"
    assert(os.execute("mkfifo " .. fifo))
    local script = H.write(dir .. "/wait.lua", ([[
local cotylua = require("cotylua")
local f = assert(io.open(%q, "r+")) -- fd 3
local t = cotylua.now()
print("r", cotylua.wait(3, "r", 0.05), cotylua.now() - t >= 0.05)
print("w", cotylua.wait(3, "w", 1))
print("rw", cotylua.wait(3, "rw", 1))
f:write("x\n") f:flush()
print("r", cotylua.wait(3, "r"))
print("bad", cotylua.wait(99, "r", 0.01))
print(pcall(cotylua.wait, 3, "x"))
]]):format(fifo))
    local p = H.start{ dir = dir, lua = true, file = script }
    assert.are.same({ code = 0 }, p:wait(5), p:stderr())
    assert.are.equal(table.concat({
      "r\tfalse\ttrue", "w\ttrue", "rw\ttrue", "r\ttrue",
      "bad\tnil\tfd 99 is not open\t9",
    }, "\n") .. "\n", p:stdout():match("^(.-\n)false\t"))
    -- (the function's name in the message depends on where Lua finds it)
    assert.matches("\nfalse\tbad argument #2 to '[%w.]*wait' %(mode must be \"r\", \"w\" or \"rw\"%)\n$", p:stdout())
  end)
end)

describe("coroutines under cotylua", function()

  it("keep the semantics of resume and wrap", function()
    local dir = H.tmpdir()
    local body = [[
local co = coroutine.create(function(a, b)
  local c = coroutine.yield(a + b)
  return c * 2, "done"
end)
print(coroutine.resume(co, 1, 2))
print(coroutine.resume(co, 5))
print(coroutine.resume(co))
print(pcall(coroutine.resume, 42))
print(pcall(coroutine.wrap, 42))
local gen = coroutine.wrap(function() for i = 1, 3 do coroutine.yield(i) end end)
print(gen(), gen(), gen())
print(pcall(gen))
local bad = coroutine.wrap(function() error("inside") end)
print(pcall(bad))
local t = {}
print(select(2, pcall(coroutine.wrap(function() error(t) end))) == t)
print(coroutine.isyieldable(), coroutine.running())
]]
    local outputs = {}
    for _, first in ipairs({ "local cotylua = require('cotylua')", "local cotylua = nil" }) do
      local script = H.write(dir .. "/co.lua", first .. "\n" .. body)
      local p = H.start{ dir = dir, lua = true, file = script }
      assert.are.same({ code = 0 }, p:wait(5))
      outputs[#outputs + 1] = p:stdout():gsub("thread: 0x%x+", "thread")
      os.remove(dir .. "/stdout.log")
    end
    assert.matches("false\t[^\n]*co.lua:14: inside\n", outputs[1])
    assert.are.equal(outputs[2], outputs[1])
  end)
end)
