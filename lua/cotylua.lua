--- cotylua: the public Lua face of the service manager.
--
-- The engine (fork, reaping, signals, timers, restart throttle) is the C
-- module cotylua.core; this file validates what users give it, keeps the
-- service tables and hooks, and builds each worker's service instance.
-- It holds no process state of its own: that lives in C.

local core = require("cotylua.core")

local M = { _VERSION = "cotylua " .. core.version }

local type, error, select, tostring, pairs, ipairs = type, error, select, tostring, pairs, ipairs
local format, mtype, unpack = string.format, math.type, table.unpack

---------------------------------------------------------------------------
-- Worker-side helpers and logging
---------------------------------------------------------------------------

M.sleep = core.sleep
M.wait = core.wait
M.stopping = core.stopping
M.signal_fd = core.signal_fd
M.dispatch = core.dispatch
M.now = core.now
M.getpid = core.getpid

local function logger(level)
  return function(fmt, ...)
    local msg = select("#", ...) > 0 and format(fmt, ...) or tostring(fmt)
    core.log(level, msg)
  end
end

M.log = {
  debug = logger("debug"),
  info = logger("info"),
  warning = logger("warning"),
  error = logger("error"),
  level = core.log_level,
}

---------------------------------------------------------------------------
-- Coroutines: Lua hooks are per thread, so the engine must know which
-- coroutine runs when a signal comes. coroutine.resume and coroutine.wrap
-- are replaced, once, by versions that tell it (a C call in and out).
---------------------------------------------------------------------------

local function guard_coroutines()
  local create, resume, close = coroutine.create, coroutine.resume, coroutine.close
  local enter, leave = core.co_enter, core.co_leave
  local function guarded_resume(co, ...)
    if type(co) ~= "thread" then
      error(format("bad argument #1 to 'coroutine.resume' (thread expected, got %s)", type(co)), 2)
    end
    enter(co)
    return leave(resume(co, ...))
  end
  local function unwrap(co, ok, ...)
    if ok then
      return ...
    end
    close(co)
    error((...), 2)
  end
  -- luacheck: push ignore 122 (the point is to replace these two)
  coroutine.resume = guarded_resume
  coroutine.wrap = function(f)
    if type(f) ~= "function" then
      error(format("bad argument #1 to 'coroutine.wrap' (function expected, got %s)", type(f)), 2)
    end
    local co = create(f)
    return function(...)
      return unwrap(co, guarded_resume(co, ...))
    end
  end
  -- luacheck: pop
end

guard_coroutines()

---------------------------------------------------------------------------
-- Validation: every error names the field, the bad value and its type,
-- and points at the caller's line.
---------------------------------------------------------------------------

local function show(v)
  if type(v) == "string" then
    return format("%q", v)
  end
  return tostring(v)
end

local function bad(field, v, expected, level)
  error(format("bad %s: expected %s, got %s (%s)", field, expected, show(v), type(v)), level + 1)
end

local function check_workers(v, field, level)
  local n = mtype(v) and math.tointeger(v)
  if not n or n < 1 or n > 1000000 then
    bad(field, v, "an integer >= 1", level + 1)
  end
  return n
end

local function check_seconds(v, field, level)
  if mtype(v) == nil or v ~= v or v < 0 or v > 1e9 then
    bad(field, v, "a number of seconds >= 0", level + 1)
  end
  return v
end

local RESTART_FIELDS = { burst = "integer", interval = "seconds", delay = "seconds", max_delay = "seconds" }

-- field: what to call the table in messages; where: "" or ' for service "x"'.
local function check_restart(v, field, level, where)
  where = where or ""
  if v == nil then
    return nil
  end
  if type(v) ~= "table" then
    bad(field .. where, v, "a table", level + 1)
  end
  for k, val in pairs(v) do
    local kind = RESTART_FIELDS[k]
    local name = field .. "." .. tostring(k) .. where
    if kind == nil then
      error(format("unknown field %s in %s%s", show(k), field, where), level + 1)
    elseif kind == "integer" then
      local n = mtype(val) and math.tointeger(val)
      if not n or n < 0 or n > 10000 then
        bad(name, val, "an integer >= 0", level + 1)
      end
    else
      check_seconds(val, name, level + 1)
    end
  end
  return v
