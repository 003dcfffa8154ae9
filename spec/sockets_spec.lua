-- Listening sockets: bound once by the manager and shared by the workers
-- (or one per worker with reuseport), taken from systemd's socket
-- activation, and kept open while workers come and go.
local H = require("helpers")
local proc = H.proc
local socket = require("socket")
local socket_unix = require("socket.unix")

local ECHO = H.root .. "/examples/echo.lua"

local free_port = H.free_port

-- Sends lines to the echo service and returns the replies.
local function talk(port, lines, timeout)
  local c, err = socket.connect("127.0.0.1", port)
  if not c then return nil, err end
  c:settimeout(timeout or 5)
  local out = {}
  for _, line in ipairs(lines) do
    assert(c:send(line .. "\n"))
    local reply, rerr = c:receive("*l")
    if not reply then c:close() return nil, rerr end
    out[#out + 1] = reply
  end
  c:close()
  return out
end

local function workers_seen(port, tries)
  local seen = {}
  for _ = 1, tries do
    local r = assert(talk(port, { "whoami" }))
    seen[r[1]:match("^worker (%d+)")] = true
  end
  local n = 0
  for _ in pairs(seen) do n = n + 1 end
  return n
end

local function socket_inode(pid, fd)
  return (proc.readlink(("/proc/%d/fd/%d"):format(pid, fd)) or ""):match("^socket:%[(%d+)%]$")
end

describe("sockets", function()
  local p

  local function echo(port, workers, extra_env)
    local dir = H.tmpdir()
    local env = { "ECHO_LISTEN=tcp://127.0.0.1:" .. port, "ECHO_WORKERS=" .. (workers or 2) }
    for _, kv in ipairs(extra_env or {}) do env[#env + 1] = kv end
    p = H.start{ dir = dir, file = ECHO, env = env }
    H.wait_until(function() return p:stderr():find("ready: ", 1, true) end, 5, "the workers")
  end

  it("shares one socket bound by the manager between the workers", function()
    local port = free_port()
    echo(port, 2)
    assert.are.same({ "hello", "world" }, talk(port, { "hello", "world" }))
    H.wait_until(function() return workers_seen(port, 10) == 2 end, 5, "both workers to serve")
    -- the workers hold the manager's socket: one inode for all
    local inodes = {}
    for _, pid in ipairs(H.children(p.pid)) do
      local fds = H.fds(pid) -- 0-2, then the socket
      inodes[socket_inode(pid, fds[#fds]) or "none"] = true
    end
    local n = 0
    for k in pairs(inodes) do n = n + 1 assert.are_not.equal("none", k) end
    assert.are.equal(1, n)
    H.stop(p)
    -- closed with the manager: the port can be bound again
    assert(socket.bind("127.0.0.1", port)):close()
  end)

  for _, reuseport in ipairs({ "0", "1" }) do
  it("refuses no connection while workers are killed and respawned (reuseport=" .. reuseport .. ")", function()
    local port = free_port()
    echo(port, 2, { "ECHO_REUSEPORT=" .. reuseport })
    -- a kill every 0.25 s: 4 per worker slot, within the restart burst
    local t0, served, lost, worst, kills, last_kill = proc.now(), 0, 0, 0, 0, proc.now()
    local killed = {}
    -- at least 2 s and 6 kills (a busy machine respawns more slowly)
    while (proc.now() - t0 < 2 or kills < 6) and proc.now() - t0 < 30 do
      local c0 = proc.now()
      local r, err = talk(port, { "ping" })
      -- never refused; a connection that a worker accepted in the instant
      -- it was SIGKILLed is lost with it ("closed"), at most one per kill
      assert(r or err == "closed", "connection failed: " .. tostring(err))
      if r then
        assert.are.equal("ping", r[1])
        worst = math.max(worst, proc.now() - c0)
        served = served + 1
      else
        lost = lost + 1
      end
      if proc.now() - last_kill >= 0.25 then
        last_kill = proc.now()
        for _, pid in ipairs(H.children(p.pid)) do
          if not killed[pid] then
            killed[pid] = true
            proc.kill(pid, "KILL")
            kills = kills + 1
            break
          end
        end
      end
    end
    assert.is_true(kills >= 6, "only " .. kills .. " kills")
    assert.is_true(lost <= kills, ("%d connections lost for %d kills"):format(lost, kills))
    assert.is_true(worst < 0.5, ("a client waited %.3f s"):format(worst))
    H.stop(p)
  end)
  end

  it("gives each worker its own SO_REUSEPORT socket with reuseport = true", function()
    local port = free_port()
    p = H.run_app(([[
local S = { name = "rp", listen = "tcp://127.0.0.1:%d", reuseport = true }
function S:run() ev("run %%d %%d", cotylua.getpid(), self.sockets[1]) cotylua.sleep(1e9) end
local m = cotylua.manager()
m:add(S, { workers = 3 })
return m
]]):format(port))
    H.wait_until(function() return p:count_events("^run ") == 3 end)
    local inodes = {}
    for _, line in ipairs(p:events()) do
      local pid, fd = line:match("^run (%d+) (%d+)$")
      inodes[#inodes + 1] = assert(socket_inode(tonumber(pid), tonumber(fd)))
    end
    assert.are_not.equal(inodes[1], inodes[2])
    assert.are_not.equal(inodes[2], inodes[3])
    assert.are_not.equal(inodes[1], inodes[3])
    -- the kernel accepts connections on them (they listen)
    local c = assert(socket.connect("127.0.0.1", port))
    c:close()
    H.stop(p)
  end)

  it("refuses a file whose second address is busy, leaving no unix socket file behind", function()
    local port = free_port()
    local busy = assert(socket.bind("127.0.0.1", port))
    local dir = H.tmpdir()
    H.app(dir, H.prelude .. ([[
local m = cotylua.manager()
m:add({ name = "half", listen = { "unix:%s/a.sock", "tcp://127.0.0.1:%d" } })
return m
]]):format(dir, port))
    for _, argv in ipairs({ { H.bin, "services.lua" }, { H.bin, "--check", "services.lua" } }) do
      p = H.start{ dir = dir, argv = argv }
      local st = p:wait(5)
      if argv[2] == "--check" then
        assert.are.same({ code = 0 }, st) -- --check binds nothing
      else
        assert.are.same({ code = 2 }, st)
        assert.matches("Address already in use", p:stderr())
      end
      assert.is_nil(io.open(dir .. "/a.sock"), "a.sock was left behind")
    end
    busy:close()
  end)

  it("closes the reuseport socket of a slot in backoff: connections are served or refused, never left hanging", function()
    local port = free_port()
    p = H.run_app(([[
local S = { name = "half", listen = "tcp://127.0.0.1:%d", reuseport = true, restart = { burst = 1, delay = 30, max_delay = 30 } }
function S:init()
  if self.worker_id == 1 then error("worker 1 never starts") end
end
function S:run()
  local fd = self.sockets[1]
  ev("run %%d", cotylua.getpid())
  while true do
    cotylua.wait(fd, "r")
    -- accept without luasocket: hand the fd to a tiny shell-free echo
    local server = require("socket").tcp()
    server:close()
    server:setfd(fd)
    server:listen(16)
    server:settimeout(0)
    local c = server:accept()
    if c then c:send("hi\n") c:close() end
  end
end
local m = cotylua.manager()
m:add(S, { workers = 2 })
return m
]]):format(port))
    p:wait_event("^run %d+$")
    H.wait_until(function() return p:stderr():find("half worker%(1%) died 2 times") end, 5, "worker 1 in backoff")
    local served, refused = 0, 0
    for _ = 1, 30 do
      local c, err = socket.connect("127.0.0.1", port)
      if c then
        c:settimeout(2)
        local line, rerr = c:receive("*l")
        c:close()
        assert(rerr ~= "timeout", "a connection was left hanging")
        if line == "hi" then served = served + 1 else refused = refused + 1 end -- reset: refused
      else
        -- refused, or reset by the slot's socket closing as it connected
        assert.is_truthy(err == "closed" or err:find("refused"), err)
        refused = refused + 1
      end
    end
    assert.is_true(served > 0)
    H.stop(p)
  end)

  it("listens on every address with tcp://*:PORT", function()
    local port = free_port()
    local dir = H.tmpdir()
    p = H.start{ dir = dir, file = ECHO, env = { "ECHO_LISTEN=tcp://*:" .. port, "ECHO_WORKERS=1" } }
    H.wait_until(function() return p:stderr():find("ready: ", 1, true) end)
    assert.are.same({ "any" }, talk(port, { "any" }))
    H.stop(p)
  end)

  it("closes a passed-in socket that no listen entry takes; workers never see LISTEN_FDS", function()
    local port = free_port()
    local dir = H.tmpdir()
    H.app(dir, H.prelude .. [[
local S = { name = "nolisten" }
function S:run() ev("env %s %s", tostring(os.getenv("LISTEN_FDS")), tostring(os.getenv("LISTEN_FDNAMES"))) end
local m = cotylua.manager()
m:add(S)
return m
]])
    p = H.start{ dir = dir, argv = { "systemd-socket-activate", "-l", "127.0.0.1:" .. port, "--fdname=stray",
      "-E", "PATH", "-E", "EVENTS", H.bin, "services.lua" } }
    H.wait_until(function() return p:stderr():find("Listening on", 1, true) end)
    local c = socket.connect("127.0.0.1", port) -- makes it exec cotylua
    assert.are.equal("nil nil", p:wait_event("^env (.*)$"))
    assert.matches("socket%-activated fd 3 %(stray%) matches no listen entry; closing it", p:stderr())
    if c then c:close() end
    -- closed for good: nobody listens on the port any more
    local again, err = socket.connect("127.0.0.1", port)
    assert.is_nil(again)
    assert.matches("refused", err)
    H.stop(p)
  end)

  it("listens on IPv6 with tcp6://[::1]:PORT", function()
    local port = free_port()
    local dir = H.tmpdir()
    p = H.start{ dir = dir, file = ECHO, env = { "ECHO_LISTEN=tcp6://[::1]:" .. port, "ECHO_WORKERS=1" } }
    H.wait_until(function() return p:stderr():find("ready: ", 1, true) end)
    local c = assert(socket.connect("::1", port))
    c:settimeout(5)
    assert(c:send("six\n"))
    assert.are.equal("six", c:receive("*l"))
    c:close()
    H.stop(p)
  end)

  it("gives self.sockets in listen order for a list of addresses", function()
    local port = free_port()
    local dir = H.tmpdir()
    local path = dir .. "/two.sock"
    p = H.run_app(([[
local S = { name = "two", listen = { "tcp://127.0.0.1:%d", "unix:%s" } }
function S:run()
  ev("run %%d %%s", cotylua.getpid(), table.concat(self.sockets, " "))
  for i, fd in ipairs(self.sockets) do cotylua.wait(fd, "r") ev("ready %%d", i) end
  cotylua.sleep(1e9)
end
local m = cotylua.manager()
m:add(S)
return m
]]):format(port, path), "binary", { dir = dir })
    local pid, a, b = p:wait_event("^run (%d+) (%d+) (%d+)$")
    assert.truthy(socket_inode(tonumber(pid), tonumber(a)))
    assert.truthy(socket_inode(tonumber(pid), tonumber(b)))
    local tcp = assert(socket.connect("127.0.0.1", port))
    p:wait_event("^ready 1$")
    local ux = assert(socket_unix())
    assert(ux:connect(path))
    p:wait_event("^ready 2$")
    tcp:close()
    ux:close()
    H.stop(p)
  end)

  it("listens on a unix socket, takes over a stale socket file and removes it at the end", function()
    local dir = H.tmpdir()
    local path = dir .. "/echo.sock"
    -- a stale socket file: bound, then its owner went away
    local stale = assert(socket_unix())
    assert(stale:bind(path))
    stale:close()
    p = H.run_app(([[
local S = { name = "ux", listen = "unix:%s" }
function S:run()
  local fd = self.sockets[1]
  ev("run %%d", fd)
  cotylua.wait(fd, "r")
  ev("readable")
  cotylua.sleep(1e9)
end
local m = cotylua.manager()
m:add(S)
m:add({ name = "other", run = function() ev("other %%d", cotylua.getpid()) cotylua.sleep(1e9) end })
return m
]]):format(path), "binary", { dir = dir })
    p:wait_event("^run %d+$")
    local other = tonumber(p:wait_event("^other (%d+)$"))
    -- a worker of another service holds none of these sockets
    assert.are.same({ 0, 1, 2 }, H.fds(other))
    local c = assert(socket_unix())
    assert(c:connect(path))
    p:wait_event("^readable$")
    c:close()
    H.stop(p)
    assert.is_nil(io.open(path), "the socket file was left behind")
  end)

  it("keeps listen order with activated sockets named alike: address first, then name", function()
    local a, b = free_port(), free_port()
    local dir = H.tmpdir()
    H.app(dir, H.prelude .. ([[
local S = { name = "two", listen = { "tcp://127.0.0.1:%d", "tcp://127.0.0.1:%d" } }
function S:run()
  for i, fd in ipairs(self.sockets) do cotylua.wait(fd, "r") ev("ready %%d", i) end
  cotylua.sleep(1e9)
end
local m = cotylua.manager()
m:add(S)
return m
]]):format(a, b))
    -- passed in the other order, both named after the service
    p = H.start{ dir = dir, argv = { "systemd-socket-activate", "-l", "127.0.0.1:" .. b, "-l", "127.0.0.1:" .. a,
      "--fdname=two:two", "-E", "PATH", "-E", "EVENTS", H.bin, "services.lua" } }
    H.wait_until(function() return p:stderr():find("Listening on", 1, true) end)
    local ca = assert(socket.connect("127.0.0.1", a))
    p:wait_event("^ready 1$", 5)
    local cb = assert(socket.connect("127.0.0.1", b))
    p:wait_event("^ready 2$", 5)
    ca:close()
    cb:close()
    H.stop(p)
  end)

  it("takes the socket systemd-socket-activate passes in, matched by name or by address", function()
    for _, how in ipairs({ "name", "address" }) do
      local port = free_port()
      local dir = H.tmpdir()
      local argv = { "systemd-socket-activate", "-l", "127.0.0.1:" .. port }
      if how == "name" then
        argv[#argv + 1] = "--fdname=echo" -- the service's name; its listen says otherwise
        argv[#argv + 1] = "-E" argv[#argv + 1] = "ECHO_LISTEN=tcp://127.0.0.1:1"
      else
        argv[#argv + 1] = "-E" argv[#argv + 1] = "ECHO_LISTEN=tcp://127.0.0.1:" .. port
      end
      for _, a in ipairs({ "-E", "PATH", H.bin, ECHO }) do argv[#argv + 1] = a end
      p = H.start{ dir = dir, argv = argv }
      H.wait_until(function() return p:stderr():find("Listening on", 1, true) end)
      -- the first connection makes systemd-socket-activate exec cotylua
      assert.are.same({ "first" }, talk(port, { "first" }))
      assert.matches("echo: listening on [^\n]* %(socket%-activated fd 3%)", p:stderr())
      H.wait_until(function() return workers_seen(port, 10) == 2 end, 5, "both workers to serve")
      H.stop(p)
      H.cleanup(dir)
    end
  end)

  it("refuses bad addresses and busy ports with FILE:LINE", function()
    local port = free_port()
    local busy = assert(socket.bind("127.0.0.1", port))
    for _, case in ipairs({
      { "tcp://127.0.0.1:" .. port, "cannot listen on tcp://127.0.0.1:" .. port .. ": Address already in use" },
      { "tcp://127.0.0.1:" .. port, "cannot listen on tcp://127.0.0.1:" .. port .. ": Address already in use",
        reuseport = true },
      { "tcp://127.0.0.1:70000", 'bad port "70000" (digits only, 1 to 65535)' },
      { "tcp://localhost:80", '"localhost" is not a numeric IPv4 address' },
      { "udp://1.2.3.4:5", "expected tcp://HOST:PORT" },
    }) do
      local dir = H.tmpdir()
      H.app(dir, H.prelude .. ("local m = cotylua.manager()\nm:add({ name = 'x', listen = %q, reuseport = %s })\nreturn m\n")
        :format(case[1], tostring(case.reuseport == true)))
      p = H.start{ dir = dir, argv = { H.bin, "services.lua" } }
      assert.are.same({ code = 2 }, p:wait(5))
      local line = select(2, H.prelude:gsub("\n", "")) + 2
      assert.truthy(p:stderr():find("services.lua:" .. line .. ": ", 1, true), p:stderr())
      assert.truthy(p:stderr():find(case[2], 1, true), p:stderr())
    end
    busy:close()
  end)
end)

describe("systemd unit examples", function()

  it("pass systemd-analyze verify", function()
    local dir = H.tmpdir()
    for _, name in ipairs({ "cotylua-echo.service", "cotylua-echo.socket" }) do
      local text = H.read(H.root .. "/examples/systemd/" .. name)
      assert.truthy(#text > 0)
      -- point at this checkout instead of an installed copy
      text = text:gsub("/usr/local/bin/cotylua", H.bin)
        :gsub("/usr/local/share/cotylua/examples", H.root .. "/examples")
        :gsub("Documentation=man:cotylua%(1%)\n", "")
      H.write(dir .. "/" .. name, text)
    end
    local p = H.start{ dir = dir, argv = { "systemd-analyze", "verify",
      dir .. "/cotylua-echo.socket", dir .. "/cotylua-echo.service" } }
    local st = p:wait(30)
    assert.are.same({ code = 0 }, st, p:stderr())
    assert.are.equal("", p:stderr() .. p:stdout())
  end)
end)
