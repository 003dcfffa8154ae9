--- cotylua: the public Lua face of the service manager.
--
-- The engine (fork, reaping, signals, timers, restart throttle) is the C
-- module cotylua.core; this file owns the rules of what users give it
-- (every check and every message, see src/lcotylua.c for the choice),
-- keeps the service tables and hooks, and builds each worker's service
-- instance. It holds no process state of its own: that lives in C.

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
M.heartbeat = core.heartbeat
M._heartbeat_every = core.heartbeat_every -- for cotylua.loop
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
  local create, resume = coroutine.create, coroutine.resume
  local enter, leave, wrap = core.co_enter, core.co_leave, core.co_wrap
  local function guarded_resume(co, ...)
    if type(co) ~= "thread" then
      error(format("bad argument #1 to 'coroutine.resume' (thread expected, got %s)", type(co)), 2)
    end
    enter(co)
    return leave(resume(co, ...))
  end
  -- luacheck: push ignore 122 (the point is to replace these two)
  coroutine.resume = guarded_resume
  coroutine.wrap = function(f)
    if type(f) ~= "function" then
      error(format("bad argument #1 to 'coroutine.wrap' (function expected, got %s)", type(f)), 2)
    end
    return wrap(create(f)) -- in C: the original's results and errors
  end
  -- luacheck: pop
end

guard_coroutines()

---------------------------------------------------------------------------
-- Validation: the rules are here, stated once. Every error names the
-- user's line (the level), the field, the bad value and its type. What a
-- check needs from C comes from cotylua.core, never restated here: the
-- limits (core.limits), the engine's options (core.options), the listen
-- parser and the log level names.
---------------------------------------------------------------------------

local LIMITS = core.limits

local function show(v)
  if type(v) == "string" then
    return format("%q", v)
  end
  return tostring(v)
end

local function bad(field, v, expected, level)
  error(format("bad %s: expected %s, got %s (%s)", field, expected, show(v), type(v)), level + 1)
end

-- A check is check(v, name, level) -> the value to keep; name(sub) is what
-- to call the field (or its part sub) in messages.

local function check_integer(v, name, level, lo, hi)
  local n = mtype(v) and math.tointeger(v)
  if not n or n < lo or n > hi then
    bad(name(), v, format("an integer from %d to %d", lo, hi), level + 1)
  end
  return n
end

local function check_workers(v, name, level)
  local n = check_integer(v, name, level + 1, 1, LIMITS.workers)
  return n -- not a tail call: the levels count this function
end

-- Any number of seconds from 0 up: a positive one below the loop's
-- millisecond waits as the smallest real delay.
local function check_seconds(v, name, level)
  if mtype(v) == nil or v ~= v or v < 0 or v > LIMITS.seconds then
    bad(name(), v, format("a number of seconds from 0 to %d", LIMITS.seconds), level + 1)
  end
  return v
end

local RESTART_FIELDS = { burst = true, interval = true, delay = true, max_delay = true }

-- Only the fields given; merge_restart() completes it.
local function check_restart(v, name, level)
  if type(v) ~= "table" then
    bad(name(), v, "a table", level + 1)
  end
  for k, val in pairs(v) do
    local sub = function() return name("." .. tostring(k)) end
    if not RESTART_FIELDS[k] then
      error(format("unknown field %s in %s", show(k), name()), level + 1)
    elseif k == "burst" then
      check_integer(val, sub, level + 1, 0, LIMITS.burst)
    else
      check_seconds(val, sub, level + 1)
    end
  end
  return v
end

-- The policy `over` laid over `base`; max_delay must not be below delay.
local function merge_restart(base, over, name, level)
  local merged = {}
  for k in pairs(RESTART_FIELDS) do
    merged[k] = over and over[k] ~= nil and over[k] or base[k]
  end
  if merged.max_delay < merged.delay then
    error(format("bad %s: %s is below delay %s", name(".max_delay"), show(merged.max_delay),
      show(merged.delay)), level + 1)
  end
  return merged
