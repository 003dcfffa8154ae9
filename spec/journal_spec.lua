-- When stderr is the journal (JOURNAL_STREAM names it), log lines go to
-- journald's socket as structured entries. The spec plays journald: it
-- binds /run/systemd/journal/socket itself (when no journald runs here).
local H = require("helpers")
local proc = H.proc

local SOCKET = "/run/systemd/journal/socket"

-- Parses one datagram of journald's native protocol into a table.
local function parse(msg)
  local fields, pos = {}, 1
  while pos <= #msg do
    local nl = msg:find("\n", pos, true)
    if not nl then break end
    local line = msg:sub(pos, nl - 1)
    local k, v = line:match("^([^=]+)=(.*)$")
    if k then
      fields[k] = v
      pos = nl + 1
    else -- KEY\n, a 64-bit little-endian length, the value, \n
      local len = string.unpack("<I8", msg, nl + 1)
      fields[line] = msg:sub(nl + 9, nl + 8 + len)
      pos = nl + 9 + len + 1
    end
  end
  return fields
end

describe("journal", function()
  local p, fd

  after_each(function()
    if fd then
      proc.close(fd)
      os.remove(SOCKET)
    end
    p, fd = nil, nil
  end)

  it("sends structured entries with priority, service, worker id, pid and exit code", function()
    if io.open(SOCKET) then
      pending("a journald already listens on " .. SOCKET)
      return
    end
    assert(os.execute("mkdir -p /run/systemd/journal"))
    fd = assert(proc.dgram_socket(SOCKET))
    local dir = H.tmpdir()
    local err = H.write(dir .. "/stderr.log", "")
    local stream = assert(io.popen("stat -L -c %d:%i " .. err)):read("l")
    p = H.run_app([[
local S = { name = "talker" }
function S:run()
  cotylua.log.warning("careful %d", 42)
  ev("run %d %d", self.worker_id, cotylua.getpid())
  if self.worker_id == 1 then os.exit(3) end
  cotylua.sleep(1e9)
end
local m = cotylua.manager()
m:add(S, { workers = 2, restart = { burst = 0, delay = 30, max_delay = 30 } })
return m
]], "binary", { dir = dir, env = { "JOURNAL_STREAM=" .. stream } })
    local entries = {}
    local function find(pred)
      return H.wait_until(function()
        local msg = proc.recv(fd, 0.1)
        if msg then entries[#entries + 1] = parse(msg) end
        for _, e in ipairs(entries) do
          if pred(e) then return e end
        end
      end, 5, "a journal entry")
    end
    local start = find(function(e) return e.MESSAGE == "starting 1 service" end)
    assert.are.equal("6", start.PRIORITY)
    assert.are.equal("cotylua", start.SYSLOG_IDENTIFIER)
    assert.are.equal("master", start.COTYLUA_PROCESS)
    assert.are.equal(tostring(p.pid), start.COTYLUA_PID)
    assert.is_nil(start.COTYLUA_SERVICE)

    local warn = find(function(e) return e.MESSAGE == "careful 42" and e.COTYLUA_WORKER_ID == "0" end)
    assert.are.equal("4", warn.PRIORITY)
    assert.are.equal("talker", warn.COTYLUA_SERVICE)
    assert.are.equal("talker worker(0)", warn.COTYLUA_PROCESS)
    assert.are.equal(p:wait_event("^run 0 (%d+)$"), warn.COTYLUA_PID)

    local death = find(function(e) return e.COTYLUA_EXIT_CODE end)
    assert.are.equal("3", death.COTYLUA_EXIT_CODE)
    assert.are.equal("talker", death.COTYLUA_SERVICE)
    assert.are.equal("1", death.COTYLUA_WORKER_ID)
    assert.are.equal("4", death.PRIORITY)
    assert.matches("^talker worker%(1%) %[pid " .. death.COTYLUA_PID .. "%] exited with status 3$", death.MESSAGE)

    assert(p:kill("TERM"))
    assert.are.same({ code = 0 }, p:wait(5))
    -- nothing went to the stream as plain text
    assert.are.equal("", H.read(err))
  end)

  it("a journald that stops reading blocks nobody: lines go to stderr", function()
    if io.open(SOCKET) then
      pending("a journald already listens on " .. SOCKET)
      return
    end
    assert(os.execute("mkdir -p /run/systemd/journal"))
    fd = assert(proc.dgram_socket(SOCKET)) -- never read: its queue fills
    local dir = H.tmpdir()
    local err = H.write(dir .. "/stderr.log", "")
    local stream = assert(io.popen("stat -L -c %d:%i " .. err)):read("l")
    p = H.run_app([[
local S = { name = "chatty" }
function S:run()
  for i = 1, 200 do cotylua.log.info("line " .. i) end
  ev("logged %d", cotylua.getpid())
  cotylua.sleep(1e9)
end
local m = cotylua.manager()
m:add(S)
return m
]], "binary", { dir = dir, env = { "JOURNAL_STREAM=" .. stream } })
    local pid = p:wait_event("^logged (%d+)$")
    assert.truthy(H.read(err):find("chatty worker(0)[" .. pid .. "]: line 200\n", 1, true))
    proc.kill(tonumber(pid), "KILL")
    local t0 = proc.now()
    H.wait_until(function() return p:count_events("^logged") == 2 end, 1, "a respawn within 1 s")
    assert.is_true(proc.now() - t0 < 1)
    assert(p:kill("TERM"))
    assert.are.same({ code = 0 }, p:wait(5))
  end)

  it("keeps a long service name whole in COTYLUA_SERVICE, and worker(N) in COTYLUA_PROCESS", function()
    if io.open(SOCKET) then
      pending("a journald already listens on " .. SOCKET)
      return
    end
    assert(os.execute("mkdir -p /run/systemd/journal"))
    fd = assert(proc.dgram_socket(SOCKET))
    local dir = H.tmpdir()
    local err = H.write(dir .. "/stderr.log", "")
    local stream = assert(io.popen("stat -L -c %d:%i " .. err)):read("l")
    local name = string.rep("n", 75)
    p = H.run_app(([[
local S = { name = %q }
function S:run() cotylua.log.info("long") cotylua.sleep(1e9) end
local m = cotylua.manager()
m:add(S)
return m
]]):format(name), "binary", { dir = dir, env = { "JOURNAL_STREAM=" .. stream } })
    local e = H.wait_until(function()
      local f = parse(proc.recv(fd, 0.1) or "")
      return f.MESSAGE == "long" and f
    end, 5, "the worker's entry")
    assert.are.equal(name, e.COTYLUA_SERVICE)
    assert.are.equal("0", e.COTYLUA_WORKER_ID)
    assert.matches("^n+\u{2026} worker%(0%)$", e.COTYLUA_PROCESS)
    assert(p:kill("TERM"))
    assert.are.same({ code = 0 }, p:wait(5))
  end)
end)
