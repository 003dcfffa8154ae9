-- examples/pipeline.lua: producers and a consumer over a unix socket.
--
-- Two services. "consumer" listens on a unix socket (listen = "unix:..."):
-- the manager binds it before forking anything and keeps it open, so the
-- producers can connect from their first second on, even before the
-- consumer runs or while it is being restarted: their connections wait in
-- the socket's backlog. Each of the PIPELINE_PRODUCERS "producer" workers
-- sends a message every PIPELINE_INTERVAL seconds, one connection per
-- message (connect, send a line, close), which keeps the consumer simple:
-- one worker, one connection at a time, and no message of one producer
-- ever mixes with another's.
--
-- The consumer waits with cotylua.wait on integer fds (the listening
-- socket, then the accepted one), where terminate and reload are delivered
-- at once, and writes each message it gets to PIPELINE_OUT (stdout when
-- unset):
--
--   got producer 1 seq 7 pid 4711
--
--   cotylua examples/pipeline.lua
--   PIPELINE_SOCKET=/tmp/p.sock PIPELINE_PRODUCERS=4 PIPELINE_INTERVAL=0.1 \
--     PIPELINE_OUT=/tmp/got cotylua examples/pipeline.lua
--
-- The socket file is removed when the manager stops. Needs Debian's
-- lua-socket (socket.unix).
local cotylua = require("cotylua")
local unix = require("socket.unix")
local log = cotylua.log

local path = os.getenv("PIPELINE_SOCKET") or "/tmp/cotylua-pipeline.sock"
local interval = tonumber(os.getenv("PIPELINE_INTERVAL")) or 1
local outfile = os.getenv("PIPELINE_OUT")

---------------------------------------------------------------------------
-- The consumer: one worker that owns the listening socket.
---------------------------------------------------------------------------

local Consumer = { name = "consumer", listen = "unix:" .. path, graceful_shutdown_timeout = 5 }

function Consumer:init()
  local server = assert(unix.stream())
  server:close() -- drop the fresh socket; adopt the inherited one
  server:setfd(self.sockets[1])
  assert(server:listen(128)) -- makes it a server object (it already listens)
  server:settimeout(0) -- accept only once cotylua.wait said there is a client
  self.server = server
  self.out = outfile and assert(io.open(outfile, "a")) or io.stdout
  self.out:setvbuf("line")
  self.got = 0
end

-- Reads one connection to its end; writes every line in it.
function Consumer:drain(client)
  client:settimeout(0)
  local buf = {}
  while cotylua.wait(client:getfd(), "r", 5) do -- false: a producer hung for 5 s
    local data, err, partial = client:receive(4096)
    buf[#buf + 1] = data or partial
    if err == "closed" then
      break
    end
  end
  client:close()
  for line in table.concat(buf):gmatch("[^\n]+") do
    self.got = self.got + 1
    self.out:write("got ", line, "\n")
  end
end

function Consumer:run()
  while true do
    cotylua.wait(self.sockets[1], "r")
    local client = self.server:accept() -- nil when nobody is there after all
    if client then
      self:drain(client)
    end
  end
end

function Consumer:terminate()
  log.info("stopping after %d messages", self.got)
end

---------------------------------------------------------------------------
-- The producers: each sends a numbered message every `interval` seconds.
---------------------------------------------------------------------------

local Producer = { name = "producer", graceful_shutdown_timeout = 5 }

function Producer:init()
  self.seq = 0
end

function Producer:send(line) -- luacheck: ignore 212 (self)
  local c = assert(unix.stream())
  c:settimeout(5) -- a consumer that is being restarted: the backlog holds us
  local ok, err = c:connect(path)
  if ok then
    ok, err = c:send(line .. "\n")
  end
  c:close()
  return ok, err
end

function Producer:run()
  while true do
    self.seq = self.seq + 1
    local msg = ("producer %d seq %d pid %d"):format(self.worker_id, self.seq, cotylua.getpid())
    local ok, err = self:send(msg)
    if not ok then
      log.warning("message %d lost: %s", self.seq, tostring(err))
    end
    cotylua.sleep(interval)
  end
end

function Producer:terminate()
  log.info("stopping after %d messages", self.seq)
end

local manager = cotylua.manager({ graceful_shutdown_timeout = 10 })
manager:add(Consumer) -- first: services start in the order they were added
manager:add(Producer, { workers = tonumber(os.getenv("PIPELINE_PRODUCERS")) or 3 })
return manager
