-- spec/support/helpers.lua - shared helpers for the busted specs.
--
-- Usage from a spec (run from the repository root, where .busted sets the
-- paths and loads spec/support/preamble.lua): local H = require "helpers"
--
-- Built on the C module spec/support/proc.c (require "proc").  Returns a
-- table; defines no globals.

local proc = require "proc"
local luassert = require "luassert"

local H = {}
H.proc = proc

-- The first lines of every services file the specs write: the module, and
-- ev(fmt, ...) that appends one line to the spec's events file.
H.prelude = [[
local cotylua = require("cotylua")
local function ev(fmt, ...)
  local f = assert(io.open(os.getenv("EVENTS"), "a"))
  f:write(string.format(fmt, ...), "\n")
  f:close()
end
]]

---------------------------------------------------------------------------
-- locations
---------------------------------------------------------------------------

local function dirname(p)
  local d = p:match("^(.*)/[^/]*$")
  if d == nil then return "." end
  if d == "" then return "/" end
  return d
end

local function find_root()
  local env = os.getenv("COTYLUA_ROOT")
  if env and env ~= "" then
    return proc.realpath(env) or env
  end
  local src = debug.getinfo(1, "S").source
  local file = src:sub(1, 1) == "@" and src:sub(2) or "./spec/support/helpers.lua"
  local root = dirname(file) .. "/../.."
  return assert(proc.realpath(root))
end

H.root = find_root()
H.bin = os.getenv("COTYLUA_BIN") or (H.root .. "/build/bin/cotylua")

---------------------------------------------------------------------------
-- files
---------------------------------------------------------------------------

function H.write(path, text)
  local f = assert(io.open(path, "w"))
  assert(f:write(text))
  assert(f:close())
  return path
end

