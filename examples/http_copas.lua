-- examples/http_copas.lua: an HTTP/1.1 server on copas (luasocket
-- coroutines), two workers sharing one listening socket, that loses no
-- request when it is stopped, restarted or resized.
--
--   cotylua examples/http_copas.lua             listens on 127.0.0.1:8080
--   HTTP_LISTEN=tcp://127.0.0.1:8081 HTTP_WORKERS=4 cotylua examples/http_copas.lua
--   curl http://127.0.0.1:8080/               "hello from worker 0"
--   curl 'http://127.0.0.1:8080/slow?ms=2000' answered after 2 s
--   HTTP_RELOAD=1 cotylua examples/http_copas.lua    with a reload (see the end)
--
-- Needs Debian's lua-copas and lua-socket. copas is packaged for Lua 5.1
-- to 5.3 only, but it is pure Lua and runs on 5.4 as it is: the line below
-- adds the directory where Debian keeps it (/usr/share/lua/5.1) to the
-- search path, after 5.4's own (luasocket has a 5.4 build).
--
-- copas waits in socket.select, which luasocket retries when a signal
-- interrupts it: `loop.copas(copas)` makes cotylua's signal fd one more
-- socket that copas watches, so terminate and reload run between two of
-- its steps. Debian 12's copas (1.x) has no timers, so the run loop below
-- steps copas itself and keeps the few timers this server needs. With
-- `drain_on_stop = true`, SIGTERM (and a restart on SIGHUP, and a reconfigure
-- down) stops accepting, finishes the requests in flight, answers the
-- next request of each keep-alive connection with "Connection: close",
-- closes connections that stay idle, and the worker exits when run
-- returns.
package.path = package.path .. ";/usr/share/lua/5.1/?.lua;/usr/share/lua/5.1/?/init.lua"

local cotylua = require("cotylua")
local socket = require("socket")

local Web = {
  name = "http",
  listen = os.getenv("HTTP_LISTEN") or "tcp://127.0.0.1:8080",
  drain_on_stop = true,
  graceful_shutdown_timeout = 10,
}

local IDLE = 1 -- seconds: while draining, a connection idle this long is closed

-- A luasocket server object on the inherited (non-blocking) listening fd.
local function server_on(fd)
  local server = assert(socket.tcp())
  server:close()
  server:setfd(fd)
  assert(server:listen(511))
  return server
end

function Web:init()
  self.copas = require("copas")
  self.conns, self.timers = {}, {}
  self.alarm = assert(socket.udp())
  require("cotylua.loop").copas(self.copas)
  self.server = server_on(self.sockets[1])
  -- timeout 0: accept must not wait when another worker won the race
  self.copas.addserver(self.server, function(skt)
    self:serve(skt)
  end, 0)
end

-- Sleeps in a copas thread: waits for a datagram that run sends when the
-- time has come.
function Web:sleep(seconds)
  local u = assert(socket.udp())
  assert(u:setsockname("127.0.0.1", 0))
  u:settimeout(0)
  local _, port = u:getsockname()
  self.timers[#self.timers + 1] = { at = cotylua.now() + seconds, port = port }
  self.copas.receivefrom(u, 1)
  u:close()
end

-- Reads one request head; returns the path and whether to keep the
-- connection, or nil when the client is gone.
local function read_request(copas, skt)
  local line = copas.receive(skt, "*l")
  if not line then
    return nil
  end
  local keep = true
  repeat
    local h = copas.receive(skt, "*l")
    if not h then
      return nil
    end
    keep = keep and not h:lower():find("^connection:%s*close")
  until h == ""
  return line:match("^%u+ (%S+)") or "/", keep
end

function Web:serve(skt)
  local copas, conn = self.copas, { skt = skt, last = cotylua.now() }
  self.conns[conn] = true
  while self.conns[conn] do
    local path, keep = read_request(copas, skt)
    if not path then
      break
    end
    conn.busy = true
    local ms = tonumber(path:match("^/slow%?ms=(%d+)"))
    if ms then
      self:sleep(ms / 1000)
    end
    keep = keep and not cotylua.stopping()
    local body = ("hello from worker %d\n"):format(self.worker_id)
    copas.send(skt, ("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n%s\r\n%s")
      :format(#body, keep and "" or "Connection: close\r\n", body))
    conn.busy, conn.last = false, cotylua.now()
    if not keep then
      break
    end
  end
  self.conns[conn] = nil
  skt:close()
end

-- Stop accepting: a closed socket is one that select skips.
function Web:terminate()
  self.server:close()
end

-- Sends the datagrams of the timers that are due; returns the seconds
-- until the next one (at most 1).
function Web:fire_timers()
  local now, wait = cotylua.now(), 1
  for i = #self.timers, 1, -1 do
    local t = self.timers[i]
    if t.at <= now then
      self.alarm:sendto("!", "127.0.0.1", t.port)
      table.remove(self.timers, i)
    else
      wait = math.min(wait, t.at - now)
    end
  end
  return wait
end

-- Closes, while draining, the connections that stay idle.
function Web:sweep()
  for conn in pairs(self.conns) do
    if not conn.busy and cotylua.now() - conn.last >= IDLE then
      self.conns[conn] = nil
      conn.skt:close()
    end
  end
end

function Web:run()
  local wait = 1
  while not (cotylua.stopping() and next(self.conns) == nil) do
    self.copas.step(cotylua.stopping() and math.min(wait, 0.1) or wait)
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
