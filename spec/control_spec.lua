-- The control socket and `cotylua ctl`: every verb against a running
-- manager, one manager per file, the socket's owner and mode, and
-- requests that are malformed, unknown, huge, slow, half-closed or never
-- read, none of which disturbs supervision or another client.
local H = require("helpers")
local unix = require("socket.unix")

-- web: 2 workers that log their start, reload and stop; init waits for
-- the file "hold" to be gone when it exists (a slow start on demand).
local APP = [[
local web = {}
function web:init()
  while io.open("hold") do cotylua.sleep(0.01) end
  ev("init %d %d", self.worker_id, cotylua.getpid())
end
function web:run() while true do cotylua.sleep(1) end end
function web:reload() ev("reload %d", self.worker_id) end
function web:terminate() ev("term %d %d", self.worker_id, cotylua.getpid()) end
local m = cotylua.manager()
m:add(web, { name = "web", workers = 2 })
return m
]]

local function start(body)
  local p = H.run_app(body or APP)
  p:wait_event("init 1 ", 10)
  p:wait_event("init 0 ", 10)
  -- the workers report ready after their event: the manager logs once it
  -- has every report
  H.wait_until(function() return p:stderr():find("ready: ", 1, true) end, 10, "the manager's ready line")
  return p
end

-- `cotylua ctl FILE ARGS...` next to manager p: status, stdout, stderr.
local function ctl(p, ...)
  local argv = { H.bin, "ctl", p.dir .. "/services.lua", ... }
  local c = H.start{ dir = H.tmpdir(), argv = argv, env = { RUNTIME_DIRECTORY = p.dir } }
  local st = assert(c:wait(20))
  return st.code, c:stdout(), c:stderr()
end

-- The control socket of manager p (the one *.sock in its directory).
local function sock_path(p)
  for _, name in ipairs(H.proc.listdir(p.dir)) do
    if name:match("%.sock$") then return p.dir .. "/" .. name end
  end
end

local function connect(p)
  local c = assert(unix.stream())
  assert(c:connect(sock_path(p)))
  c:settimeout(20)
  return c
end

local function request(p, line)
  local c = connect(p)
  assert(c:send(line))
  local reply = c:receive("*l")
  c:close()
  return reply
end