end

-- The policy `over` laid over `base`; max_delay must not be below delay.
local function merge_restart(base, over, field, level, where)
  local merged = {}
  for k in pairs(RESTART_FIELDS) do
    merged[k] = over and over[k] ~= nil and over[k] or base[k]
  end
  if merged.max_delay < merged.delay then
    error(format("bad %s.max_delay%s: %s is below delay %s", field, where or "", show(merged.max_delay),
      show(merged.delay)), level + 1)
  end
  return merged
end

local function check_listen(v, field, level)
  if v == nil then
    return nil
  end
  local list = type(v) == "string" and { v } or v
  if type(list) ~= "table" then
    bad(field, v, "an address or a list of addresses", level + 1)
  end
  for i, addr in ipairs(list) do
    if type(addr) ~= "string" then
      bad(field .. "[" .. i .. "]", addr, "an address string", level + 1)
    end
    local ok, why = core.parse_listen(addr)
    if not ok then
      error(format("bad %s: %s: %s", field, show(addr), why), level + 1)
    end
  end
  if #list == 0 then
    bad(field, v, "at least one address", level + 1)
  end
  return list
end

local function check_boolean(v, field, level)
  if v ~= nil and type(v) ~= "boolean" then
    bad(field, v, "true or false", level + 1)
  end
  return v
end

local function check_keys(t, allowed, what, level)
  for k in pairs(t) do
    if not allowed[k] then
      error(format("unknown option %s in %s", show(k), what), level + 1)
    end
  end
end

local function check_function(v, field, level)
  if v ~= nil and type(v) ~= "function" then
    bad(field, v, "a function", level + 1)
  end
end

---------------------------------------------------------------------------
-- The manager
---------------------------------------------------------------------------

local Manager = {}
Manager.__index = Manager

local HOOKS = { on_terminate = true, on_reload = true, on_new_worker = true, on_dead_worker = true }
local LEVELS = { debug = true, info = true, warning = true, warn = true, error = true }
local MANAGER_OPTS = { graceful_shutdown_timeout = true, restart = true, log_level = true }
local ADD_OPTS = {
  workers = true, args = true, name = true, graceful_shutdown_timeout = true, restart = true,
  listen = true, reuseport = true,
}

local the_manager -- the one manager of this process (the seatbelt)

--- Creates the manager. One per process: a second call raises an error.
function M.manager(opts)
  if opts == nil then
    opts = {}
  elseif type(opts) ~= "table" then
    bad("manager options", opts, "a table", 2)
  end
  check_keys(opts, MANAGER_OPTS, "cotylua.manager()", 2)
  local timeout = opts.graceful_shutdown_timeout
  if timeout == nil then
    timeout = 60
  end
  check_seconds(timeout, "graceful_shutdown_timeout", 2)
  check_restart(opts.restart, "restart", 2)
  local restart = merge_restart(core.restart_defaults(), opts.restart, "restart", 2)
  if opts.log_level ~= nil and not LEVELS[opts.log_level] then
    bad("log_level", opts.log_level, '"debug", "info", "warning" or "error"', 2)
  end
  if the_manager then
    error("cotylua.manager: a manager already exists in this process (one per process)", 2)
  end
  core.manager(timeout, restart)
  if opts.log_level then
    core.log_level(opts.log_level, true) -- --log-level and COTYLUA_LOG_LEVEL win
  end
  the_manager = setmetatable({
    graceful_shutdown_timeout = timeout,
    restart = restart,
    services = {},
    hooks = { on_terminate = {}, on_reload = {}, on_new_worker = {}, on_dead_worker = {} },
  }, Manager)
  return the_manager
end

