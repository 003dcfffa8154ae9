-- Bad service tables and options, generated: every field given every wrong
-- type must raise a clear error naming the field, never crash, and never
-- leave a half-made manager or service behind.
local H = require("helpers")

local BAD = {
  { "nil", "nil" }, { "true", "boolean" }, { "false", "boolean" }, { '"x"', "string" },
  { '"5"', "string" }, { "-1", "number" }, { "0/0", "number" }, { "1e300", "number" },
  { "math.huge", "number" }, { "math.mininteger", "number" }, { "{}", "table" },
  { "print", "function" }, { "0", "number" }, { "1.5", "number" },
  -- out of range: the limits are C's (core.limits), the messages Lua's
  { "2e6", "number" }, { "1e7", "number" }, { "1e-10", "number" },
}

-- field -> the values (from BAD) that are fine for it
local OK = {
  -- a tiny positive time is fine: it waits as the loop's smallest delay
  seconds = { ["nil"] = true, ["0"] = true, ["1.5"] = true, ["1e-10"] = true },
  workers = { ["nil"] = true },
  count = { ["nil"] = true, ["0"] = true },
  fn = { ["nil"] = true, ["print"] = true },
  name = { ["nil"] = true, ['"x"'] = true, ['"5"'] = true },
  args = { ["nil"] = true, ["{}"] = true },
  restart = { ["nil"] = true, ["{}"] = true },
  level = { ["nil"] = true },
  max_delay = { ["nil"] = true, ["1.5"] = true }, -- not below the default delay, 1 s
}

-- { how the value is placed, the kind of field, what the error must name }
local FIELDS = {
  { "cotylua.manager({ graceful_shutdown_timeout = V })", "seconds", "graceful_shutdown_timeout" },
  { "cotylua.manager({ restart = V })", "restart", "restart" },
  { "cotylua.manager({ restart = { burst = V } })", "count", "restart.burst" },
  { "cotylua.manager({ restart = { interval = V } })", "seconds", "restart.interval" },
  { "cotylua.manager({ restart = { delay = V } })", "seconds", "restart.delay" },
  { "cotylua.manager({ restart = { max_delay = V, delay = 0 } })", "seconds", "restart.max_delay" },
  { "cotylua.manager({ restart = { max_delay = V } })", "max_delay", "restart.max_delay" },
  { "cotylua.manager({ log_level = V })", "level", "log_level" },
  { "m:add({ name = V })", "name", "service name" },
  { "m:add({ graceful_shutdown_timeout = V })", "seconds", "graceful_shutdown_timeout" },
  { "m:add({ init = V })", "fn", ".init" },
  { "m:add({ run = V })", "fn", ".run" },
  { "m:add({ terminate = V })", "fn", ".terminate" },
  { "m:add({ reload = V })", "fn", ".reload" },
  { "m:add({ restart = V })", "restart", "restart" },
  { "m:add({ restart = { delay = V } })", "seconds", "restart.delay" },
  { "m:add({ user = V })", "user", "user" },
  { "m:add({ group = V })", "user", "group" },
  { "m:add({}, { user = V })", "user", "user" },
  { "m:add({ umask = V })", "mode", "umask" },
  { "m:add({ nice = V })", "nice", "nice" },
  { "m:add({ cwd = V })", "path", "cwd" },
  { "m:add({ env = V })", "table", "env" },
  { "m:add({ env = { A = V } })", "env_value", "env.A" },
  { "m:add({ rlimits = V })", "table", "rlimits" },
  { "m:add({ rlimits = { nofile = V } })", "limit", "rlimits.nofile" },
  { "m:add({ rlimits = { core = { soft = V } } })", "limit_side", "rlimits.core" },
  { "m:add({ no_new_privs = V })", "boolean", "no_new_privs" },
  { "m:add({ listen_owner = V })", "none", "listen_owner" },
  { "m:add({}, { workers = V })", "workers", "workers" },
  { "m:add({}, { args = V })", "args", "args" },
  { "m:add({}, { name = V })", "name", "service name" },
  { "m:add({}, { graceful_shutdown_timeout = V })", "seconds", "graceful_shutdown_timeout" },
  { "m:add({}, { restart = { burst = V } })", "count", "restart.burst" },
  { "m:add({}, { restart = { max_delay = V } })", "max_delay", "restart.max_delay" },
  { "m:add({ restart = { delay = 0.5, max_delay = V } })", "max_delay", "restart.max_delay" },
  { "m:reconfigure(1, V)", "required_workers", "workers" },
  { "m:add(V)", "service", "service" },
  { "m:add({}, V)", "opts", "add options" },
  { "m:register_hooks(V)", "hooks", "hooks" },
  { "m:register_hooks({ on_reload = V })", "fn", "on_reload" },
}
OK.service = { ["{}"] = true }
-- identities: uid and gid 0 exist everywhere; "5" is octal digits
OK.user = { ["nil"] = true, ["0"] = true }
OK.mode = { ["nil"] = true, ["0"] = true, ['"5"'] = true }
OK.nice = { ["nil"] = true, ["0"] = true, ["-1"] = true }
OK.path = { ["nil"] = true }
OK.table = { ["nil"] = true, ["{}"] = true }
OK.env_value = { ["nil"] = true, ["false"] = true, ['"x"'] = true, ['"5"'] = true, ["-1"] = true,
  ["0"] = true, ["1.5"] = true, ["1e300"] = true, ["math.huge"] = true, ["math.mininteger"] = true,
  ["2e6"] = true, ["1e7"] = true, ["1e-10"] = true, ["0/0"] = true }
