-- examples/http_socket.lua: an HTTP/1.1 server on plain luasocket (one
-- socket.select loop, no library on top), two workers sharing one
-- listening socket, that loses no request when it is stopped, restarted
-- or resized.
--
--   cotylua examples/http_socket.lua            listens on 127.0.0.1:8080
--   HTTP_LISTEN=tcp://127.0.0.1:8081 HTTP_WORKERS=4 cotylua examples/http_socket.lua
--   curl http://127.0.0.1:8080/               "hello from worker 0"
--   curl 'http://127.0.0.1:8080/slow?ms=2000' answered after 2 s
--   HTTP_RELOAD=1 cotylua examples/http_socket.lua    with a reload (see the end)
--
-- Needs Debian's lua-socket. luasocket's select retries when a signal
-- interrupts it, so the loop watches cotylua's signal fd as one more
-- socket (`loop.socket()`) and calls cotylua.dispatch() when it is
-- readable: terminate and reload run between two turns of the loop. With
-- `drain_on_stop = true`, SIGTERM (and a restart on SIGHUP, and a reconfigure
-- down) stops accepting, finishes the requests in flight, answers the
-- next request of each keep-alive connection with "Connection: close",
-- closes connections that stay idle, and the worker exits when run
-- returns.
local cotylua = require("cotylua")
local socket = require("socket")

local Web = {
  name = "http",
  listen = os.getenv("HTTP_LISTEN") or "tcp://127.0.0.1:8080",
  drain_on_stop = true,
  graceful_shutdown_timeout = 10,
}

local IDLE = 1 -- seconds: while draining, a connection idle this long is closed

local function server_on(fd)
  local server = assert(socket.tcp())
  server:close()
  server:setfd(fd)
  assert(server:listen(511))
  server:settimeout(0)
  return server
end

function Web:init()
  self.server = server_on(self.sockets[1])
  self.signals = require("cotylua.loop").socket()
  self.conns = {} -- client socket -> { buf, busy, last }
  self.timers = {} -- { at, client, keep }
end

function Web:accept()
  while self.server do
    local client = self.server:accept()
    if not client then
      return -- "timeout": nobody waiting, or another worker took it
    end
    client:settimeout(0)
    self.conns[client] = { buf = "", last = cotylua.now() }
  end
end

function Web:close(client)
  self.conns[client] = nil
  client:close()
end

-- Small replies: the socket buffer takes them whole.
function Web:respond(client, keep)
  local conn = self.conns[client]
  local body = ("hello from worker %d\n"):format(self.worker_id)
  keep = keep and not cotylua.stopping()
  client:settimeout(5)
  local ok = client:send(("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n%s\r\n%s")
    :format(#body, keep and "" or "Connection: close\r\n", body))
  client:settimeout(0)
  conn.busy, conn.last = false, cotylua.now()
  if not (ok and keep) then
    return self:close(client)
  end
  self:next_request(client)
end

-- Takes the next complete request off the connection's buffer (GET only).
function Web:next_request(client)
  local conn = self.conns[client]
  local head, rest = conn.buf:match("^(.-\r\n)\r\n(.*)$")
  if conn.busy or not head then
    return
  end
  conn.buf, conn.busy = rest, true
  local keep = not head:lower():find("\nconnection:%s*close")
  local ms = tonumber(head:match("^%u+ /slow%?ms=(%d+)"))
  if ms then
    self.timers[#self.timers + 1] = { at = cotylua.now() + ms / 1000, client = client, keep = keep }
  else
    self:respond(client, keep)
  end
end

function Web:read(client)
  local data, err, partial = client:receive(8192)
  data = data or partial
  if data and data ~= "" then
    local conn = self.conns[client]
    conn.buf = conn.buf .. data
    return self:next_request(client)
  end
  if err == "closed" then
    self:close(client)
  end
end

-- Runs the timers that are due; returns the seconds until the next one.
function Web:fire_timers()
  local now, wait = cotylua.now(), 1
  for i = #self.timers, 1, -1 do
    local t = self.timers[i]
    if t.at <= now then
      table.remove(self.timers, i)
      if self.conns[t.client] then
        self:respond(t.client, t.keep)
      end
    else
      wait = math.min(wait, t.at - now)
    end
  end
  return wait
end

function Web:sweep()
  for client, conn in pairs(self.conns) do
    if not conn.busy and cotylua.now() - conn.last >= IDLE then
      self:close(client)
    end
  end
end

-- Stop accepting; the connections open finish (see run).
function Web:terminate()
  self.server:close()
  self.server = nil
end

function Web:step(timeout)
  local watch = { self.signals, self.server }
  for client in pairs(self.conns) do
    watch[#watch + 1] = client
  end
  local readable = socket.select(watch, nil, timeout)
  for _, s in ipairs(readable) do
    if s == self.signals then
      cotylua.dispatch()
    elseif s == self.server then
      self:accept()
    elseif self.conns[s] then
      self:read(s)
    end
  end
end

function Web:run()
  local wait = 1
  while not (cotylua.stopping() and next(self.conns) == nil) do
    self:step(cotylua.stopping() and math.min(wait, 0.1) or wait)
    wait = self:fire_timers()
    if cotylua.stopping() then
      self:sweep()
    end
  end
end

-- With HTTP_RELOAD=1 the service has a reload: SIGHUP then keeps the
-- workers (reload runs between two turns of the loop). Without it, SIGHUP
-- restarts them, each draining first.
if os.getenv("HTTP_RELOAD") == "1" then
  function Web:reload()
    self.reloads = (self.reloads or 0) + 1
    cotylua.log.info("reloaded (%d)", self.reloads)
  end
end

local manager = cotylua.manager({ graceful_shutdown_timeout = 15 })
manager:add(Web, { workers = tonumber(os.getenv("HTTP_WORKERS")) or 2 })
return manager