local function service_field(service, key, label, check)
  local v = service[key]
  if v ~= nil then
    local checked = check(v, label .. "." .. key, 3)
    if checked ~= nil then
      return checked
    end
  end
  return v
end

--- Adds a service; returns its id (1, 2, ... in order).
function Manager:add(service, opts)
  if type(service) ~= "table" then
    bad("service", service, "a table", 2)
  end
  if opts == nil then
    opts = {}
  elseif type(opts) ~= "table" then
    bad("add options", opts, "a table", 2)
  end
  check_keys(opts, ADD_OPTS, "manager:add()", 2)
  local id = #self.services + 1
  local name = opts.name
  if name == nil then
    name = service.name
  end
  if name == nil then
    name = "service" .. id
  elseif type(name) ~= "string" or name == "" or name:find("[%c]") then
    bad("service name", name, "a non-empty string without control characters", 2)
  end
  local label = "service " .. show(name)
  for _, fn in ipairs({ "init", "run", "terminate", "reload" }) do
    service_field(service, fn, label, check_function)
  end
  local workers = opts.workers == nil and 1 or check_workers(opts.workers, "workers for " .. label, 2)
  local timeout = opts.graceful_shutdown_timeout
  if timeout == nil then
    timeout = service_field(service, "graceful_shutdown_timeout", label, check_seconds)
  else
    check_seconds(timeout, "graceful_shutdown_timeout for " .. label, 2)
  end
  local restart = check_restart(opts.restart, "restart", 2, " for " .. label)
  if restart then
    restart = merge_restart(self.restart, restart, "restart", 2, " for " .. label)
  else
    restart = service_field(service, "restart", label, check_restart)
    restart = merge_restart(self.restart, restart, label .. ".restart", 2)
  end
  local listen = check_listen(opts.listen, "listen for " .. label, 2)
    or service_field(service, "listen", label, check_listen)
  local reuseport = check_boolean(opts.reuseport, "reuseport for " .. label, 2)
  if reuseport == nil then
    reuseport = service_field(service, "reuseport", label, check_boolean)
  end
  service_field(service, "drain_on_stop", label, check_boolean) -- read by the worker
  for _, addr in ipairs(listen or {}) do
    if reuseport and addr:find("^unix:") then
      error(format("bad listen for %s: %s: reuseport needs a tcp address", label, show(addr)), 2)
    end
  end
  local args = opts.args
  if args ~= nil and type(args) ~= "table" then
    bad("args for " .. label, args, "a table", 2)
  end
  args = args or {}
  -- --check validates the addresses without binding them
  local ok, added = pcall(core.add, name, workers, timeout or -1, restart, service.reload ~= nil,
    not core.check_mode() and listen or nil, reuseport)
  if not ok then
    error(added, 2)
  end
  assert(added == id)
  self.services[id] = {
    service = service,
    name = name,
    workers = workers,
    graceful_shutdown_timeout = timeout or self.graceful_shutdown_timeout,
    args = args,
    nargs = args.n or #args,
    listen = listen,
    reuseport = reuseport,
    restart = restart,
  }
  return id
end

--- Changes the worker count of a service, also while running.
function Manager:reconfigure(id, workers)
  if mtype(id) ~= "integer" or not self.services[id] then
    error(format("reconfigure: no service with id %s (%s)", show(id), type(id)), 2)
  end
  local n = check_workers(workers, "workers for service " .. show(self.services[id].name), 2)
  core.reconfigure(id, n)
  self.services[id].workers = n
end

