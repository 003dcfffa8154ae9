-- What a newcomer mistypes: a service-table field close to an option or a
-- method (a warning naming the line of add() and what it probably meant,
-- at start and under --check), an option that only add() reads, and a
-- COTYLUA_LOG_LEVEL that names no level (refused like --log-level).
local H = require("helpers")

local TYPOS = [[
local S = { name = "typo", grace_timeout = 5, restart_policy = {}, listen_addr = "x",
  greeting = "hi", done = 0, timeout = 3, run_count = 1, name_prefix = "a", read = 1, workers = 3 }
function S:terminte() end
function S:run() ev("run") cotylua.sleep(1e9) end
local m = cotylua.manager()
m:add(S) -- the add line
return m
]]

local WANTED = {
  "unknown field grace_timeout, taken as the service's own: did you mean graceful_shutdown_timeout?",
  "unknown field restart_policy, taken as the service's own: did you mean restart?",
  "unknown field listen_addr, taken as the service's own: did you mean listen?",
  "unknown field terminte, taken as the service's own: did you mean terminate?",
  "workers is read from add()'s options, not from the service table",
}

local line_of = H.line_of

local function assert_warned(err)
  local where = "services.lua:" .. line_of(TYPOS, "the add line") .. ": service \"typo\": "
  for _, w in ipairs(WANTED) do
    assert.truthy(err:find(where .. w, 1, true), "expected «" .. where .. w .. "» in:\n" .. err)
  end
  -- the user's own fields, however option-like a word of theirs is
  for _, own in ipairs({ "greeting", "done", "timeout", "run_count", "name_prefix", "read" }) do
    assert.is_nil(err:find("field " .. own .. ",", 1, true), own .. " was taken for a typo")
  end
end

describe("typos", function()
  it("are warned about by --check, with the option each probably meant", function()
    local dir = H.tmpdir()
    H.app(dir, H.prelude .. TYPOS)
    local p = H.start{ dir = dir, argv = { H.bin, "--check", "services.lua" } }
    assert.are.same({ code = 0 }, p:wait(10))
    assert.matches("typo%s+1%s+60s", p:stdout()) -- still a valid file: the defaults stand
    assert_warned(p:stderr())
  end)

  it("are warned about at start, and the service runs", function()
    local p = H.run_app(TYPOS)
    p:wait_event("^run$")
    assert_warned(p:stderr())
    H.stop(p)
  end)

  for _, mode in ipairs({ "binary", "lua" }) do
    it("in COTYLUA_LOG_LEVEL are refused like --log-level's (" .. mode .. ")", function()
      local p = H.run_app(TYPOS, mode, { env = { "COTYLUA_LOG_LEVEL=bogus" } })
      local st = assert(p:wait(10))
      assert.are_not.same({ code = 0 }, st)
      assert.matches("unknown log level in COTYLUA_LOG_LEVEL: '?bogus", p:stderr())
      assert.are.equal("", H.read(H.events_file(p.dir)), "no worker started")
    end)
  end

  it("leave the documented spellings of COTYLUA_LOG_LEVEL alone", function()
    for _, level in ipairs({ "debug", "INFO", "Warning", "warn", "error", "" }) do
      local dir = H.tmpdir()
      H.app(dir, H.prelude .. "return cotylua.manager()\n")
      local p = H.start{ dir = dir, argv = { H.bin, "--check", "services.lua" },
                         env = { "COTYLUA_LOG_LEVEL=" .. level } }
      assert.are.same({ code = 0 }, p:wait(10), level .. ": " .. p:stderr())
    end
  end)
end)