end

local function check_listen(v, name, level)
  local list = type(v) == "string" and { v } or v
  if type(list) ~= "table" then
    bad(name(), v, "an address or a list of addresses", level + 1)
  end
  for i, addr in ipairs(list) do
    if type(addr) ~= "string" then
      bad(name("[" .. i .. "]"), addr, "an address string", level + 1)
    end
    local ok, why = core.parse_listen(addr)
    if not ok then
      error(format("bad %s: %s: %s", name(), show(addr), why), level + 1)
    end
  end
  if #list == 0 then
    bad(name(), v, "at least one address", level + 1)
  end
  return list
end

local function check_boolean(v, name, level)
  if type(v) ~= "boolean" then
    bad(name(), v, "true or false", level + 1)
  end
  return v
end

local function check_function(v, name, level)
  if type(v) ~= "function" then
    bad(name(), v, "a function", level + 1)
  end
  return v
end

local function check_level(v, name, level)
  local ok = type(v) == "string" and core.parse_level(v)
  if not ok then
    bad(name(), v, '"debug", "info", "warning" or "error"', level + 1)
  end
  return v
end

local function check_args(v, name, level)
  if type(v) ~= "table" then
    bad(name(), v, "a table", level + 1)
  end
  return v
end

local function check_name(v, name, level)
  if type(v) ~= "string" or v == "" or v:find("[%c]") then
    bad(name(), v, "a non-empty string without control characters", level + 1)
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

