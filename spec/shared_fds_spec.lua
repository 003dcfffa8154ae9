-- A services file that creates an event loop when it loads leaves the
-- loop's descriptors open in the manager, and every forked worker would
-- share them: cotylua warns, at start and under --check, naming each fd
-- and its kind. A loop made in init draws no warning.
local H = require("helpers")

local TOP = [[
local uv = require("luv")                -- libuv's loop: epoll and eventfd
local cq = require("cqueues").new()      -- cqueues: epoll
local S = { name = "top" }
function S:run() cotylua.sleep(30) end
local m = cotylua.manager()
m:add(S, { workers = 1 })
return m
]]

local IN_INIT = [[
local S = { name = "ininit" }
function S:init()
  self.uv = require("luv")
  self.cq = require("cqueues").new()
  ev("init %d", cotylua.getpid())
end
function S:run() cotylua.sleep(30) end
local m = cotylua.manager()
m:add(S, { workers = 1 })
return m
]]

local function warnings(text)
  local out = {}
  for fd, kind in text:gmatch("WARNING[^\n]* fd (%d+) is an open (%a+) instance after loading the services file") do
    out[#out + 1] = kind .. ":" .. fd
  end
  return out
end

describe("loop descriptors left by the services file", function()
  local p

  it("are named, with their kind, under --check", function()
    local dir = H.tmpdir()
    H.app(dir, H.prelude .. TOP)
    p = H.start{ dir = dir, args = {}, argv = { H.bin, "--check", dir .. "/services.lua" } }
    assert.are.same({ code = 0 }, p:wait(10))
    local w = warnings(p:stderr())
    local kinds = {}
    for _, k in ipairs(w) do kinds[k:match("^%a+")] = true end
    assert.is_true(kinds.epoll, p:stderr())
    assert.is_true(kinds.eventfd, p:stderr())
    assert.matches("create event loops in init", p:stderr())
    -- each fd named is one the services file opened: 3 and up
    for _, k in ipairs(w) do assert(tonumber(k:match("%d+$")) >= 3) end
  end)

  it("are named at start, and the workers still start", function()
    p = H.run_app(TOP)
    H.wait_until(function() return p:stderr():find("ready: ", 1, true) end, 10, "the workers")
    assert(#warnings(p:stderr()) >= 2, p:stderr())
    assert(p:kill("TERM"))
    assert.are.same({ code = 0 }, p:wait(10))
  end)

  it("draw no warning when the loop is made in init", function()
    p = H.run_app(IN_INIT)
    p:wait_event("^init %d+", 10)
    assert.are.same({}, warnings(p:stderr()))
    assert.are_not.matches("WARNING", p:stderr())
    assert(p:kill("TERM"))
    assert.are.same({ code = 0 }, p:wait(10))
  end)
end)