local function read_or_nil(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

function H.read(path)
  return read_or_nil(path) or ""
end

function H.app(dir, lua_source)
  return H.write(dir .. "/services.lua", lua_source)
end

function H.events_file(dir)
  return dir .. "/events.log"
end

-- The non-empty lines of text, in order.
function H.lines_of(text)
  local out = {}
  for line in text:gmatch("[^\n]+") do out[#out + 1] = line end
  return out
end
local lines_of = H.lines_of

-- The keys of t, sorted.
function H.keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return out
end

---------------------------------------------------------------------------
-- waiting
---------------------------------------------------------------------------

-- A free TCP port on 127.0.0.1 (bound then released by this process).
function H.free_port()
  local s = assert(require("socket").bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

-- The line of services.lua written as H.prelude .. body that holds
-- `marker` (a string found in body).
function H.line_of(body, marker)
  local n = select(2, H.prelude:gsub("\n", "")) + 1
  for line in body:gmatch("[^\n]*") do
    if line:find(marker, 1, true) then return n end
    n = n + 1
  end
  error("no line with " .. marker)
end

-- Every wait's limit is multiplied by COTYLUA_SPEC_SLOW (default 1):
-- tools/check.sh sets it for the sanitizer build, whose processes start
-- and exit several times more slowly. A limit is a cap on waiting for
-- what must happen, never a bound on how fast it happens.
H.slow = tonumber(os.getenv("COTYLUA_SPEC_SLOW")) or 1

-- Poll pred() every 5 ms until it returns a truthy value (all of its
-- results are returned) or `timeout` seconds (default 5) pass, in which
-- case an error "timed out after Ns waiting for: WHAT" is raised.
function H.wait_until(pred, timeout, what)
  timeout = (timeout or 5) * H.slow
  local deadline = proc.now() + timeout
  while true do
    local r = table.pack(pred())
    if r[1] then return table.unpack(r, 1, r.n) end
    if proc.now() >= deadline then
      error(string.format("timed out after %gs waiting for: %s",
        timeout, tostring(what or "condition")), 2)
    end
    proc.sleep(0.005)
  end
end

---------------------------------------------------------------------------
-- temporary directories
---------------------------------------------------------------------------

local tmpdirs = {}   -- dirs created since the last teardown, in order
local started = {}   -- dir -> array of handles started there

function H.tmpdir()
  local base = os.getenv("TMPDIR")
  if not base or base == "" then base = "/tmp" end
  local d = assert(proc.mkdtemp(base .. "/cotylua-spec.XXXXXX"))
  d = proc.realpath(d) or d
  tmpdirs[#tmpdirs + 1] = d
  return d
end

---------------------------------------------------------------------------
-- /proc inspection
---------------------------------------------------------------------------

-- Parsed /proc/PID/stat: { comm=, state=, ppid=, pgrp=, session= } or nil.
function H.proc_stat(pid)
  local s = read_or_nil("/proc/" .. pid .. "/stat")
  if not s then return nil end
  local comm, rest = s:match("^%d+ %((.*)%) (.*)$")
  if not comm then return nil end
  local state, ppid, pgrp, session = rest:match("^(%S+) (%-?%d+) (%-?%d+) (%-?%d+)")
  if not state then return nil end
  return { comm = comm, state = state, ppid = tonumber(ppid),
           pgrp = tonumber(pgrp), session = tonumber(session) }
end

local function live_stat(pid)
  local st = H.proc_stat(pid)
  if st and st.state ~= "Z" and st.state ~= "X" then return st end
  return nil
end

function H.proc_status(pid)
  local s = read_or_nil("/proc/" .. pid .. "/status")
  if not s then return nil end
  local t = {}
  for k, v in s:gmatch("([^\n:]+):[ \t]*([^\n]*)") do t[k] = v end
  return t
end

function H.cmdline(pid)
  local s = read_or_nil("/proc/" .. pid .. "/cmdline")
  if not s then return nil end
  return (s:gsub("%z", " "):gsub(" +$", ""))
end

function H.comm(pid)
  local s = read_or_nil("/proc/" .. pid .. "/comm")
  if not s then return nil end
  return (s:gsub("\n$", ""))
end

function H.fds(pid)
  local names = proc.listdir("/proc/" .. pid .. "/fd")
  local out = {}
  if not names then return out end
  for _, n in ipairs(names) do
    local fd = tonumber(n)
    if fd then out[#out + 1] = fd end
  end
  table.sort(out)
  return out
end

-- Live (non-zombie) processes whose parent is pid, sorted.
-- Zombie children of pid (a manager must have none for long).
function H.zombies_of(pid)
  local n = 0
  for _, p in ipairs(proc.pids()) do
    local st = H.proc_stat(p)
    if st and st.ppid == pid and st.state == "Z" then n = n + 1 end
  end
  return n
end

-- The live workers of service `name` under manager pid: { [worker_id] = pid },
-- read from their titles, and how many there are.
function H.workers_of(pid, name)
  local out, n = {}, 0
  for _, child in ipairs(H.children(pid)) do
    local id = (H.cmdline(child) or ""):match("^cotylua: " .. name .. " worker%((%d+)%)$")
    if id then
      out[tonumber(id)] = child
      n = n + 1
    end
  end
  return out, n
end

function H.children(pid)
  local out = {}
  for _, p in ipairs(proc.pids()) do
    local st = live_stat(p)
    if st and st.ppid == pid then out[#out + 1] = p end
  end
  table.sort(out)
  return out
end

-- The directory a process runs in, or nil (gone, zombie, no permission).
local function cwd_of(pid)
  local c = proc.readlink("/proc/" .. pid .. "/cwd")
  if not c then return nil end
  return (c:gsub(" %(deleted%)$", ""))
end

local function norm_dir(dir)
  return proc.realpath(dir) or dir
end

-- Live (non-zombie) processes whose cwd is dir, sorted.
function H.procs_in(dir)
  dir = norm_dir(dir)
  local me = proc.getpid()
  local out = {}
  for _, p in ipairs(proc.pids()) do
    if p ~= me and cwd_of(p) == dir and live_stat(p) then
      out[#out + 1] = p
    end
  end
  table.sort(out)
  return out
end

---------------------------------------------------------------------------
-- starting the service manager
---------------------------------------------------------------------------

local Handle = {}
Handle.__index = Handle

function Handle:kill(sig)
  return proc.kill(self.pid, sig or "TERM")
end

-- Status table as returned by proc.wait ({code=n} or {signal=n}); cached.
-- Returns nil, "timeout" if the process is still running after timeout.
function Handle:wait(timeout)
  if self.status then return self.status end
  local st, err, errno = proc.wait(self.pid, timeout and timeout * H.slow)
  if st then self.status = st end
  return st, err, errno
end

function Handle:alive()
  return self.status == nil and proc.alive(self.pid)
end

function Handle:stdout() return H.read(self.dir .. "/stdout.log") end
function Handle:stderr() return H.read(self.dir .. "/stderr.log") end

function Handle:events()
  return lines_of(H.read(H.events_file(self.dir)))
end

-- The index of the first line of events.log matching pattern, or nil.
function Handle:index_of(pattern)
  for i, line in ipairs(self:events()) do
    if line:find(pattern) then return i end
  end
end

function Handle:count_events(pattern)
  local n = 0
  for _, line in ipairs(self:events()) do
    if line:find(pattern) then n = n + 1 end
  end
  return n
end

-- Find a line of events.log (after line `after`, default 0) matching the
-- Lua pattern; return its captures, or the whole line if the pattern has
-- none, followed by nothing else.  Returns nil if there is none yet.
local function match_event(lines, pattern, after)
  for i = (after or 0) + 1, #lines do
    local r = table.pack(lines[i]:find(pattern))
    if r[1] then
      if r.n > 2 then return table.unpack(r, 3, r.n) end
      return lines[i]
    end
  end
  return nil
end

-- Wait until some line of events.log matches pattern (Lua pattern); returns
-- the captures or, with no captures, the line.  `after` skips the first
-- `after` lines (e.g. p:wait_event(pat, 5, #p:events()) for a new event).
function Handle:wait_event(pattern, timeout, after)
  timeout = (timeout or 5) * H.slow
  local deadline = proc.now() + timeout
  while true do
    local r = table.pack(match_event(self:events(), pattern, after))
    if r[1] ~= nil then return table.unpack(r, 1, r.n) end
    if proc.now() >= deadline then
      local tail = self:stderr():sub(-2000)
      error(string.format(
        "timed out after %gs waiting for: event matching %q\n" ..
        "--- events.log:\n%s--- stderr.log (tail):\n%s",
        timeout, pattern, H.read(H.events_file(self.dir)), tail), 2)
    end
    proc.sleep(0.005)
  end
end

local passthrough = { "PATH", "HOME", "TMPDIR", "ASAN_OPTIONS",
                      "UBSAN_OPTIONS", "LSAN_OPTIONS", "LD_PRELOAD" }

-- Build the scrubbed environment; later entries override earlier ones.
local function build_env(dir, opts)
  local keys, vals = {}, {}
  local function set(k, v)
    if vals[k] == nil then keys[#keys + 1] = k end
    vals[k] = v
  end
  for _, k in ipairs(passthrough) do
    local v = os.getenv(k)
    if v then set(k, v) end
  end
  if not vals.PATH then set("PATH", "/usr/local/bin:/usr/bin:/bin") end
  set("LANG", "C")
  set("EVENTS", H.events_file(dir))
  -- the control socket goes in the test's own directory
  set("RUNTIME_DIRECTORY", dir)
  if opts.lua then
    set("LUA_PATH", os.getenv("COTYLUA_LUA_PATH")
      or (H.root .. "/lua/?.lua;" .. H.root .. "/lua/?/init.lua;;"))
    set("LUA_CPATH", os.getenv("COTYLUA_LUA_CPATH")
      or (H.root .. "/build/lib/?.so;;"))
    -- a sanitizer build of the module needs its runtime preloaded
    local preload = os.getenv("COTYLUA_SPEC_PRELOAD")
    if preload and preload ~= "" then set("LD_PRELOAD", preload) end
  end
  local extra = opts.env or {}
  for _, kv in ipairs(extra) do
    local k, v = kv:match("^([^=]+)=(.*)$")
    assert(k, "H.start: env entry must be K=V: " .. tostring(kv))
    set(k, v)
  end
  for k, v in pairs(extra) do
    if type(k) == "string" then set(k, tostring(v)) end
  end
  local env = {}
  for i, k in ipairs(keys) do env[i] = k .. "=" .. vals[k] end
  return env
end

local function build_argv(dir, opts)
  if opts.argv then return opts.argv end
  local argv = { opts.lua and "lua5.4" or H.bin }
  local file = opts.file
  if file == nil then file = dir .. "/services.lua" end
  if file then argv[#argv + 1] = file end
  for _, a in ipairs(opts.args or {}) do argv[#argv + 1] = a end
  return argv
end

-- Start the service manager (or, with opts.argv, any command) in opts.dir.
--   opts.dir   working directory (default: a fresh H.tmpdir())
--   opts.file  file argument (default dir/services.lua; false = none)
--   opts.args  extra arguments after the file
--   opts.env   extra "K=V" entries (or K = V pairs), override the defaults
--   opts.lua   run `lua5.4 FILE ...` instead of H.bin
--   opts.argv  full argv override (the other argv options are ignored)
-- stdout/stderr go to dir/stdout.log and dir/stderr.log; stdin is
-- /dev/null; the child leads a new process group.
function H.start(opts)
  opts = opts or {}
  local dir = norm_dir(opts.dir or H.tmpdir())
  local argv = build_argv(dir, opts)
  local pid, err = proc.spawn{
    argv = argv,
    env = build_env(dir, opts),
    cwd = dir,
    stdout = dir .. "/stdout.log",
    stderr = dir .. "/stderr.log",
    newpgrp = true,
  }
  if not pid then error("H.start: " .. tostring(err), 2) end
  local p = setmetatable({ pid = pid, pgid = pid, dir = dir, argv = argv },
                         Handle)
  local list = started[dir]
  if not list then list = {}; started[dir] = list end
  list[#list + 1] = p
  return p
end

-- Writes H.prelude .. body as dir/services.lua in a fresh dir and starts
-- it: with the cotylua binary (mode "binary", the default), or under a
-- plain lua5.4 with require("cotylua") and manager:run() (mode "lua").
function H.run_app(body, mode, opts)
  opts = opts or {}
  local dir = opts.dir or H.tmpdir()
  local file = H.app(dir, H.prelude .. body)
  if mode == "lua" then
    local runner = H.write(dir .. "/run.lua", "local m = dofile(arg[1])\nm:run()\n")
    return H.start{ dir = dir, lua = true, file = runner, args = { file }, env = opts.env }
  end
  return H.start{ dir = dir, file = file, args = opts.args, env = opts.env }
end

---------------------------------------------------------------------------
-- cleanup
---------------------------------------------------------------------------

local function under(path, dir)
  return path == dir or path:sub(1, #dir + 1) == dir .. "/"
end

-- Live processes that belong to dir: members of the process groups of
-- handles started there, or with a cwd at or below dir.
local function leftovers(dir, pgids)
  local me = proc.getpid()
  local out = {}
  for _, p in ipairs(proc.pids()) do
    if p ~= me then
      local st = live_stat(p)
      if st then
        local c = cwd_of(p)
        if pgids[st.pgrp] or (c and under(c, dir)) then
          out[#out + 1] = p
        end
      end
    end
  end
  return out
end

-- SIGKILL everything left over in dir; returns how many processes it killed.
function H.cleanup(dir)
  dir = norm_dir(dir)
  local my_pgrp = proc.getpgid()
  local handles = started[dir] or {}
  local pgids = {}
  for _, p in ipairs(handles) do
    if p.pgid ~= my_pgrp then pgids[p.pgid] = true end
  end
  local killed = {}
  local count = 0
  H.wait_until(function()
    local left = leftovers(dir, pgids)
    for _, p in ipairs(left) do
      if not killed[p] then
        killed[p] = true
        count = count + 1
        -- say what was left, so that a failure names it
        local st = H.proc_stat(p) or {}
        io.stderr:write(("cleanup %s: killing pid %d ppid %s pgrp %s state %s: %s\n"):format(
          dir, p, tostring(st.ppid), tostring(st.pgrp), tostring(st.state), tostring(H.cmdline(p))))
      end
      proc.kill(p, "KILL")
    end
    for g in pairs(pgids) do proc.killpg(g, "KILL") end
    -- collect our direct children's statuses before reaping everyone
    for _, h in ipairs(handles) do h:wait(0) end
    proc.reap()
    return #left == 0
  end, 5, "processes in " .. dir .. " to die")
  for _, h in ipairs(handles) do h:wait(0) end
  proc.reap()
  return count
end

-- Ends a test (spec/support/preamble.lua calls it after each): every
-- process the test started that still runs (a test that failed half-way)
-- is SIGKILLed, then H.teardown(). Returns what teardown killed.
function H.finish()
  for _, list in pairs(started) do
    for _, p in ipairs(list) do
      if p:alive() then -- a test that failed half-way
        p:kill("KILL")
        p:wait(5)
      end
    end
  end
  return H.teardown()
end

-- SIGTERM to the manager p: it must exit with `code` (default 0) within
-- `timeout` seconds (default 20, an upper bound).
function H.stop(p, code, timeout)
  luassert(p:kill("TERM"))
  luassert.are.same({ code = code or 0 }, p:wait(timeout or 20))
end

-- Clean up every dir made by H.tmpdir since the last teardown, then remove
-- them.  Returns the total number of processes killed.
function H.teardown()
  local dirs = tmpdirs
  tmpdirs = {}
  local total = 0
  for _, d in ipairs(dirs) do
    total = total + H.cleanup(d)
    started[d] = nil
    os.execute("rm -rf '" .. d:gsub("'", "'\\''") .. "'")
  end
  return total
end

return H
