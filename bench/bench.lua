-- bench/bench.lua - cotylua and Python's cotyledon, side by side.
--
--   lua5.4 bench/bench.lua [--quick] [--repeats N] [--only S1,S4] [--managers cotylua,floor]
--                          [--out FILE] [--keep]
--
-- Starts each manager on the equivalent apps of bench/apps/, drives it with
-- signals and prints one table: a row per figure, cotylua's figure, the
-- peer's, their ratio, the target and whether cotylua met it. A full run
-- writes bench/RESULTS.md; --quick (small N, one repeat, no S1+) and --only
-- write build/bench/RESULTS.md instead. bench/README.md explains the method.
--
-- Workers report events ("run WID PID", "reload WID PID") as short lines on
-- their stdout, which is a pipe that this driver reads and timestamps on
-- receipt; EOF on that pipe means that the manager and all of its workers
-- have exited. Each manager leads its own process group, which is killed
-- (SIGKILL) at the end of every scenario and on any error; a watchdog shell
-- kills the groups still registered if this driver dies.
--
-- Exit status: 0 when the run went end to end, whatever the figures; 1 when
-- the driver itself failed or left a process behind.

---------------------------------------------------------------------------
-- locations and modules
---------------------------------------------------------------------------

local function dirname(path)
  return path:match("^(.*)/[^/]*$") or "."
end

local SCRIPT_DIR = dirname(arg and arg[0] or "bench/bench.lua")
package.cpath = SCRIPT_DIR .. "/../build/spec/?.so;" .. package.cpath
local ok_proc, proc = pcall(require, "proc")
if not ok_proc then
  io.stderr:write("bench: cannot load build/spec/proc.so (run `make` first): ", tostring(proc), "\n")
  os.exit(1)
end

local START = proc.now()
local LOAD_START             -- /proc/loadavg when the run began
local ROOT = assert(proc.realpath(SCRIPT_DIR .. "/.."))
local BIN = ROOT .. "/build/bin/cotylua"
local FLOOR = ROOT .. "/build/bench/floor"
local APPS = ROOT .. "/bench/apps"
local PYTHON = "/usr/bin/python3"     -- Debian's, where python3-cotyledon lives

---------------------------------------------------------------------------
-- configuration
---------------------------------------------------------------------------

local MODES = {
  full = {
    repeats = 5,
    s1_ns = { 1, 100, 1000 },
    s1plus = 10000,          -- S1+ workers, under a soft fd limit of 1024
    s1plus_cap = 240,        -- seconds before S1+ is called failed
    s1plus_rounds = 2,       -- S1+/S4+ take minutes: in the first rounds only
    s1plus_peer_repeats = 1, -- cotyledon fails S1+; once is enough
    n = 100,                 -- workers in S2, S4, S5
    s3_kills = 10,
    s6_window = 10,
    s6_windows = 3,
  },
  quick = {
    repeats = 1,
    s1_ns = { 1, 10, 100 },
    n = 100,
    s3_kills = 1,
    s6_window = 2,
    s6_windows = 1,
  },
}

local SETTLE = 0.3           -- pause after start-up, before a measurement
local TICK = 0.02            -- longest read while waiting for a condition
local STALL = 10             -- S1/S1+: no new worker for this long = stalled
local S3_WORKERS, S3_SPACING = 2, 1.2
local S6_WORKERS, S8_WORKERS = 10, 10
local S7_SILENCE = 0.3       -- no new start for this long = slot in backoff
local S8_GRACE = 2           -- S8: workers alive this long after SIGKILL

local function parse_args(argv)
  local opts = { mode = "full" }
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if a == "--quick" then opts.mode = "quick"
    elseif a == "--repeats" then i = i + 1; opts.repeats = math.tointeger(tonumber(argv[i]))
    elseif a == "--only" then i = i + 1; opts.only = {}
      for id in (argv[i] or ""):gmatch("[^,]+") do opts.only[id:upper()] = true end
    elseif a == "--managers" then i = i + 1; opts.managers = {}
      for name in (argv[i] or ""):gmatch("[^,]+") do opts.managers[name] = true end
    elseif a == "--out" then i = i + 1; opts.out = argv[i]
    elseif a == "--keep" then opts.keep = true
    else
      io.stderr:write("usage: lua5.4 bench/bench.lua [--quick] [--repeats N] [--only S1,S4] "
                      .. "[--managers cotylua,floor] [--out FILE] [--keep]\n")
      os.exit(2)
    end
    i = i + 1
  end
  local cfg = {}
  for k, v in pairs(MODES[opts.mode]) do cfg[k] = v end
  cfg.mode, cfg.only, cfg.keep, cfg.managers = opts.mode, opts.only, opts.keep, opts.managers
  cfg.repeats = opts.repeats or cfg.repeats
  local partial = opts.mode == "quick" or opts.only or opts.repeats or opts.managers
  cfg.out = opts.out or (partial and ROOT .. "/build/bench/RESULTS.md" or ROOT .. "/bench/RESULTS.md")
  return cfg
end

---------------------------------------------------------------------------
-- small utilities
---------------------------------------------------------------------------