--- Adds hooks; may be called many times, hooks of a kind run in order.
function Manager:register_hooks(hooks)
  if type(hooks) ~= "table" then
    bad("hooks", hooks, "a table", 2)
  end
  for k, fn in pairs(hooks) do
    if not HOOKS[k] then
      error(format("unknown hook %s (known: on_terminate, on_reload, on_new_worker, on_dead_worker)", show(k)), 2)
    end
    check_function(fn, k, 2)
  end
  for _, k in ipairs({ "on_terminate", "on_reload", "on_new_worker", "on_dead_worker" }) do
    if hooks[k] then
      local list = self.hooks[k]
      list[#list + 1] = hooks[k]
    end
  end
end

-- Runs the hooks of one kind in order; an error is logged and skips the rest.
local function run_hooks(list, kind, ...)
  for i = 1, #list do
    local ok, err = xpcall(list[i], debug.traceback, ...)
    if not ok then
      M.log.error("%s hook #%d failed: %s", kind, i, tostring(err))
      return
    end
  end
end

local function new_instance(self, sid, wid)
  local s = self.services[sid]
  local instance = setmetatable({ worker_id = wid, service_id = sid, name = s.name, sockets = core.sockets() },
    { __index = s.service })
  if s.service.init then
    s.service.init(instance, unpack(s.args, 1, s.nargs))
  end
  run_hooks(self.hooks.on_new_worker, "on_new_worker", sid, wid, instance)
  return instance
end

--- Prints the services of this manager (cotylua --check).
function Manager:describe(out)
  out = out or io.stdout
  local total = 0
  for _, s in ipairs(self.services) do
    total = total + s.workers
  end
  out:write(format("%d service%s, %d worker%s; graceful_shutdown_timeout %gs\n", #self.services,
    #self.services == 1 and "" or "s", total, total == 1 and "" or "s", self.graceful_shutdown_timeout))
  out:write(format("%-4s %-16s %7s %8s  %-22s %s\n", "id", "name", "workers", "timeout",
    "restart", "listen"))
  for id, s in ipairs(self.services) do
    local r = s.restart
    out:write(format("%-4d %-16s %7d %7gs  %-22s %s\n", id, s.name, s.workers, s.graceful_shutdown_timeout,
      format("%d in %gs, %g..%gs", r.burst, r.interval, r.delay, r.max_delay),
      s.listen and table.concat(s.listen, " ") .. (s.reuseport and " (reuseport)" or "") or "-"))
  end
end

--- Starts the workers and supervises them until the manager stops.
-- Returns after a graceful stop; exits the process with status 1 after a
-- fast one (SIGINT, graceful timeout exceeded).
function Manager:run()
  if self.ran then
    error("manager:run() was already called", 2)
  end
  self.ran = true
  core.warn_shared_fds() -- an event loop made while the file loaded
  if core.check_mode() then
    self:describe()
    return
  end
  local hooks = self.hooks
  local status = core.run({
    terminate = function()
      run_hooks(hooks.on_terminate, "on_terminate")
    end,
    reload = function()
      run_hooks(hooks.on_reload, "on_reload")
    end,
    dead = function(sid, wid, code)
      run_hooks(hooks.on_dead_worker, "on_dead_worker", sid, wid, code)
    end,
    worker = function(sid, wid)
      return new_instance(self, sid, wid)
    end,
  })
  if status ~= 0 then
    io.stdout:flush()
    os.exit(status)
  end
end

--- Asks for a graceful stop, as SIGTERM does; a second call does nothing.
function Manager:shutdown() -- luacheck: ignore 212 (a method, like the others)
  core.shutdown()
end

---------------------------------------------------------------------------
-- The cotylua command: what to do with what FILE returned.
---------------------------------------------------------------------------

local function last_line(file)
  local n = 0
  local f = io.open(file, "r")
  if f then
    for _ in f:lines() do
      n = n + 1
    end
    f:close()
  end
  return n
end

-- Called by the cotylua binary once FILE has run; returns the exit status.
function M._host(file, ...)
  local result = ...
  if getmetatable(result) == Manager then
    result:run()
    return 0
  end
  if result ~= nil then
    error(format("%s:%d: the file returned a %s; expected the manager (return manager)",
      file, last_line(file), type(result)), 0)
  end
  if the_manager and the_manager.ran then
    return 0
  end
  error(format("%s:%d: the file returned no manager (end it with: return manager)", file, last_line(file)), 0)
end

-- Set by the binary before FILE runs (--check): manager:run() then only
-- describes the services.
M._check_mode = core.check_mode

return M