describe("cotylua ctl", function()

  it("status shows every worker's pid, state, uptime, restarts and last exit", function()
    local p = start()
    local pids = H.workers_of(p.pid, "web")
    local code, out = ctl(p, "status")
    assert.are.equal(0, code)
    assert.matches("master pid " .. p.pid .. ", running, up %d+s: 2/2 workers ready", out)
    assert.matches("web: 2 workers, 0 restarts", out)
    assert.matches("worker%(0%)  pid " .. pids[0] .. " +ready +up %d+s +restarts 0  last exit %-", out)
    local n = #p:events()
    H.proc.kill(pids[1], "KILL")
    p:wait_event("init 1 ", 10, n)
    H.wait_until(function()
      local _, o = ctl(p, "status", "--json")
      return o:find('"id":1,"pid":%d+,"state":"ready"') and o:find('"restarts":1')
    end, 10, "the replacement to be ready")
    code, out = ctl(p, "status", "--json")
    assert.are.equal(0, code)
    assert.matches('^{"ok":true,"pid":' .. p.pid .. ',"state":"running"', out)
    assert.matches('"name":"web","workers":2,"restarts":1', out)
    assert.matches('"last_exit":"signal 9 %(Killed%)"', out)
    H.stop(p)
  end)

  it("check exits 0 only once every worker is ready", function()
    local dir = H.tmpdir()
    H.write(dir .. "/hold", "")
    local p = H.run_app(APP, nil, { dir = dir })
    H.wait_until(function() return sock_path(p) end, 10, "the control socket")
    local code, out = ctl(p, "check")
    assert.are.equal(1, code)
    assert.matches("not ready: 0/2 workers ready", out)
    os.remove(dir .. "/hold")
    p:wait_event("init 0 ", 10)
    p:wait_event("init 1 ", 10)
    H.wait_until(function() return ctl(p, "check") == 0 end, 10, "check to pass")
    H.stop(p)
  end)

  it("scale sets a service's worker count; an unknown service is an error", function()
    local p = start()
    local code, out = ctl(p, "scale", "web", "3")
    assert.are.equal(0, code)
    assert.matches("web: 3 workers", out)
    p:wait_event("init 2 ", 10)
    code, out = ctl(p, "scale", "web", "1")
    assert.are.equal(0, code)
    assert.matches("web: 1 worker\n", out)
    H.wait_until(function() return select(2, H.workers_of(p.pid, "web")) == 1 end, 10, "1 worker")
    local _, err
    code, _, err = ctl(p, "scale", "nosuch", "2")
    assert.are.equal(1, code)
    assert.matches("cotylua ctl: no such service", err)
    code, _, err = ctl(p, "scale", "web", "0")
    assert.are.equal(1, code)
    assert.matches("worker count must be an integer from 1", err)
    H.stop(p)
  end)

  it("restart replaces the workers one at a time, each ready before the next stops", function()
    local p = start()
    local before = H.workers_of(p.pid, "web")
    local n = #p:events()
    assert.are.equal(0, (ctl(p, "restart", "web")))
    p:wait_event("init 1 ", 10, n)
    H.wait_until(function() return ctl(p, "check") == 0 end, 10, "all ready")
    local after = H.workers_of(p.pid, "web")
    assert.are_not.equal(before[0], after[0])
    assert.are_not.equal(before[1], after[1])
    -- the new worker(0) started before the old worker(1) was asked to stop
    local new0 = p:index_of("init 0 " .. after[0])
    local term1 = p:index_of("term 1 " .. before[1])
    assert.truthy(new0 and term1 and new0 < term1, table.concat(p:events(), "\n"))
    assert.matches("the workers of web are restarted", p:stderr())
    H.stop(p)
  end)

  it("reload reloads the workers; stop stops the manager and removes the socket", function()
    local p = start()
    local path = sock_path(p)
    assert.are.equal(0, (ctl(p, "reload")))
    p:wait_event("reload 0", 10)
    p:wait_event("reload 1", 10)
    local code, out = ctl(p, "metrics")
    assert.are.equal(0, code)
    assert.matches("\ncotylua_reloads_total 1\n", out)
    assert.matches("\ncotylua_log_lines_dropped_total 0\n", out)
    assert.matches('\ncotylua_workers{service="web",state="ready"} 2\n', out)
    assert.are.equal(0, (ctl(p, "stop")))
    assert.are.same({ code = 0 }, p:wait(20))
    assert.is_nil(H.proc.realpath(path))
  end)

  it("writes the metrics file atomically when asked", function()
    local body = APP:gsub("cotylua%.manager%(%)", "cotylua.manager({ metrics_file = 'metrics.prom' })")
    local p = start(body)
    local text = H.wait_until(function()
      local t = H.read(p.dir .. "/metrics.prom")
      return t:find("state=\"ready\"} 2") and t
    end, 10, "the metrics file")
    assert.matches("# TYPE cotylua_worker_restarts_total counter", text)
    H.stop(p)
  end)
end)