OK.limit = { ["nil"] = true, ["0"] = true }
OK.limit_side = { ["0"] = true } -- { soft = nil } is an empty table: refused
OK.boolean = { ["nil"] = true, ["true"] = true, ["false"] = true }
OK.none = { ["nil"] = true } -- listen_owner without a unix: address is refused
OK.required_workers = {}
OK.opts = { ["nil"] = true, ["{}"] = true }
OK.hooks = { ["{}"] = true }

-- One Lua program that tries every case under pcall and prints a line each;
-- also returns the line of each case, which its error must name.
local function program()
  local out = { [[
local cotylua = require("cotylua")
local m = cotylua.manager() -- the manager for the add/reconfigure cases
local function try(label, f)
  local ok, err = pcall(f)
  io.write(label, "\t", ok and "ok" or ("error\t" .. tostring(err)), "\n")
end
m:add({ name = "first" })
]] }
  local lines, line = {}, select(2, out[1]:gsub("\n", ""))
  for i, f in ipairs(FIELDS) do
    for j, v in ipairs(BAD) do
      -- for the manager cases a manager exists already: a valid call hits
      -- the seatbelt, so only the validation matters there
      local code = f[1]:gsub("V", v[1])
      line = line + 1
      lines[i .. ":" .. j] = line
      out[#out + 1] = ("try(%q, function() %s end)\n"):format(i .. ":" .. j, code)
    end
  end
  out[#out + 1] = [[
io.write("services\t", #m.services, "\n")
io.write("next id\t", m:add({ name = "last" }), "\n")
]]
  return table.concat(out), lines
end

describe("validation", function()

  it("refuses every wrong type and value with an error naming the field", function()
    local dir = H.tmpdir()
    local text, lines = program()
    local script = H.write(dir .. "/gen.lua", text)
    local p = H.start{ dir = dir, lua = true, file = script }
    assert.are.same({ code = 0 }, p:wait(20), p:stderr())
    local results = {}
    for line in p:stdout():gmatch("[^\n]+") do
      local label, verdict, msg = line:match("^([%d:]+)\t(%a+)\t?(.*)$")
      if label then results[label] = { verdict, msg } end
    end
    local checked, added = 0, 1 -- "first"
    for i, f in ipairs(FIELDS) do
      for j, v in ipairs(BAD) do
        local r = assert(results[i .. ":" .. j], "no result for " .. f[1] .. " with " .. v[1])
        local fine = OK[f[2]][v[1]]
        local is_manager = f[1]:find("^cotylua%.manager")
        local where = f[1]:gsub("V", v[1])
        if fine then
          -- a valid value: accepted (or, for the manager, only the seatbelt refuses it)
          if is_manager then
            assert.matches("a manager already exists", r[2], 1, true)
          else
            assert.are.equal("ok", r[1], where .. " was refused: " .. r[2])
          end
        else
          assert.are.equal("error", r[1], where .. " was accepted")
          assert.truthy(r[2]:find(f[3], 1, true), where .. ": the error does not name " .. f[3] .. ": " .. r[2])
          local at = "gen.lua:" .. lines[i .. ":" .. j] .. ": "
          assert.truthy(r[2]:find(at, 1, true), where .. ": the error does not name the line, " .. at .. r[2])
          assert.is_nil(r[2]:find("a manager already exists", 1, true), where .. " passed validation")
          if v[2] ~= "nil" and not r[2]:find("unknown", 1, true) and f[2] ~= "restart" then
            assert.truthy(r[2]:find("(" .. v[2] .. ")", 1, true) or r[2]:find("below delay", 1, true),
              where .. ": the error does not give the type: " .. r[2])
          end
        end
        checked = checked + 1
        if f[1]:find("^m:add") and r[1] == "ok" then added = added + 1 end
      end
    end
    assert.are.equal(#FIELDS * #BAD, checked)
    -- nothing half-made: only the valid adds counted, ids in order
    assert.are.equal(tostring(added), p:stdout():match("services\t(%d+)"))
    assert.are.equal(tostring(added + 1), p:stdout():match("next id\t(%d+)"))
  end)

  -- An example option that is not shipped: "greeting", a name-like string.
  -- It touches two places: its row in the options table, and the code that
  -- uses it (here the service's init). Checks, messages, the service table
  -- and the service's record come with the row.
  it("takes a new option from one row: checked, named in errors, handed to the service", function()
    local body = [[
cotylua._options.greeting = { kind = "name" } -- the row
local m = cotylua.manager()
local S = { name = "greeter" }
function S:init() ev("greeting %s", m.services[self.service_id].greeting) end -- the use
m:add(S, { greeting = "hello" })
m:add({ name = "table", greeting = "from the table", run = function() end })
local ok, err = pcall(function() m:add({}, { greeting = 42 }) end) -- BAD
ev("refused %s %s", tostring(not ok), err)
return m
]]
    local line = select(2, (H.prelude .. body:sub(1, body:find("-- BAD"))):gsub("\n", "")) + 1
    local p = H.run_app(body)
    assert.truthy(p:wait_event("^greeting hello$"))
    assert.truthy(p:wait_event("^refused true "))
    local refused = p:events()[p:index_of("^refused ")]
    assert.truthy(refused:find(('services.lua:%d: bad greeting for service "service3": expected a non-empty string ' ..
      "without control characters, got 42 (number)"):format(line), 1, true), refused)
    H.stop(p)
  end)

  it("refuses an option that has no row", function()
    local p = H.run_app([[
local m = cotylua.manager()
m:add({}, { greeting = "hello" })
return m
]])
    assert.are.same({ code = 2 }, p:wait(10)) -- a bad FILE, as the cotylua command says
    assert.matches('services.lua:%d+: unknown option "greeting" in manager:add%(%)', p:stderr())
  end)
end)
