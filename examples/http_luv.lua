-- examples/http_luv.lua: an HTTP/1.1 server on libuv (lua-luv), two
-- workers sharing one listening socket, that loses no request when it is
-- stopped, restarted or resized.
--
--   cotylua examples/http_luv.lua               listens on 127.0.0.1:8080
--   HTTP_LISTEN=tcp://127.0.0.1:8081 HTTP_WORKERS=4 cotylua examples/http_luv.lua
--   curl http://127.0.0.1:8080/               "hello from worker 0"
--   curl 'http://127.0.0.1:8080/slow?ms=2000' answered after 2 s
--   HTTP_RELOAD=1 cotylua examples/http_luv.lua    with a reload (see the end)
--
-- Needs Debian's lua-luv (built for Lua 5.4). require("luv") creates
-- libuv's default loop (an epoll fd and more), so it is required in init,
-- in the worker: at the top of this file it would be one loop shared by
-- every worker. libuv retries the system calls that signals interrupt, so
-- terminate and reload reach it through `loop.luv(uv)`, which watches
-- cotylua's signal fd and runs them between two callbacks. With
-- `drain_on_stop = true`, SIGTERM (and a restart on SIGHUP, and a
-- reconfigure down) stops accepting, finishes the requests in flight,
-- answers the next request of each keep-alive connection with
-- "Connection: close", closes connections that stay idle, and the worker
-- exits when uv.run returns.
local cotylua = require("cotylua")

local Web = {
  name = "http",
  listen = os.getenv("HTTP_LISTEN") or "tcp://127.0.0.1:8080",
  drain_on_stop = true,
  graceful_shutdown_timeout = 10,
}

local IDLE_MS = 1000 -- while draining, a connection idle this long is closed

function Web:init()
  local uv = require("luv")
  self.uv = uv
  require("cotylua.loop").luv(uv)
  self.conns = {}
  self.server = uv.new_tcp()
  assert(self.server:open(self.sockets[1]))
  assert(self.server:listen(511, function(err)
    if not err then
      self:accept()
    end
  end))
end

function Web:close(conn)
  self.conns[conn] = nil
  if conn.timer then
    conn.timer:close()
  end
  if not conn.tcp:is_closing() then
    conn.tcp:close()
  end
end

function Web:accept()
  local conn = { tcp = self.uv.new_tcp(), buf = "", busy = false, last = self.uv.now() }
  if not self.server:accept(conn.tcp) then
    conn.tcp:close()
    return
  end
  self.conns[conn] = true
  conn.tcp:read_start(function(err, data)
    if err or not data then
      return self:close(conn)
    end
    conn.buf = conn.buf .. data
    self:next_request(conn)
  end)
end

-- Takes the next complete request off conn.buf (GET only: no body).
function Web:next_request(conn)
  if conn.busy or conn.tcp:is_closing() then
    return
  end
  local head, rest = conn.buf:match("^(.-\r\n)\r\n(.*)$")
  if not head then
    return
  end
  conn.buf, conn.busy = rest, true
  local ms = tonumber(head:match("^%u+ /slow%?ms=(%d+)"))
  local keep = not head:lower():find("\nconnection:%s*close")
  if ms then
    conn.timer = self.uv.new_timer()
    conn.timer:start(ms, 0, function()
      conn.timer:close()
      conn.timer = nil
      self:respond(conn, keep)
    end)
  else
    self:respond(conn, keep)
  end
end

function Web:respond(conn, keep)
  local body = ("hello from worker %d\n"):format(self.worker_id)
  keep = keep and not cotylua.stopping()
  conn.tcp:write(("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n%s\r\n%s")
    :format(#body, keep and "" or "Connection: close\r\n", body))
  conn.busy, conn.last = false, self.uv.now()
  if keep then
    self:next_request(conn)
  else
    conn.tcp:shutdown(function()
      self:close(conn)
    end)
  end
end

-- Stop accepting; close the connections that stay idle (the others close
-- after their next response).
function Web:terminate()
  self.server:close()
  local uv, sweep = self.uv, self.uv.new_timer()
  sweep:start(0, 100, function()
    for conn in pairs(self.conns) do
      if not conn.busy and uv.now() - conn.last >= IDLE_MS then
        self:close(conn)
      end
    end
    if next(self.conns) == nil then
      sweep:close()
    end
  end)
end

-- uv.run returns once no handle is left: after terminate, when the last
-- connection has closed.
function Web:run()
  self.uv.run()
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