describe("the control socket", function()

  it("is one per file: a second manager is refused, naming the first", function()
    local p = start()
    local q = H.start{ dir = p.dir, file = p.dir .. "/services.lua" }
    assert.are.same({ code = 2 }, q:wait(10))
    assert.matches("a manager %(pid " .. p.pid .. "%) already runs this file", q:stderr())
    assert.are.equal(2, select(2, H.workers_of(p.pid, "web")))
    -- killed, it leaves a stale file: the next manager takes its place
    p:kill("KILL")
    p:wait(10)
    H.proc.reap()
    local r = H.start{ dir = p.dir, file = p.dir .. "/services.lua" }
    H.wait_until(function() return select(2, H.workers_of(r.pid, "web")) == 2 end, 10, "2 workers")
    H.stop(r)
  end)

  it("goes where --control or the control option says; ctl refuses bad usage", function()
    local dir = H.tmpdir()
    H.app(dir, H.prelude .. APP)
    local path = dir .. "/by-cli.sock"
    local p = H.start{ dir = dir, argv = { H.bin, "--control", path, "services.lua" } }
    p:wait_event("init 1 ", 10)
    local c = H.start{ argv = { H.bin, "ctl", "--control", path, "check" } }
    assert.are.same({ code = 0 }, c:wait(20))
    for _, name in ipairs(H.proc.listdir(dir)) do
      assert.falsy(name:match("^services%-.*%.sock$"), "a socket at the default place")
    end
    H.stop(p)
    assert.is_nil(H.proc.realpath(path), "removed at stop")
    local body = APP:gsub("cotylua%.manager%(%)", "cotylua.manager({ control = 'by-option.sock' })")
    p = H.run_app(body)
    p:wait_event("init 1 ", 10)
    c = H.start{ argv = { H.bin, "ctl", "--control", p.dir .. "/by-option.sock", "status" } }
    assert.are.same({ code = 0 }, c:wait(20))
    assert.matches("web: 2 workers", c:stdout())
    H.stop(p)
    for _, argv in ipairs({ { "ctl" }, { "ctl", "x.lua" } }) do
      c = H.start{ argv = { H.bin, table.unpack(argv) } }
      assert.are.same({ code = 2 }, c:wait(20))
      assert.matches("usage: cotylua ctl", c:stderr())
    end
    c = H.start{ argv = { H.bin, "ctl", "--control", dir .. "/none.sock", "status" } }
    assert.are.same({ code = 1 }, c:wait(20))
    assert.matches("cannot connect to .*none.sock: No such file or directory", c:stderr())
  end)

  it("is mode 0600 and serves only its own uid and root", function()
    local p = start()
    local path = sock_path(p)
    local mode = io.popen("stat -c %a " .. path):read("l")
    assert.are.equal("600", mode)
    local nobody = { "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                     H.bin, "ctl", "--control", path, "status" }
    os.execute("chmod 755 " .. p.dir)
    local c = H.start{ argv = nobody }
    assert.are.same({ code = 1 }, c:wait(10))
    assert.matches("cannot connect to .*: Permission denied", c:stderr())
    os.execute("chmod 666 " .. path) -- past the file mode: SO_PEERCRED refuses
    c = H.start{ argv = nobody }
    assert.are.same({ code = 1 }, c:wait(10))
    assert.matches("cotylua ctl: permission denied", c:stderr())
    assert.matches("control: refused a client of uid 65534", p:stderr())
    H.stop(p)
  end)

  it("answers malformed, unknown and huge requests with an error", function()
    local p = start()
    assert.matches('^{"ok":false,"error":"unknown request', request(p, "frobnicate\n"))
    assert.matches('^{"ok":false,"error":"a request is printable ASCII"}$', request(p, "st\0atus\n"))
    assert.matches('^{"ok":false,"error":"this request takes no argument"}$', request(p, "stop now\n"))
    assert.matches('^{"ok":false,"error":"empty request"}$', request(p, "\r\n"))
    assert.matches('^{"ok":false,"error":"request too long"}$', request(p, ("x"):rep(5000)))
    -- a request without "\n" and the writing side shut: answered
    local c = connect(p)
    c:send("check")
    c:shutdown("send")
    assert.matches('^{"ok":true,"ready":true', c:receive("*l"))
    c:close()
    -- two requests in one write: two replies, in order
    c = connect(p)
    c:send("check\nstatus json\n")
    assert.matches('"ready":true', c:receive("*l"))
    assert.matches('"services"', c:receive("*l"))
    c:close()
    assert.are.equal(2, select(2, H.workers_of(p.pid, "web")))
    H.stop(p)
  end)

  it("drops slow and unread clients without delaying others or supervision", function()
    local p = start()
    local slow = connect(p)
    slow:send("sta") -- and no more: dropped after its time
    local greedy = connect(p)
    greedy:send(("status json\n"):rep(2000)) -- never reads its replies
    -- meanwhile others are served at once, and a killed worker is replaced
    local t0 = H.proc.now()
    assert.matches('"ready":true', request(p, "check\n"))
    assert.is_true(H.proc.now() - t0 < 2 * H.slow, "served at once, not after the slow clients")
    local pids = H.workers_of(p.pid, "web")
    H.proc.kill(pids[0], "KILL")
    p:wait_event("init 0 ", 10, 2)
    H.wait_until(function()
      local e = p:stderr()
      return e:find("no whole request within") and e:find("no read of its reply within")
    end, 30, "both clients to be dropped")
    slow:settimeout(5)
    local _, err = slow:receive("*l")
    assert.are.equal("closed", err)
    slow:close()
    greedy:close()
    H.stop(p)
  end)
end)

describe("the master's name", function()
  it("is cotylua for pidof and pgrep -x; workers keep their titles", function()
    local p = start()
    assert.are.equal("cotylua", H.comm(p.pid))
    local pids = H.workers_of(p.pid, "web")
    assert.matches("^cotylua: web", H.comm(pids[0]))
    local found = io.popen("pgrep -x cotylua"):read("a")
    assert.truthy(found:find("%f[%d]" .. p.pid .. "%f[%D]"), found)
    assert.falsy(found:find("%f[%d]" .. pids[0] .. "%f[%D]"), found)
    found = io.popen("pidof cotylua"):read("a")
    assert.truthy(found:find("%f[%d]" .. p.pid .. "%f[%D]"), found)
    assert.falsy(found:find("%f[%d]" .. pids[0] .. "%f[%D]"), found)
    H.stop(p)
  end)
end)
