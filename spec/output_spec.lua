-- The manager never stops supervising because of its output: stderr a
-- full pipe, a pipe whose reader is gone, or closed at start. And the
-- shape of lines that do not fit: a long service name, a long message.
local H = require("helpers")
local proc = H.proc

local function sh_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- A services file with one service "noisy" of `workers` workers whose run
-- is `run`; the manager's pid is an event.
local function noisy(run, workers, extra)
  return ([[
ev("master %%d", cotylua.getpid())
local S = { name = %q }
function S:run()
  ev("run %%d", cotylua.getpid())
  %s
end
local m = cotylua.manager{ graceful_shutdown_timeout = 1 }
m:add(S, { workers = %d })
%s
return m
]]):format("noisy", run, workers or 1, extra or "")
end

-- Starts `shell` (with $BIN the cotylua binary, in dir) as the manager's
-- parent; returns the handle.
local function start_sh(dir, shell, opts)
  opts = opts or {}
  return H.start{ dir = dir, lua = opts.lua,
                  argv = { "/bin/sh", "-c", "BIN=" .. sh_quote(H.bin) .. "; " .. shell } }
end

local function run_pids(p)
  local out = {}
  for _, line in ipairs(p:events()) do
    local pid = line:match("^run (%d+)$")
    if pid then out[#out + 1] = tonumber(pid) end
  end
  return out
end

describe("output", function()
  local p

  -- Two workers that log 4000-byte lines until a file "quiet" exists, with
  -- stderr a pipe that nobody reads; returns the manager's pid once both
  -- workers are blocked on the full pipe.
  local function start_full(dir)
    assert(os.execute("mkfifo " .. dir .. "/fifo"))
    H.app(dir, H.prelude .. noisy([[
  local line = string.rep("x", 4000)
  local function quiet() local f = io.open("quiet") if f then f:close() end return f end
  while not quiet() do cotylua.log.info(line) end
  cotylua.sleep(60)]], 2))
    -- O_RDWR: the pipe has a reader (the shell's fd), which never reads
    p = start_sh(dir, "exec 2<>fifo; exec \"$BIN\" services.lua")
    local master = tonumber(p:wait_event("^master (%d+)$"))
    H.wait_until(function()
      local kids = H.children(master)
      if #kids ~= 2 or #run_pids(p) < 2 then return false end
      for _, pid in ipairs(kids) do
        local st = H.proc_stat(pid)
        if not st or st.state ~= "S" then return false end
      end
      return true
    end, 5, "both workers to block on the full pipe")
    return master
  end

  it("a full stderr pipe: a killed worker is respawned, SIGTERM is obeyed", function()
    local dir = H.tmpdir()
    local master = start_full(dir)
    proc.kill(run_pids(p)[1], "KILL")
    local t0 = proc.now()
    H.wait_until(function() return #run_pids(p) == 3 end, 1, "a respawn within 1 s")
    assert.is_true(proc.now() - t0 < 1)
    -- the new worker blocks on the pipe too; the manager still obeys
    H.wait_until(function()
      local st = H.proc_stat(run_pids(p)[3])
      return st and st.state == "S"
    end, 5, "the new worker to block")
    t0 = proc.now()
    proc.kill(master, "TERM")
    -- graceful timeout 1 s; blocked workers may need it whole (then status 1)
    assert.is_truthy(p:wait(4).code)
    assert.is_true(proc.now() - t0 < 3)
  end)

  it("lines a full stderr could not take are counted, and said once it drains", function()
    local dir = H.tmpdir()
    assert(os.execute("mkfifo " .. dir .. "/fifo"))
    H.app(dir, H.prelude .. noisy("cotylua.sleep(60)", 2))
    p = start_sh(dir, "exec 2<>fifo; exec \"$BIN\" services.lua")
    local master = tonumber(p:wait_event("^master (%d+)$"))
    H.wait_until(function() return #run_pids(p) == 2 end, 5, "two workers")
    -- fill the pipe to the last page: dd stops at the first EAGAIN
    os.execute("dd if=/dev/zero of=" .. dir .. "/fifo bs=4096 count=32 oflag=nonblock 2>/dev/null")
    proc.kill(run_pids(p)[1], "KILL") -- the manager's lines about it are dropped
    H.wait_until(function() return #run_pids(p) == 3 end, 5, "a respawn")
    local drain = start_sh(dir, "exec cat fifo > drained.log")
    H.wait_until(function() return #(H.read(dir .. "/drained.log") or "") > 61440 end, 5,
                 "the pipe to drain")
    proc.kill(run_pids(p)[3], "KILL")
    H.wait_until(function()
      return (H.read(dir .. "/drained.log") or ""):find("master%[%d+%]: %d+ log line%(s%) dropped")
    end, 5, "the dropped-lines line")
    proc.kill(master, "TERM")
    assert.are.equal(0, p:wait(5).code)
    drain:kill("KILL")
    drain:wait(5)
  end)

  it("a reader that goes away kills no worker, and a clean stop exits 0", function()
    local dir = H.tmpdir()
    H.app(dir, H.prelude .. noisy([[
  local n = 0
  while true do
    n = n + 1
    cotylua.log.info("tick " .. n)
    ev("tick %d %d", cotylua.getpid(), n)
    cotylua.sleep(0.01)
  end]]))
    p = start_sh(dir, "{ \"$BIN\" services.lua 2>&1; echo $? > status; } | head -n 1 > head.out")
    local master = tonumber(p:wait_event("^master (%d+)$"))
    local pid = p:wait_event("^tick (%d+) 1$")
    -- head is gone; the worker logs 30 more lines into the broken pipe
    H.wait_until(function() return (H.read(dir .. "/head.out") or "") ~= "" end, 5, "head")
    p:wait_event("^tick " .. pid .. " 40$", 5)
    assert.are.same({ tonumber(pid) }, run_pids(p))
    proc.kill(master, "TERM")
    assert.are.equal(0, p:wait(5).code) -- the shell: head's status
    assert.are.equal("0\n", H.read(dir .. "/status"))
  end)

  for _, mode in ipairs({ "binary", "lua" }) do
    it("closed fds 0-2 are opened on /dev/null (" .. mode .. ")", function()
      local dir = H.tmpdir()
      H.app(dir, H.prelude .. noisy([[
  local f = assert(io.open("data", "w"))
  cotylua.log.warning("a log line, not data")
  f:write("data\n")
  f:close()
  ev("wrote")
  cotylua.sleep(60)]]))
      local cmd = mode == "binary" and "exec \"$BIN\" services.lua"
        or "exec lua5.4 -e 'local m = dofile(\"services.lua\") m:run()'"
      p = start_sh(dir, cmd .. " 0<&- 1>&- 2>&-", { lua = mode == "lua" })
      local master = tonumber(p:wait_event("^master (%d+)$"))
      p:wait_event("^wrote$")
      assert.are.equal("data\n", H.read(dir .. "/data"))
      for fd = 0, 2 do
        assert.are.equal("/dev/null", proc.readlink("/proc/" .. master .. "/fd/" .. fd))
      end
      proc.kill(master, "TERM")
      assert.are.equal(0, p:wait(5).code)
    end)
  end

  it("a long service name keeps worker(N) in the prefix, cut with an ellipsis", function()
    local name = string.rep("n", 75)
    p = H.run_app(([[
local S = { name = %q }
function S:run() cotylua.log.info("hello from run") ev("logged") cotylua.sleep(60) end
local m = cotylua.manager()
m:add(S)
return m
]]):format(name))
    p:wait_event("^logged$")
    local line = p:stderr():match("[^\n]*hello from run")
    assert.is_truthy(line)
    assert.is_truthy(line:find("nnnn\u{2026} worker%(0%)%[%d+%]: hello from run$"), line)
    p:kill("TERM")
    assert.are.equal(0, p:wait(5).code)
  end)

  it("a line cut at 4095 bytes ends with an ellipsis", function()
    p = H.run_app([[
local S = { name = "long" }
function S:run() cotylua.log.info(string.rep("y", 5000)) ev("logged") cotylua.sleep(60) end
local m = cotylua.manager()
m:add(S)
return m
]])
    p:wait_event("^logged$")
    local line = p:stderr():match("[^\n]*yyyy[^\n]*")
    assert.are.equal(4095, #line)
    assert.are.equal("y\u{2026}", line:sub(-4))
    p:kill("TERM")
    assert.are.equal(0, p:wait(5).code)
  end)
end)
