-- listen addresses at the edges: ports with a sign or a space, a NUL in a
-- path, abstract unix sockets.
local H = require("helpers")
local proc = H.proc

describe("listen at the edges", function()
  local p

  for _, case in ipairs({
    { "tcp://127.0.0.1: 80", 'bad port " 80" (digits only, 1 to 65535)' },
    { "tcp://127.0.0.1:+80", 'bad port "+80" (digits only, 1 to 65535)' },
    { "tcp6://[::1]:0x50", 'bad port "0x50" (digits only, 1 to 65535)' },
    { "unix:/tmp/a\0b", "the address contains a NUL byte" },
    { "unix:@", "bad unix socket name after @" },
  }) do
    it("refuses " .. case[1]:gsub("%z", "\\0"), function()
      local dir = H.tmpdir()
      H.app(dir, H.prelude .. ("local m = cotylua.manager()\nm:add({ name = 'x', listen = %q })\nreturn m\n")
        :format(case[1]))
      p = H.start{ dir = dir, argv = { H.bin, "--check", "services.lua" } }
      assert.are.same({ code = 2 }, p:wait(5))
      assert.truthy(p:stderr():find(case[2], 1, true), p:stderr())
      assert.is_nil(proc.readlink(dir .. "/@"))
    end)
  end

  it("listens on an abstract unix socket (unix:@name): no file, gone after the stop", function()
    local name = "cotylua-spec-" .. proc.getpid() .. "-" .. math.random(1e9)
    local function listed()
      for line in io.lines("/proc/net/unix") do
        if line:sub(-(#name + 2)) == " @" .. name then return true end
      end
      return false
    end
    p = H.run_app(([[
local S = { name = "a", listen = "unix:@%s" }
function S:run() ev("run %%d", #self.sockets) cotylua.sleep(60) end
local m = cotylua.manager()
m:add(S)
return m
]]):format(name))
    assert.are.equal("1", p:wait_event("^run (%d+)$"))
    assert.is_true(listed())
    assert.are.same({}, (function()
      local out = {}
      for _, f in ipairs(proc.listdir(p.dir)) do
        if f:find("^@") then out[#out + 1] = f end
      end
      return out
    end)())
    p:kill("TERM")
    assert.are.equal(0, p:wait(5).code)
    H.wait_until(function() return not listed() end, 2, "the socket to go")
  end)
end)
