-- The command line: --help, --version, --check, and files that are refused
-- with FILE:LINE: message, a non-zero status and nothing left running.
local H = require("helpers")

local REFUSED = 2

-- Runs cotylua with argv (after the binary) in a fresh dir holding
-- services.lua = body; returns status, stdout, stderr, dir.
local function run(body, argv)
  local dir = H.tmpdir()
  if body then
    H.app(dir, H.prelude .. body)
  end
  local full = { H.bin }
  for _, a in ipairs(argv) do full[#full + 1] = a end
  local p = H.start{ dir = dir, argv = full }
  local st = assert(p:wait(10))
  return st, p:stdout(), p:stderr(), dir
end

local line_of = H.line_of

local function refused(body, marker, message)
  local st, _, err, dir = run(body, { "services.lua" })
  assert.are.same({ code = REFUSED }, st)
  local expected = "services.lua:" .. line_of(body, marker) .. ": " .. message
  assert.truthy(err:find(expected, 1, true), "expected «" .. expected .. "» in:\n" .. err)
  assert.are.same({}, H.procs_in(dir))
  assert.are.equal("", H.read(H.events_file(dir)), "no worker started")
end

describe("command line", function()

  it("prints its version and help", function()
    local st, out = run(nil, { "--version" })
    assert.are.same({ code = 0 }, st)
    assert.matches("^cotylua %d+%.%d+%.%d+ %(Lua 5%.4", out)
    st, out = run(nil, { "--help" })
    assert.are.same({ code = 0 }, st)
    assert.matches("usage: cotylua", out)
    assert.matches("%-%-check FILE", out)
  end)

  it("takes -v, -h, and -- before a FILE that looks like an option", function()
    local st, out = run(nil, { "-v" })
    assert.are.same({ code = 0 }, st)
    assert.matches("^cotylua %d", out)
    st, out = run(nil, { "-h" })
    assert.are.same({ code = 0 }, st)
    assert.matches("usage: cotylua", out)
    local dir = H.tmpdir()
    H.write(dir .. "/-odd.lua", "local m = require('cotylua').manager()\nm:add({ name = 'odd' })\nreturn m\n")
    local p = H.start{ dir = dir, argv = { H.bin, "--check", "--", "-odd.lua" } }
    assert.are.same({ code = 0 }, p:wait(5))
    assert.matches("odd", p:stdout())
  end)

  it("refuses unknown options and a missing FILE with status 2", function()
    local st, _, err = run(nil, { "--frobnicate" })
    assert.are.same({ code = REFUSED }, st)
    assert.matches("unknown option: %-%-frobnicate", err)
    st, _, err = run(nil, {})
    assert.are.same({ code = REFUSED }, st)
    assert.matches("no FILE given", err)
    st, _, err = run(nil, { "--log-level", "loud", "x.lua" })
    assert.are.same({ code = REFUSED }, st)
    assert.matches("unknown log level: loud", err)
  end)

  it("refuses a missing file", function()
    local st, _, err = run(nil, { "nothere.lua" })
    assert.are.same({ code = REFUSED }, st)
    assert.matches("cannot open nothere.lua", err)
  end)

  it("refuses a syntax error with FILE:LINE", function()
    refused("local x = = 1 -- SYNTAX\n", "SYNTAX", "unexpected symbol near '='")
  end)

  it("refuses a runtime error with FILE:LINE and a traceback", function()
    local body = "local t = nil\nlocal y = t.field -- RUNTIME\n"
    refused(body, "RUNTIME", "attempt to index a nil value (local 't')")
  end)

  it("refuses a file that returns no manager", function()
    local body = "local m = cotylua.manager()\nm:add({})\n-- END"
    refused(body, "END", "the file returned no manager")
  end)

  it("refuses a file that returns something else", function()
    local body = "return 42 -- END"
    refused(body, "END", "the file returned a number; expected the manager")
  end)

  for _, case in ipairs({
    { "0", "got 0 (number)" },
    { "1.5", "got 1.5 (number)" },
    { '"2"', 'got "2" (string)' },
    { "-3", "got -3 (number)" },
    { "true", "got true (boolean)" },
  }) do
    it("refuses workers = " .. case[1], function()
      local body = "local m = cotylua.manager()\nm:add({ name = 'w' }, { workers = " .. case[1] .. " }) -- ADD\nreturn m\n"
      refused(body, "ADD", 'bad workers for service "w": expected an integer from 1 to 1000000, ' .. case[2])
    end)
  end

  it("refuses a second manager in one process (the seatbelt)", function()
    local body = "local a = cotylua.manager()\nlocal b = cotylua.manager() -- SECOND\nreturn a\n"
    refused(body, "SECOND", "cotylua.manager: a manager already exists in this process")
  end)

  it("refuses reconfigure of an unknown service id and a bad count", function()
    local body = "local m = cotylua.manager()\nlocal id = m:add({})\nm:reconfigure(id + 1, 2) -- RECONF\nreturn m\n"
    refused(body, "RECONF", "reconfigure: no service with id 2 (number)")
    body = "local m = cotylua.manager()\nlocal id = m:add({ name = 'x' })\nm:reconfigure(id, 0) -- RECONF\nreturn m\n"
    refused(body, "RECONF", 'bad workers for service "x": expected an integer from 1 to 1000000, got 0 (number)')
  end)

  it("refuses bad service fields, options and hooks, naming them", function()
    refused("local m = cotylua.manager()\nm:add({ run = 'go' }) -- BAD\nreturn m\n", "BAD",
      'bad service "service1".run: expected a function, got "go" (string)')
    refused("local m = cotylua.manager({ graceful_shutdown_timeout = -1 }) -- BAD\nreturn m\n", "BAD",
      "bad graceful_shutdown_timeout: expected a number of seconds from 0 to 1000000, got -1 (number)")
    refused("local m = cotylua.manager({ gracefull = 1 }) -- BAD\nreturn m\n", "BAD",
      'unknown option "gracefull" in cotylua.manager()')
    refused("local m = cotylua.manager()\nm:register_hooks({ on_stop = print }) -- BAD\nreturn m\n", "BAD",
      'unknown hook "on_stop"')
    refused("local m = cotylua.manager()\nm:add(42) -- BAD\nreturn m\n", "BAD",
      "bad service: expected a table, got 42 (number)")
  end)

  it("--check lists the services and worker counts and starts nothing", function()
    -- a port in use: --check checks the address and must not bind it
    local busy = assert(require("socket").bind("127.0.0.1", 0))
    local _, port = busy:getsockname()
    local body = [[
local m = cotylua.manager({ graceful_shutdown_timeout = 30 })
m:add({ name = "heavy", init = function() ev("started") end }, { workers = 4 })
m:add({ name = "light", graceful_shutdown_timeout = 5, run = function() ev("started") end,
  restart = { burst = 2, delay = 0.5 }, listen = "tcp://127.0.0.1:PORT" })
return m
]]
    body = body:gsub("PORT", port)
    local st, out, _, dir = run(body, { "--check", "services.lua" })
    assert.are.same({ code = 0 }, st)
    assert.matches("2 services, 5 workers", out)
    assert.matches("\n1%s+heavy%s+4%s+30s%s+5 in 10s, 1%.%.30s%s+%-\n", out)
    assert.matches("\n2%s+light%s+1%s+5s%s+2 in 10s, 0%.5%.%.30s%s+tcp://127%.0%.0%.1:" .. port .. "\n", out)
    busy:close()
    assert.are.equal("", H.read(H.events_file(dir)))
  end)

  it("--check refuses an address a run would refuse", function()
    local st, _, err = run("local m = cotylua.manager()\nm:add({ listen = 'tcp://localhost:80' })\nreturn m\n",
      { "--check", "services.lua" })
    assert.are.same({ code = REFUSED }, st)
    assert.matches('services.lua:%d+: bad service "service1"%.listen: "tcp://localhost:80": "localhost" is not a numeric IPv4 address', err)
  end)

  it("--check refuses a bad file like a run does", function()
    local st, _, err = run("local m = cotylua.manager()\nm:add({}, { workers = 0 })\nreturn m\n",
      { "--check", "services.lua" })
    assert.are.same({ code = REFUSED }, st)
    assert.matches("services.lua:%d+: bad workers", err)
  end)

  it("passes ARGS to FILE in arg and ...", function()
    local body = [[
local a, b = ...
ev("args %s %s %s %s", a, b, arg[1], arg[0])
local m = cotylua.manager()
m:add({ name = "x" })
return m
]]
    local st, out, _, dir = run(body, { "--check", "services.lua", "one", "two" })
    assert.are.same({ code = 0 }, st)
    assert.matches("1 service, 1 worker", out)
    assert.are.equal("args one two one services.lua\n", H.read(H.events_file(dir)))
  end)
end)

describe("man page", function()

  it("lints clean with mandoc and groff, and documents every option of --help", function()
    local page = H.root .. "/doc/cotylua.1"
    for _, argv in ipairs({ { "mandoc", "-T", "lint", "-W", "warning", page },
                            { "groff", "-ww", "-z", "-man", page } }) do
      local p = H.start{ dir = H.tmpdir(), argv = argv }
      assert.are.same({ code = 0 }, p:wait(20), p:stderr())
      assert.are.equal("", p:stdout() .. p:stderr(), table.concat(argv, " "))
    end
    local dir = H.tmpdir()
    local help = H.start{ dir = dir, argv = { H.bin, "--help" } }
    assert.are.same({ code = 0 }, help:wait(30)) -- LeakSanitizer's exit check is slow when busy
    local text, readme = H.read(page), H.read(H.root .. "/README.md")
    for opt in help:stdout():gmatch("%-%-?[%a-]+") do
      if opt:sub(2, 2) == "-" or #opt == 2 then -- --long, -h, -v
        assert.truthy(text:find(opt:gsub("%-", "\\-"), 1, true), opt .. " missing from the man page")
        local quoted = opt:gsub("%-", "%%-")
        assert.truthy(readme:find("[%s`]" .. quoted .. "[%s`,.;]"), opt .. " missing from README.md")
      end
    end
    assert.is_true(select(2, help:stdout():gsub("\n", "")) <= 24, "--help fits one screen")
  end)
end)