local function read_file(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function shell_out(cmd)
  local p = io.popen(cmd .. " 2>/dev/null")
  if not p then return "" end
  local s = p:read("a") or ""
  p:close()
  return (s:gsub("%s+$", ""))
end

local function median(xs)
  local s = {}
  for i, x in ipairs(xs) do s[i] = x end
  table.sort(s)
  local n = #s
  if n == 0 then return nil end
  if n % 2 == 1 then return s[(n + 1) // 2] end
  return (s[n // 2] + s[n // 2 + 1]) / 2
end

local function minmax(xs)
  local lo, hi = math.huge, -math.huge
  for _, x in ipairs(xs) do lo = math.min(lo, x); hi = math.max(hi, x) end
  return lo, hi
end

local function log(fmt, ...)
  io.stderr:write(string.format("[bench %6.1f s] " .. fmt .. "\n", proc.now() - START, ...))
end

---------------------------------------------------------------------------
-- /proc
---------------------------------------------------------------------------

local Procfs = {}

-- { state =, ppid =, pgrp = } of a process, or nil when it is gone.
function Procfs.stat(pid, tid)
  local path = tid and ("/proc/%d/task/%d/stat"):format(pid, tid) or ("/proc/%d/stat"):format(pid)
  local s = read_file(path)
  local rest = s and s:match("^%d+ %(.*%) (.*)$")
  if not rest then return nil end
  local state, ppid, pgrp = rest:match("^(%S+) (%-?%d+) (%-?%d+)")
  return { state = state, ppid = tonumber(ppid), pgrp = tonumber(pgrp) }
end

-- Live (not zombie) processes of process group pgid, sorted.
function Procfs.group(pgid)
  local out = {}
  for _, pid in ipairs(proc.pids()) do
    local st = Procfs.stat(pid)
    if st and st.pgrp == pgid and st.state ~= "Z" and st.state ~= "X" then
      out[#out + 1] = pid
    end
  end
  table.sort(out)
  return out
end

-- USS (Private_Clean + Private_Dirty) and PSS of a process, in bytes.
function Procfs.memory(pid)
  local s = read_file(("/proc/%d/smaps_rollup"):format(pid))
  if not s then return nil end
  local function kb(field) return tonumber(s:match("\n" .. field .. ":%s+(%d+) kB") or 0) * 1024 end
  return { uss = kb("Private_Clean") + kb("Private_Dirty"), pss = kb("Pss") }
end

-- Context switches and CPU nanoseconds of every thread of a process,
-- keyed "pid/tid".
function Procfs.tasks(pid, into)
  for _, name in ipairs(proc.listdir(("/proc/%d/task"):format(pid)) or {}) do
    local base = ("/proc/%d/task/%s/"):format(pid, name)
    local status, sched = read_file(base .. "status"), read_file(base .. "schedstat")
    if status and sched then
      into[pid .. "/" .. name] = {
        ctx = tonumber(status:match("\nvoluntary_ctxt_switches:%s+(%d+)") or 0)
            + tonumber(status:match("\nnonvoluntary_ctxt_switches:%s+(%d+)") or 0),
        cpu_ns = tonumber(sched:match("^(%d+)") or 0),
      }
    end
  end
  return into
end

---------------------------------------------------------------------------
-- the watchdog: kills the registered process groups if the driver dies
---------------------------------------------------------------------------

local WATCHDOG_SH = [[
live=
while read op g; do
  case $op in
    add) live="$live $g" ;;
    del) keep=; for x in $live; do [ "$x" = "$g" ] || keep="$keep $x"; done; live=$keep ;;
  esac
done
for g in $live; do kill -9 -$g 2>/dev/null; done
]]

local Watchdog = {}

function Watchdog.start()
  local r, w = assert(proc.pipe())
  local pid = assert(proc.spawn{ argv = { "/bin/sh", "-c", WATCHDOG_SH },
                                 stdin = "/proc/self/fd/" .. r, newpgrp = true })
  proc.close(r)
  Watchdog.pid, Watchdog.fd = pid, w
end

function Watchdog.tell(op, pgid)
  if Watchdog.fd then proc.write(Watchdog.fd, op .. " " .. pgid .. "\n") end
end

function Watchdog.stop()
  if not Watchdog.fd then return end
  proc.close(Watchdog.fd)
  Watchdog.fd = nil
  if not proc.wait(Watchdog.pid, 5) then proc.kill(Watchdog.pid, "KILL"); proc.wait(Watchdog.pid, 5) end
end

---------------------------------------------------------------------------
-- the managers and a started one (a Run)
---------------------------------------------------------------------------

local MANAGERS = {
  { name = "cotylua",
    argv = function(kind, n) return { BIN, APPS .. "/services.lua", kind, tostring(n) } end },
  { name = "floor",
    argv = function(kind, n) return { FLOOR, APPS .. "/floor.lua", kind, tostring(n) } end },
  { name = "cotyledon",
    argv = function(kind, n) return { PYTHON, APPS .. "/services.py", kind, tostring(n) } end },
}

local ENV = { "PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" .. (os.getenv("HOME") or "/"), "LANG=C" }

local Run = {}
Run.__index = Run
local live = {}              -- pgid -> Run, until stopped
local WORKDIR                -- the managers' cwd and stderr logs
local run_serial = 0

-- Starts a manager on an app; opts.fd_limit sets the soft RLIMIT_NOFILE.
-- The manager leads a new process group; its stdout (and so its workers')
-- is the write end of a pipe that only they hold.
local function start(mgr, kind, n, opts)
  opts = opts or {}
  local argv = mgr.argv(kind, n)
  if opts.fd_limit then
    argv = { "/bin/sh", "-c", "ulimit -Sn " .. opts.fd_limit .. ' && exec "$@"', "sh", table.unpack(argv) }
  end
  run_serial = run_serial + 1
  local logfile = ("%s/%03d-%s-%s-%d.log"):format(WORKDIR, run_serial, mgr.name, kind, n)
  local r, w = assert(proc.pipe())
  local t0 = proc.now()
  local pid, err = proc.spawn{ argv = argv, env = ENV, cwd = WORKDIR, newpgrp = true,
                               stdout = "/proc/self/fd/" .. w, stderr = logfile }
  proc.close(w)
  if not pid then proc.close(r); error("cannot start " .. mgr.name .. ": " .. tostring(err)) end
  local self = setmetatable({ mgr = mgr, pid = pid, t0 = t0, fd = r, buf = "", eof = false,
                              count = {}, pids = {}, t_read = t0, logfile = logfile }, Run)
  live[pid] = self
  Watchdog.tell("add", pid)
  return self
end

function Run:record(what, wid, pid)
  self.count[what] = (self.count[what] or 0) + 1
  if what == "run" then self.pids[wid] = pid end
end

-- Reads what is there within `timeout` seconds and timestamps it; false
-- at EOF (everyone holding the pipe has exited), true otherwise.
function Run:pump(timeout)
  if self.eof then return false end
  local data, err = proc.read(self.fd, 65536, math.max(timeout, 0))
  if data == nil then
    if err == "timeout" then return true end
    error("reading the event pipe: " .. tostring(err))
  end
  local now = proc.now()
  if data == "" then
    self.eof, self.t_eof = true, now
    return false
  end
  self.t_read = now
  self.buf = self.buf .. data
  for line in self.buf:gmatch("([^\n]*)\n") do
    local what, wid, pid = line:match("^(%a+) (%d+) (%d+)$")
    if what then self:record(what, tonumber(wid), tonumber(pid)) end
  end
  self.buf = self.buf:match("([^\n]*)$")
  return true
end

-- Reads events until pred(self) holds; returns the receipt time of the
-- read that made it hold, or nil and "timeout", "stalled" (no event for
-- `stall` seconds) or "exited" (EOF).
function Run:wait_for(pred, timeout, stall)
  local deadline = proc.now() + timeout
  while not pred(self) do
    local now = proc.now()
    if now >= deadline then return nil, "timeout" end
    if stall and now - self.t_read >= stall then return nil, "stalled" end
    if not self:pump(math.min(deadline - now, stall or math.huge, TICK)) then
      if pred(self) then break end
      return nil, "exited"
    end
  end
  return self.t_read
end

function Run:wait_workers(n, timeout, stall)
  return self:wait_for(function(r) return (r.count.run or 0) >= n end, timeout or 10 + n * 0.05, stall)
end

-- Reads until EOF; the time of EOF or nil after `timeout` seconds.
function Run:wait_eof(timeout)
  local deadline = proc.now() + timeout
  while self:pump(math.min(deadline - proc.now(), 0.5)) do
    if proc.now() >= deadline then return nil end
  end
  return self.t_eof
end

-- The last error line of the manager's log (a Python exception, an ERROR
-- line of cotylua), to explain a failure.
function Run:last_error()
  local last
  for line in (read_file(self.logfile) or ""):gmatch("[^\n]+") do
    if line:find("Error") or line:find("ERROR") then last = line end
  end
  return last and last:gsub("^%s+", ""):sub(1, 120)
end

function Run:kill(sig)
  return proc.kill(self.pid, sig)
end

function Run:members()
  return Procfs.group(self.pid)
end

-- SIGKILL to the whole process group, then reap everything (the driver is
-- a subreaper, so orphaned workers come back to it) and check that the
-- group is empty. Idempotent; returns the manager's wait status.
function Run:stop()
  if not live[self.pid] then return self.status end
  for _ = 1, 50 do
    proc.killpg(self.pid, "KILL")
    self:wait_eof(0.1)
    if not self.status then
      local st, err = proc.wait(self.pid, 0.1)
      self.status = st or (err ~= "timeout" and { gone = err }) or nil
    end
    proc.reap()
    if self.eof and self.status and #self:members() == 0 then break end
  end
  proc.close(self.fd)
  live[self.pid] = nil
  local left = self:members()
  if #left > 0 then error(("%s: %d processes left in group %d"):format(self.mgr.name, #left, self.pid)) end
  Watchdog.tell("del", self.pid)
  return self.status
end

local function stop_all()
  for _, run in pairs(live) do pcall(Run.stop, run) end
end

---------------------------------------------------------------------------
-- figures: samples per (row, manager)
---------------------------------------------------------------------------

local RESULTS = {}           -- row key -> manager name -> { samples, fail, notes }

local function fig(key, mgr)
  RESULTS[key] = RESULTS[key] or {}
  local f = RESULTS[key][mgr.name]
  if not f then f = { samples = {}, notes = {} }; RESULTS[key][mgr.name] = f end
  return f
end

local function sample(key, mgr, value)
  table.insert(fig(key, mgr).samples, value)
end

local function failed(key, mgr, why)
  local f = fig(key, mgr)
  f.fail = f.fail or why
end

local function note(key, mgr, text)
  local notes = fig(key, mgr).notes
  for _, t in ipairs(notes) do if t == text then return end end
  notes[#notes + 1] = text
end

---------------------------------------------------------------------------
-- the scenarios, one function each: scenario(mgr, cfg)
---------------------------------------------------------------------------

-- S1: exec of the manager until all N workers are inside `run`.
local function s1_once(key, mgr, n, opts)
  local run = start(mgr, "idle", n, opts)
  local t, why = run:wait_workers(n, opts and opts.cap, STALL)
  if t then
    sample(key, mgr, t - run.t0)
    if opts and opts.stop_key then
      proc.sleep(SETTLE)
      local t0 = proc.now()
      run:kill("TERM")
      local t1 = run:wait_eof(opts.cap)
      if t1 then sample(opts.stop_key, mgr, t1 - t0)
      else failed(opts.stop_key, mgr, ("still running %g s after SIGTERM"):format(opts.cap)) end
    end
  else
    failed(key, mgr, ("%s at %d of %d workers"):format(why, run.count.run or 0, n))
    local err = run:last_error()
    if err then note(key, mgr, err) end
  end
  run:stop()
  return t ~= nil
end

local function S1(mgr, cfg)
  for _, n in ipairs(cfg.s1_ns) do
    for _ = 1, cfg.repeats do
      if not s1_once("S1_" .. n, mgr, n) then break end
    end
  end
end

-- S1+: the same with 10,000 workers under a soft fd limit of 1024, then
-- SIGTERM until all have exited (S4+). Cotyledon, which stalls, runs in
-- the first rounds only.
local function S1plus(mgr, cfg)
  if cfg.round > cfg.s1plus_rounds then return end
  if mgr.name == "cotyledon" and cfg.round > cfg.s1plus_peer_repeats then return end
  for _ = 1, cfg.repeats do
    if not s1_once("S1plus", mgr, cfg.s1plus, { fd_limit = 1024, cap = cfg.s1plus_cap, stop_key = "S4plus" }) then break end
  end
end

-- S2: USS of an idle worker (median over the workers); total PSS of the
-- manager and its N workers.
local function S2(mgr, cfg)
  for _ = 1, cfg.repeats do
    local run = start(mgr, "idle", cfg.n)
    if not run:wait_workers(cfg.n) then
      failed("S2_uss", mgr, "workers did not start"); run:stop(); return
    end
    proc.sleep(2 * SETTLE)
    local uss, pss, procs = {}, 0, 0
    for _, pid in ipairs(run:members()) do
      local m = Procfs.memory(pid)
      if m then
        pss, procs = pss + m.pss, procs + 1
        if pid ~= run.pid then uss[#uss + 1] = m.uss end
      end
    end
    run:stop()
    sample("S2_uss", mgr, median(uss))
    sample("S2_pss", mgr, pss)
    note("S2_pss", mgr, procs .. " processes")
  end
end

-- S3: SIGKILL a worker until its replacement is inside `run`. Kills go to
-- the two slots in turn, 1.2 s apart: below both managers' throttles.
local function S3(mgr, cfg)
  local run = start(mgr, "idle", S3_WORKERS)
  if not run:wait_workers(S3_WORKERS) then failed("S3", mgr, "workers did not start"); run:stop(); return end
  for k = 1, cfg.s3_kills do
    proc.sleep(S3_SPACING)
    local wid = (k - 1) % S3_WORKERS
    local old = run.pids[wid]
    local t0 = proc.now()
    proc.kill(old, "KILL")
    local t = run:wait_for(function(r) return r.pids[wid] ~= old end, 10)
    if not t then failed("S3", mgr, "no replacement within 10 s"); break end
    sample("S3", mgr, t - t0)
  end
  run:stop()
end

-- S4: SIGTERM to the manager with N idle workers, until all have exited
-- (EOF on the event pipe: the manager and every worker closed it).
local function S4(mgr, cfg)
  for _ = 1, cfg.repeats do
    local run = start(mgr, "idle", cfg.n)
    if not run:wait_workers(cfg.n) then failed("S4", mgr, "workers did not start"); run:stop(); return end
    proc.sleep(SETTLE)
    local t0 = proc.now()
    run:kill("TERM")
    local t = run:wait_eof(30)
    local st = proc.wait(run.pid, 5)
    run.status = st
    if t then sample("S4", mgr, t - t0) else failed("S4", mgr, "still running 30 s after SIGTERM") end
    if st and st.code ~= 0 then note("S4", mgr, "exit status " .. tostring(st.code or -st.signal)) end
    run:stop()
  end
end

-- S5: SIGHUP to the manager until all N workers ran `reload`.
local function S5(mgr, cfg)
  local run = start(mgr, "idle", cfg.n)
  if not run:wait_workers(cfg.n) then failed("S5", mgr, "workers did not start"); run:stop(); return end
  for _ = 1, cfg.repeats do
    proc.sleep(SETTLE)
    local want = (run.count.reload or 0) + cfg.n
    local t0 = proc.now()
    run:kill("HUP")
    local t = run:wait_for(function(r) return (r.count.reload or 0) >= want end, 10)
    if not t then failed("S5", mgr, ("%d of %d reloads after 10 s"):format(cfg.n - want + (run.count.reload or 0), cfg.n)); break end
    sample("S5", mgr, t - t0)
  end
  run:stop()
end

-- S6: context switches and CPU time of the manager and its idle workers
-- (every thread of every process of the group) over a window.
local function group_tasks(run)
  local tasks = {}
  for _, pid in ipairs(run:members()) do Procfs.tasks(pid, tasks) end
  return tasks
end

local function S6(mgr, cfg)
  if cfg.round > cfg.s6_rounds then return end
  local run = start(mgr, "idle", S6_WORKERS)
  if not run:wait_workers(S6_WORKERS) then failed("S6_ctx", mgr, "workers did not start"); run:stop(); return end
  proc.sleep(1)
  for _ = 1, cfg.s6_windows do
    local before = group_tasks(run)
    proc.sleep(cfg.s6_window)
    local ctx, cpu = 0, 0
    for key, b in pairs(group_tasks(run)) do
      local a = before[key] or { ctx = 0, cpu_ns = 0 }
      ctx, cpu = ctx + (b.ctx - a.ctx), cpu + (b.cpu_ns - a.cpu_ns)
    end
    sample("S6_ctx", mgr, ctx)
    sample("S6_cpu", mgr, cpu / 1e9)
  end
  run:stop()
end

-- S7: SIGTERM while a crash-looping slot waits in its restart backoff,
-- until the manager exits. The slot is in backoff once it started at
-- least twice and then stayed silent for 0.3 s.
local function S7(mgr, cfg)
  for _ = 1, cfg.repeats do
    local run = start(mgr, "crash", 1)
    local backoff = run:wait_for(function(r)
      return (r.count.run or 0) >= 2 and proc.now() - r.t_read >= S7_SILENCE
    end, 20)
    if not backoff then failed("S7", mgr, "never reached backoff"); run:stop(); return end
    note("S7", mgr, run.count.run .. " starts before backoff")
    local t0 = proc.now()
    run:kill("TERM")
    local st = proc.wait(run.pid, 30)
    local t1 = proc.now()
    run.status = st
    if st then sample("S7", mgr, t1 - t0) else failed("S7", mgr, "still running 30 s after SIGTERM") end
    run:stop()
  end
end

-- S8: SIGKILL the manager with idle workers: how many workers are alive
-- 2 s later, and when the last one exited (EOF on the event pipe).
local function S8(mgr, cfg)
  for _ = 1, cfg.repeats do
    local run = start(mgr, "idle", S8_WORKERS)
    if not run:wait_workers(S8_WORKERS) then failed("S8_alive", mgr, "workers did not start"); run:stop(); return end
    proc.sleep(SETTLE)
    local t0 = proc.now()
    run:kill("KILL")
    run.status = proc.wait(run.pid, 5)
    local t = run:wait_eof(S8_GRACE)
    proc.sleep(math.max(0, t0 + S8_GRACE - proc.now()))
    local alive = #run:members()
    sample("S8_alive", mgr, alive)
    if t then sample("S8_last", mgr, t - t0)
    else failed("S8_last", mgr, ("%d workers still alive after %g s"):format(alive, S8_GRACE)) end
    run:stop()
  end
end

---------------------------------------------------------------------------
-- the table
---------------------------------------------------------------------------

local MS, KIB, MIB = 1e-3, 1024, 1024 * 1024

local function fmt_time(s)
  if s == 0 then return "0 s" end
  if s < 0.01 then return ("%.2f ms"):format(s * 1e3) end
  if s < 1 then return ("%.1f ms"):format(s * 1e3) end
  return ("%.2f s"):format(s)
end

local function fmt_bytes(b)
  if b < MIB then return ("%.0f KiB"):format(b / KIB) end
  return ("%.1f MiB"):format(b / MIB)
end

local function fmt_count(n)
  if n == math.floor(n) then return ("%d"):format(math.floor(n)) end
  return ("%.1f"):format(n)
end

local FORMAT = { time = fmt_time, bytes = fmt_bytes, count = fmt_count }

-- Targets as the issue writes them: "3 ms", "0.4 s", "256 KiB".
local function fmt_target(unit, v)
  if unit == "time" then return v < 0.1 and ("%g ms"):format(v * 1e3) or ("%g s"):format(v) end
  if unit == "bytes" then return v < MIB and ("%g KiB"):format(v / KIB) or ("%g MiB"):format(v / MIB) end
  return ("%g"):format(v)
end

-- The rows, in order; `target` is cotylua's (met when its median <= it).
local function rows(cfg)
  local list = {}
  local s1_targets = { [1] = 3 * MS, [100] = 30 * MS, [1000] = 0.4 }
  for _, n in ipairs(cfg.s1_ns) do
    list[#list + 1] = { key = "S1_" .. n, id = "S1", what = ("exec until %d worker%s in run"):format(n, n == 1 and " is" or "s are"),
                        unit = "time", target = s1_targets[n], floor = n >= 100 and 1.10 or nil }
  end
  if cfg.s1plus then
    list[#list + 1] = { key = "S1plus", id = "S1+", what = ("exec until %d workers are in run, fd soft limit 1024"):format(cfg.s1plus),
                        unit = "time", target = 5, floor = 1.15 }
    list[#list + 1] = { key = "S4plus", id = "S4+", what = ("SIGTERM until all %d workers and the manager exited"):format(cfg.s1plus),
                        unit = "time", floor = 1.15 }
  end
  local n = cfg.n
  local more = {
    { key = "S2_uss", id = "S2", what = "USS of an idle worker", unit = "bytes", target = 256 * KIB, floor = 1.10 },
    { key = "S2_pss", id = "S2", what = ("total PSS, %d workers"):format(n), unit = "bytes", target = n == 100 and 30 * MIB or nil, floor = 1.10 },
    { key = "S3", id = "S3", what = "SIGKILL a worker until its replacement is in run", unit = "time", target = 1 * MS, floor = 1.10 },
    { key = "S4", id = "S4", what = ("SIGTERM until all %d workers and the manager exited"):format(n), unit = "time", target = 20 * MS, floor = 1.10 },
    { key = "S5", id = "S5", what = ("SIGHUP until all %d workers ran reload"):format(n), unit = "time", target = 5 * MS, floor = 1.25 },
    { key = "S6_ctx", id = "S6", what = ("context switches, manager + %d idle workers, %g s"):format(S6_WORKERS, cfg.s6_window), unit = "count", target = 0 },
    { key = "S6_cpu", id = "S6", what = ("CPU time, manager + %d idle workers, %g s"):format(S6_WORKERS, cfg.s6_window), unit = "time", target = 0 },
    { key = "S7", id = "S7", what = "SIGTERM during restart backoff until the manager exited", unit = "time", target = 50 * MS },
    { key = "S8_alive", id = "S8", what = ("SIGKILL the manager: workers (of %d) alive %g s later"):format(S8_WORKERS, S8_GRACE), unit = "count", target = 0 },
    { key = "S8_last", id = "S8", what = "SIGKILL the manager: until the last worker exited", unit = "time", target = 10 * MS },
  }
  for _, r in ipairs(more) do list[#list + 1] = r end
  return list
end

-- A figure's median, min and max, or nil when it has none or failed.
local function stats(f)
  if not f or f.fail or #f.samples == 0 then return nil end
  local lo, hi = minmax(f.samples)
  return median(f.samples), lo, hi, #f.samples
end

local function cell(row, f)
  if not f then return "not run" end
  if f.fail then return "failed: " .. f.fail end
  local med, lo, hi, n = stats(f)
  if not med then return "no data" end
  local fmt = FORMAT[row.unit]
  if n == 1 or fmt(lo) == fmt(hi) then return fmt(med) end
  return ("%s (%s – %s)"):format(fmt(med), fmt(lo), fmt(hi))
end

local function ratio(a, b)
  local ma, mb = stats(a), stats(b)
  if not ma or not mb then return "–" end
  if ma == 0 and mb == 0 then return "=" end
  if ma == 0 then return "∞" end
  local r = mb / ma
  if r >= 100 then return ("%.0f×"):format(r) end
  if r >= 10 then return ("%.1f×"):format(r) end
  return ("%.2f×"):format(r)
end

-- cotylua's median over the floor's (below 1, cotylua is faster), the
-- floor target ("≤ 1.1×") and whether cotylua met it.
local function floor_ratio(row, a, fl)
  local ma, mf = stats(a), stats(fl)
  local target = row.floor and ("≤ %.2f×"):format(row.floor) or "–"
  if not ma or not mf then return "–", target, row.floor and (a or fl) and "missed (failed)" or "–" end
  if ma == 0 and mf == 0 then return "=", target, row.floor and "met" or "–" end
  if mf == 0 then return "∞", target, row.floor and "**missed**" or "–" end
  local r = ma / mf
  local met = not row.floor and "–" or (r <= row.floor and "met" or "**missed**")
  return ("%.2f×"):format(r), target, met
end

local function verdict(row, f)
  if row.target == nil then return "–", "–" end
  local target = "≤ " .. fmt_target(row.unit, row.target)
  if row.target == 0 then target = "0" end
  local med = stats(f)
  if not med then return target, f and "missed (failed)" or "–" end
  return target, med <= row.target and "met" or "**missed**"
end

local function table_lines(cfg)
  local lines = {
    "| id | figure | cotylua | floor | cotyledon | cotylua ÷ floor | target | met | cotyledon ÷ cotylua | target | met |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
  }
  for _, row in ipairs(rows(cfg)) do
    local res = RESULTS[row.key]
    if res then
      local a, fl, b = res.cotylua, res.floor, res.cotyledon
      local target, met = verdict(row, a)
      local fr, ftarget, fmet = floor_ratio(row, a, fl)
      lines[#lines + 1] = ("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |"):format(
        row.id, row.what, cell(row, a), cell(row, fl), cell(row, b), fr, ftarget, fmet,
        ratio(a, b), target, met)
    end
  end
  return lines
end

local function notes_lines(cfg)
  local out = {}
  for _, row in ipairs(rows(cfg)) do
    for _, mgr in ipairs(MANAGERS) do
      local f = RESULTS[row.key] and RESULTS[row.key][mgr.name]
      if f and #f.notes > 0 then
        out[#out + 1] = ("- %s, %s: %s"):format(row.id, mgr.name, table.concat(f.notes, "; "))
      end
    end
  end
  return out
end

---------------------------------------------------------------------------
-- the machine, and RESULTS.md
---------------------------------------------------------------------------

local LOAD1 = {}             -- the 1-minute load average before each scenario

local function loadavg()
  local l = ((read_file("/proc/loadavg") or "?"):match("^(%S+ %S+ %S+)")) or "?"
  LOAD1[#LOAD1 + 1] = tonumber(l:match("^%S+"))
  return l
end

local function load_range()
  local lo, hi = minmax(LOAD1)
  return ("%.2f – %.2f (median %.2f)"):format(lo, hi, median(LOAD1))
end

local function machine()
  local cpuinfo = read_file("/proc/cpuinfo") or ""
  local cores = select(2, cpuinfo:gsub("\nprocessor%s*:", "")) + (cpuinfo:match("^processor") and 1 or 0)
  local mem = tonumber((read_file("/proc/meminfo") or ""):match("MemTotal:%s+(%d+)") or 0)
  return {
    { "cores", ("%d (%s online for us)"):format(cores, shell_out("nproc")) },
    { "cpu", cpuinfo:match("model name%s*:%s*([^\n]+)") or "?" },
    { "memory", ("%.1f GiB"):format(mem / 1024 / 1024) },
    { "kernel", (read_file("/proc/sys/kernel/osrelease") or "?"):gsub("%s+$", "") },
    { "system", "Debian " .. ((read_file("/etc/debian_version") or "?"):gsub("%s+$", "")) },
    { "fd soft limit", shell_out("ulimit -Sn") },
    { "load average", ("%s at the start, %s at the end"):format(LOAD_START, loadavg()) },
    { "1-min load, per scenario", load_range() },
    { "cotylua", shell_out(BIN .. " --version") .. " (" .. shell_out("cd " .. ROOT .. " && git describe --always --dirty") .. ")" },
    { "cotyledon", "python3-cotyledon " .. shell_out("dpkg-query -W -f='${Version}' python3-cotyledon")
                   .. ", " .. shell_out(PYTHON .. " --version") },
    { "driver", _VERSION },
  }
end

local function write_results(cfg, info, took, errors)
  local out = {}
  local function add(s) out[#out + 1] = s end
  add("# Benchmark results: cotylua and cotyledon")
  add("")
  add(("Written by `bench/bench.lua` (%s mode, %d repeat%s) on %s, in %.0f s. "
       .. "See bench/README.md for the method."):format(cfg.mode, cfg.repeats, cfg.repeats == 1 and "" or "s",
       os.date("!%Y-%m-%d %H:%M UTC"), took))
  add("")
  add("| machine | |")
  add("| --- | --- |")
  for _, kv in ipairs(info) do add(("| %s | %s |"):format(kv[1], kv[2])) end
  add("")
  add("Each cell is the median, then (min – max), over the repeats (S3: over the kills; "
      .. "S6: over the windows). cotylua ÷ floor: cotylua's median over the floor's (bench/floor.c), "
      .. "above 1, cotylua is slower or bigger. cotyledon ÷ cotylua: above 1, cotylua is faster or smaller.")
  add("")
  for _, l in ipairs(table_lines(cfg)) do add(l) end
  local notes = notes_lines(cfg)
  if #notes > 0 then
    add("")
    add("Notes:")
    add("")
    for _, l in ipairs(notes) do add(l) end
  end
  if #errors > 0 then
    add("")
    add("Driver errors:")
    add("")
    for _, e in ipairs(errors) do add("- " .. e) end
  end
  add("")
  os.execute("mkdir -p '" .. dirname(cfg.out) .. "'")
  local f = assert(io.open(cfg.out, "w"))
  f:write(table.concat(out, "\n"))
  f:close()
end

---------------------------------------------------------------------------
-- main
---------------------------------------------------------------------------

local SCENARIOS = {
  { id = "S1", fn = S1 },
  { id = "S1+", fn = S1plus, full_only = true },
  { id = "S2", fn = S2 },
  { id = "S3", fn = S3 },
  { id = "S4", fn = S4 },
  { id = "S5", fn = S5 },
  { id = "S6", fn = S6 },
  { id = "S7", fn = S7 },
  { id = "S8", fn = S8 },
}

local function interrupted(err)
  return tostring(err):find("interrupted!", 1, true) ~= nil
end

-- Runs one scenario for one manager; any error kills what it started.
local function run_scenario(sc, mgr, cfg, errors, round)
  log("round %d: %s %s (load %s)", round, sc.id, mgr.name, loadavg())
  local ok, err = xpcall(sc.fn, debug.traceback, mgr, cfg)
  local stopped, serr = pcall(stop_all)
  if not ok then
    if interrupted(err) then error(err, 0) end
    errors[#errors + 1] = ("%s %s: %s"):format(sc.id, mgr.name, tostring(err):gsub("\n", " / "))
    log("error: %s", err)
  end
  if not stopped then errors[#errors + 1] = ("%s %s: %s"):format(sc.id, mgr.name, serr) end
end

local function check_prerequisites(cfg)
  local missing = {}
  if not io.open(BIN) then missing[#missing + 1] = BIN .. " (run make)" end
  if not io.open(FLOOR) then missing[#missing + 1] = FLOOR .. " (run make bench-floor)" end
  if (not cfg.managers or cfg.managers.cotyledon)
     and os.execute(PYTHON .. " -c 'import cotyledon' 2>/dev/null") ~= true then
    missing[#missing + 1] = "python3-cotyledon (apt-get install -y python3-cotyledon)"
  end
  if #missing > 0 then
    io.stderr:write("bench: missing: " .. table.concat(missing, ", ") .. "\n")
    os.exit(1)
  end
end

-- Our children still alive (the managers' orphans come back to us).
local function leftovers()
  local left = {}
  for _, pid in ipairs(proc.pids()) do
    local st = Procfs.stat(pid)
    if st and st.ppid == proc.getpid() and st.state ~= "Z" then left[#left + 1] = pid end
  end
  return left
end

-- The configuration of one round: one repeat of everything.
local function round_cfg(cfg, round)
  local rc = {}
  for k, v in pairs(cfg) do rc[k] = v end
  rc.round, rc.repeats = round, 1
  rc.s3_kills = math.max(1, math.ceil(cfg.s3_kills / cfg.repeats))
  rc.s6_rounds, rc.s6_windows = cfg.s6_windows, 1
  return rc
end

-- Rounds of one repeat each, the managers in turn within a scenario, so
-- that a change in the machine's load shows in all of them alike.
local function run_all(cfg, errors)
  for round = 1, cfg.repeats do
    local rc = round_cfg(cfg, round)
    for _, sc in ipairs(SCENARIOS) do
      local wanted = (not cfg.only or cfg.only[sc.id]) and not (sc.full_only and cfg.mode == "quick")
      if wanted then
        for _, mgr in ipairs(MANAGERS) do
          if not cfg.managers or cfg.managers[mgr.name] then run_scenario(sc, mgr, rc, errors, round) end
        end
      end
    end
  end
end

local function report(cfg, errors)
  local info = machine()
  local took = proc.now() - START
  write_results(cfg, info, took, errors)
  print()
  for _, kv in ipairs(info) do print(("%-14s %s"):format(kv[1], kv[2])) end
  print()
  for _, l in ipairs(table_lines(cfg)) do print(l) end
  for _, l in ipairs(notes_lines(cfg)) do print(l) end
  for _, e in ipairs(errors) do print("driver error: " .. e) end
  print(("\nwritten: %s (%.0f s)"):format(cfg.out, took))
end

local function main()
  local cfg = parse_args(arg)
  check_prerequisites(cfg)
  LOAD_START = loadavg()
  local load1 = tonumber(LOAD_START:match("^%S+")) or 0
  if load1 > 1 then log("warning: load average %s before the run: figures will be noisy", LOAD_START) end
  assert(proc.set_subreaper())
  WORKDIR = assert(proc.mkdtemp((os.getenv("TMPDIR") or "/tmp") .. "/cotylua-bench.XXXXXX"))
  Watchdog.start()
  local errors = {}
  local ok, err = pcall(run_all, cfg, errors)
  stop_all()
  proc.reap()
  Watchdog.stop()
  local left = leftovers()
  if #left > 0 then errors[#errors + 1] = "processes left running: " .. table.concat(left, " ") end
  if cfg.keep then log("logs kept in %s", WORKDIR) else os.execute("rm -rf '" .. WORKDIR .. "'") end
  if not ok then
    io.stderr:write("bench: ", interrupted(err) and "interrupted" or tostring(err), "\n")
    os.exit(interrupted(err) and 130 or 1)
  end
  report(cfg, errors)
  os.exit(#errors == 0 and 0 or 1)
end

main()