-- The names of a table's keys, sorted: checks run in a fixed order.
local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do
    keys[#keys + 1] = k
  end
  table.sort(keys)
  return keys
end

-- Identities: users and groups must exist here and now (they are looked
-- up again in each new worker); a user or group is kept by its name.

local function check_account(v, name, level, what, lookup)
  if not (type(v) == "string" and v ~= "" or mtype(v) == "integer" and v >= 0) then
    bad(name(), v, format("a %s name or id", what), level + 1)
  end
  local found, why = lookup(v)
  if not found then
    error(format("bad %s: %s %s (%s): %s", name(), what, show(v), type(v), why), level + 1)
  end
  return found.name
end

local function check_user(v, name, level)
  local user = check_account(v, name, level + 1, "user", core.user)
  return user
end

local function check_group(v, name, level)
  local group = check_account(v, name, level + 1, "group", core.group)
  return group
end

-- "user" or "user:group", the owner of the unix sockets a service binds.
local function check_owner(v, name, level)
  if type(v) ~= "string" or not v:find("^[^:]+:?[^:]*$") or v:find(":$") then
    bad(name(), v, '"USER" or "USER:GROUP"', level + 1)
  end
  local user, group = v:match("^([^:]+):?(.*)$")
  user = check_account(user, name, level + 1, "user", core.user)
  if group ~= "" then
    return user .. ":" .. check_account(group, name, level + 1, "group", core.group)
  end
  return user
end

-- Permission bits: an integer, or octal digits in a string ("0640").
local function check_mode(v, name, level)
  local n
  if type(v) == "string" then
    n = v:find("^[0-7]+$") and tonumber(v, 8)
  elseif type(v) == "number" then
    n = math.tointeger(v)
  end
  if not n or n < 0 or n > 4095 then
    bad(name(), v, 'permission bits (octal digits in a string such as "0640", or 0 to 4095)',
      level + 1)
  end
  return n
end

local function check_path(v, name, level)
  if type(v) ~= "string" or v:sub(1, 1) ~= "/" or v:find("%z") then
    bad(name(), v, "an absolute path", level + 1)
  end
  return v
end

local function check_nice(v, name, level)
  local n = check_integer(v, name, level + 1, LIMITS.nice_min, LIMITS.nice_max)
  return n
end

-- { NAME = "value" (or a number) to set, NAME = false to unset }, given to
-- the engine as a sorted list of "NAME=value" and "NAME".
local function check_env(v, name, level)
  if type(v) ~= "table" then
    bad(name(), v, "a table of NAME = value (false to unset)", level + 1)
  end
  for k in pairs(v) do
    if type(k) ~= "string" or not k:find("^[%a_][%w_]*$") then
      bad(name(" key"), k, "a variable name (letters, digits, _)", level + 1)
    end
  end
  local list = {}
  for _, k in ipairs(sorted_keys(v)) do
    local val = v[k]
    if val == false then
      list[#list + 1] = k
    elseif type(val) == "string" and not val:find("%z") or type(val) == "number" then
      list[#list + 1] = k .. "=" .. tostring(val)
    else
      bad(name("." .. k), val, "a string, a number or false (to unset)", level + 1)
    end
  end
  return list
end

local RLIMITS = {}
for _, n in ipairs(core.rlimit_names()) do
  RLIMITS[n] = true
end

local function limit_side(v, name, level)
  if v ~= "unlimited" and not (mtype(v) == "integer" and v >= 0) then
    bad(name(), v, 'an integer >= 0 or "unlimited"', level + 1)
  end
  return v
end

-- soft > hard, "unlimited" above every number; nil (kept as it is): false
local function above(soft, hard)
  if soft == nil or hard == nil or hard == "unlimited" then
    return false
  end
  return soft == "unlimited" or soft > hard
end

-- { nofile = 4096 (soft and hard), core = { soft = 0, hard = "unlimited" }, ... },
-- given to the engine as a sorted list of { name =, soft =, hard = }.
local function check_rlimits(v, name, level)
  if type(v) ~= "table" then
    bad(name(), v, "a table of limits by name", level + 1)
  end
  for k in pairs(v) do
    if not RLIMITS[k] then
      error(format("bad %s: unknown limit %s (%s); known: %s", name(), show(k), type(k),
        table.concat(core.rlimit_names(), ", ")), level + 1)
    end
  end
  local list = {}
  for _, k in ipairs(sorted_keys(v)) do
    local val, sub = v[k], function(more) return name("." .. tostring(k) .. (more or "")) end
    local row = { name = k }
    if type(val) == "table" then
      check_keys(val, { soft = true, hard = true }, sub(), level + 1)
      if next(val) == nil then
        bad(sub(), val, "{ soft = n, hard = n } with at least one of them", level + 1)
      end
      row.soft = val.soft ~= nil and limit_side(val.soft, function() return sub(".soft") end, level + 1) or nil
      row.hard = val.hard ~= nil and limit_side(val.hard, function() return sub(".hard") end, level + 1) or nil
    else
      row.soft = limit_side(val, sub, level + 1)
      row.hard = row.soft
    end
    if above(row.soft, row.hard) then
      error(format("bad %s: soft limit %s is above the hard limit %s", sub(), show(row.soft),
        show(row.hard)), level + 1)
    end
    list[#list + 1] = row
  end
  return list
end

local CHECKS = {
  workers = check_workers, seconds = check_seconds, restart = check_restart, listen = check_listen,
  boolean = check_boolean, level = check_level, args = check_args, name = check_name,
  user = check_user, group = check_group, owner = check_owner, mode = check_mode, path = check_path,
  env = check_env, rlimits = check_rlimits, nice = check_nice,
}

---------------------------------------------------------------------------
-- The options: one row each, { kind = a key of CHECKS, default = v }, with
-- engine = true for those C acts on (they come from core.options() and go
-- to core.add by name). opts_only: the option is read from add()'s options
-- alone, not from the service table.
---------------------------------------------------------------------------

local MANAGER_OPTIONS = {
  graceful_shutdown_timeout = { kind = "seconds", default = 60 },
  restart = { kind = "restart" },
  log_level = { kind = "level" },
  control = { kind = "name" }, -- the control socket's path (--control wins)
  metrics_file = { kind = "name" }, -- metrics for node_exporter's textfile collector
}

local OPTIONS = {
  name = { kind = "name" },
  args = { kind = "args", opts_only = true },
  -- the worker's own business: told to the engine in the worker (new_instance)
  drain_on_stop = { kind = "boolean", default = false },
}
for key, row in pairs(core.options()) do
  OPTIONS[key] = { kind = row.kind, default = row.default, engine = true, opts_only = key == "workers" }
end

-- The table itself, for the specs: a row added to it is a new option.
M._options = OPTIONS

---------------------------------------------------------------------------
-- The manager
---------------------------------------------------------------------------

local Manager = {}
Manager.__index = Manager

local HOOKS = { on_terminate = true, on_reload = true, on_new_worker = true, on_dead_worker = true }

-- on_dead_worker's fourth argument, from the engine's enum coty_death.
local DEATHS = { [0] = "crash", [1] = "stop" }

local the_manager -- for _host: was a manager run by the file itself?

local function plain_name(sub)
  return function(more)
    return sub .. (more or "")
  end
end

--- Creates the manager. One per process: a second call raises an error.
function M.manager(opts)
  if opts == nil then
    opts = {}
  elseif type(opts) ~= "table" then
    bad("manager options", opts, "a table", 2)
  end
  check_keys(opts, MANAGER_OPTIONS, "cotylua.manager()", 2)
  local conf = {}
  for _, key in ipairs(sorted_keys(MANAGER_OPTIONS)) do
    local v = opts[key]
    if v ~= nil then
      conf[key] = CHECKS[MANAGER_OPTIONS[key].kind](v, plain_name(key), 2)
    else
      conf[key] = MANAGER_OPTIONS[key].default
    end
  end
  local restart = merge_restart(core.restart_defaults(), conf.restart, plain_name("restart"), 2)
  local ok, err = pcall(core.manager, conf.graceful_shutdown_timeout, restart)
  if not ok then
    error("cotylua.manager: " .. tostring(err):gsub("^[^:]*:%d+: ", ""), 2)
  end
  if conf.log_level then
    core.log_level(conf.log_level, true) -- --log-level and COTYLUA_LOG_LEVEL win
  end
  if not core.check_mode() then -- before any service binds: one manager per file
    ok, err = pcall(core.control, conf.control, _G.arg and _G.arg[0], conf.metrics_file)
    if not ok then
      error("cotylua.manager: " .. tostring(err):gsub("^[^:]*:%d+: ", ""), 2)
    end
  end
  the_manager = setmetatable({
    graceful_shutdown_timeout = conf.graceful_shutdown_timeout,
    restart = restart,
    services = {},
    hooks = { on_terminate = {}, on_reload = {}, on_new_worker = {}, on_dead_worker = {} },
  }, Manager)
  return the_manager
end

-- The service's name: from the options, the service table, or its id.
local function service_name(service, opts, id, level)
  local name = opts.name
  if name == nil then
    name = service.name
  end
  if name == nil then
    return "service" .. id
  end
  check_name(name, plain_name("service name"), level + 1)
  return name
end

-- Every option of a service, checked: from opts, else the service table.
local function service_options(base_restart, service, opts, label, level)
  local conf = {}
  local in_opts = function(sub) return (sub or "") .. " for " .. label end
  for _, key in ipairs(sorted_keys(OPTIONS)) do
    local row, v, name = OPTIONS[key], opts[key], nil
    if v ~= nil then
      name = function(more) return key .. in_opts(more) end
    elseif not row.opts_only then
      v = service[key]
      name = plain_name(label .. "." .. key)
    end
    if v ~= nil and key ~= "name" then
      conf[key] = CHECKS[row.kind](v, name, level + 1)
    end
    if key == "restart" then
      conf.restart = merge_restart(base_restart, conf.restart, name or plain_name(label .. ".restart"),
        level + 1)
    end
  end
  return conf
end

---------------------------------------------------------------------------
-- Likely typos in a service table. Its other fields are the user's own,
-- so an unknown one is never an error; one that looks like an option (or
-- a method) is worth a warning, at start and under --check.
---------------------------------------------------------------------------

local METHODS = { init = true, run = true, terminate = true, reload = true }

-- Levenshtein distance between two short strings.
local function distance(a, b)
  local prev = {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local cur = { [0] = i }
    for j = 1, #b do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev = cur
  end
  return prev[#b]
end

-- How closely `key` resembles the field `known` (a smaller number is
-- closer), or nil: a small edit away ("wokers", "terminte"), or a name in
-- words whose first word begins the option's ("grace_timeout",
-- "restart_policy", "listen_addr").
local function resemblance(key, known)
  local d = distance(key, known)
  if d <= ((#key >= 6 and #known >= 6) and 2 or 1) then -- "read" is no typo of "reload"
    return d
  end
  local first = key:match("^([^_]+)_")
  if first and #first >= 4 and not METHODS[known] and known ~= "name" and known:sub(1, #first) == first then
    return known == first and 0 or d -- "listen_addr": listen before listen_mode
  end
end

-- The known field that an unknown one most likely meant, or nil.
local function meant(key)
  local best, best_d
  for _, fields in ipairs({ OPTIONS, METHODS }) do
    for _, known in ipairs(sorted_keys(fields)) do
      local d = resemblance(key, known)
      if d and (not best_d or d < best_d) then best, best_d = known, d end
    end
  end
  return best
end

-- Warns, naming the line of the add() call, about the fields of a service
-- table that look like a misspelt option or method, and about options that
-- are read from add()'s options alone.
local function warn_typos(service, label, level)
  local info = debug.getinfo(level + 1, "Sl")
  local where = info and format("%s:%d: ", info.short_src, info.currentline) or ""
  local keys = {}
  for key in pairs(service) do
    if type(key) == "string" and not METHODS[key] then keys[#keys + 1] = key end
  end
  table.sort(keys)
  for _, key in ipairs(keys) do
    local row = OPTIONS[key]
    if row and row.opts_only then
      M.log.warning("%s%s: %s is read from add()'s options, not from the service table",
        where, label, key)
    elseif not row then
      local guess = meant(key)
      if guess then
        M.log.warning("%s%s: unknown field %s, taken as the service's own: did you mean %s?",
          where, label, key, guess)
      end
    end
  end
end

-- listen_owner and listen_mode are for the unix sockets a service binds.
local function check_socket_owner(conf, label, level)
  local unix = false
  for _, addr in ipairs(conf.listen or {}) do
    unix = unix or addr:find("^unix:") ~= nil
  end
  for _, key in ipairs({ "listen_mode", "listen_owner" }) do
    if conf[key] ~= nil and not unix then
      local v = key == "listen_mode" and format('"%04o"', conf[key]) or show(conf[key])
      error(format("bad %s for %s: %s is for unix: addresses and listen has none", key, label, v),
        level + 1)
    end
  end
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
  check_keys(opts, OPTIONS, "manager:add()", 2)
  local id = #self.services + 1
  local name = service_name(service, opts, id, 2)
  local label = "service " .. show(name)
  for _, fn in ipairs({ "init", "run", "terminate", "reload" }) do
    if service[fn] ~= nil then
      check_function(service[fn], plain_name(label .. "." .. fn), 2)
    end
  end
  local conf = service_options(self.restart, service, opts, label, 2)
  warn_typos(service, label, 2)
  conf.name = name
  for _, addr in ipairs(conf.listen or {}) do
    if conf.reuseport and addr:find("^unix:") then
      error(format("bad listen for %s: %s: reuseport needs a tcp address", label, show(addr)), 2)
    end
  end
  check_socket_owner(conf, label, 2)
  local engine = {}
  for key, row in pairs(OPTIONS) do
    if row.engine then
      engine[key] = conf[key]
    end
  end
  if core.check_mode() then
    engine.listen = nil -- --check validates the addresses without binding them
  end
  local ok, added = pcall(core.add, name, service.reload ~= nil, engine)
  if not ok then
    error(added, 2)
  end
  assert(added == id)
  local record = { service = service, name = name, options = conf }
  for key, row in pairs(OPTIONS) do
    record[key] = conf[key]
    if record[key] == nil then
      record[key] = row.default
    end
  end
  record.args = record.args or {}
  record.nargs = record.args.n or #record.args
  if record.graceful_shutdown_timeout < 0 then
    record.graceful_shutdown_timeout = self.graceful_shutdown_timeout
  end
  self.services[id] = record
  return id
end

-- Raises, at the caller's caller, when called in a worker: the manager's
-- state lives in the manager process, and a worker's copy of it is inert.
local function manager_only(what, level)
  if core.in_worker() then
    error(format("%s called in a worker: only the manager process can do that "
      .. "(from the services file or a manager hook)", what), level + 1)
  end
end

--- Changes the worker count of a service, also while running.
function Manager:reconfigure(id, workers)
  manager_only("manager:reconfigure()", 2)
  if mtype(id) ~= "integer" or not self.services[id] then
    error(format("reconfigure: no service with id %s (%s)", show(id), type(id)), 2)
  end
  local n = check_workers(workers, plain_name("workers for service " .. show(self.services[id].name)), 2)
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
    check_function(fn, plain_name(k), 2)
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
  core.drain_on_stop(s.drain_on_stop)
  if s.service.init then
    s.service.init(instance, unpack(s.args, 1, s.nargs))
  end
  run_hooks(self.hooks.on_new_worker, "on_new_worker", sid, wid, instance)
  return instance
end

-- The lines of --check about whom a service's workers run as.
local function describe_identity(s)
  local lines, as = {}, {}
  local user = s.user and core.user(s.user)
  local group = s.group and core.group(s.group)
  if user then
    as[#as + 1] = format("user %s (uid %d)", user.name, user.uid)
  end
  if group or user then
    group = group or core.group(user.gid) or { name = "?", gid = user.gid }
    as[#as + 1] = format("group %s (gid %d)", group.name, group.gid)
  else
    as[#as + 1] = "the manager's user and groups"
  end
  if user then
    as[#as + 1] = format("groups %s", table.concat(core.user(user.name, group.gid).groups, ","))
  elseif group then
    as[#as + 1] = format("groups %d", group.gid)
  end
  as[#as + 1] = s.umask and format("umask %04o", s.umask) or nil
  as[#as + 1] = s.cwd and "cwd " .. s.cwd or nil
  as[#as + 1] = s.nice and format("nice %d", s.nice) or nil
  as[#as + 1] = s.no_new_privs and "no_new_privs" or nil
  lines[1] = "as: " .. table.concat(as, ", ")
  if s.rlimits then
    local l = {}
    for _, r in ipairs(s.rlimits) do
      l[#l + 1] = format("%s %s/%s", r.name, tostring(r.soft or "-"), tostring(r.hard or "-"))
    end
    lines[#lines + 1] = "limits (soft/hard): " .. table.concat(l, ", ")
  end
  if s.env then
    local l = {} -- names only: values may be secrets
    for _, e in ipairs(s.env) do
      l[#l + 1] = e:find("=") and "set " .. e:match("^[^=]*") or "unset " .. e
    end
    lines[#lines + 1] = "env: " .. table.concat(l, ", ")
  end
  if s.listen_owner or s.listen_mode then
    lines[#lines + 1] = format("unix sockets: owner %s, mode %s", s.listen_owner or "the manager",
      s.listen_mode and format("%04o", s.listen_mode) or "from the umask")
  end
  return lines
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
    for _, line in ipairs(describe_identity(s)) do
      out:write("     ", line, "\n")
    end
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
    dead = function(sid, wid, code, why)
      run_hooks(hooks.on_dead_worker, "on_dead_worker", sid, wid, code, DEATHS[why])
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
  manager_only("manager:shutdown()", 2)
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
    if not result.ran then -- a file may also have run it itself: then it is done
      result:run()
    end
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
