-- examples/echo.lua: a TCP echo service, several workers on one socket.
--
-- The manager binds the address once, before forking, and every worker
-- accepts on that same listening socket (self.sockets[1]); the kernel
-- spreads connections over the workers. While a worker is replaced, new
-- connections wait in the socket's backlog: none is refused.
--
--   cotylua examples/echo.lua                    listens on 127.0.0.1:7000
--   ECHO_LISTEN=tcp://127.0.0.1:7070 ECHO_WORKERS=4 cotylua examples/echo.lua
--   ECHO_REUSEPORT=1 cotylua examples/echo.lua   one SO_REUSEPORT socket per worker
--   systemd-socket-activate -l 127.0.0.1:7000 cotylua examples/echo.lua
--
-- Bind as root, run as a user: started as root, the manager binds the
-- address (port 80 needs root) before it forks; each worker then becomes
-- ECHO_USER (its groups too) before init, and cannot get root back.
--
--   ECHO_LISTEN=tcp://127.0.0.1:80 ECHO_USER=nobody cotylua examples/echo.lua
--
-- Under socket activation the socket systemd passes in (LISTEN_FDS) is
-- taken instead of binding. Each line sent is echoed back; the line
-- "whoami" is answered with the worker's id and pid. Needs Debian's
-- lua-socket.
local cotylua = require("cotylua")
local socket = require("socket")

local Echo = {
  name = "echo",
  listen = os.getenv("ECHO_LISTEN") or "tcp://127.0.0.1:7000",
  reuseport = os.getenv("ECHO_REUSEPORT") == "1",
  user = os.getenv("ECHO_USER"), -- nil: the workers keep the manager's user
  no_new_privs = true,
  graceful_shutdown_timeout = 5,
}

-- A luasocket server object on the inherited listening fd. The manager
-- made the socket non-blocking: a worker waits with cotylua.wait, where
-- terminate and reload are delivered, then accepts; when another worker
-- won the race for the connection, accept returns nil, "timeout" at once.
local function server_on(fd)
  local server = assert(socket.tcp())
  server:close() -- drop the fresh socket; adopt the inherited one
  server:setfd(fd)
  assert(server:listen(511)) -- makes it a server object (it already listens)
  server:settimeout(0)
  return server
end

function Echo:init()
  self.server = server_on(self.sockets[1])
end

-- Serves one client until it hangs up; lines are echoed.
function Echo:serve(client)
  client:settimeout(0)
  local pending = ""
  while true do
    if not cotylua.wait(client:getfd(), "r", 30) then
      break -- idle for 30 s
    end
    local data, err, partial = client:receive(4096)
    data = data or partial
    if err == "closed" and data == "" then
      break
    end
    pending = pending .. data
    for line in pending:gmatch("([^\n]*)\n") do
      if line == "whoami" then
        line = ("worker %d pid %d"):format(self.worker_id, cotylua.getpid())
      end
      client:send(line .. "\n")
    end
    pending = pending:match("[^\n]*$")
  end
  client:close()
end

function Echo:run()
  while true do
    cotylua.wait(self.sockets[1], "r")
    local client = self.server:accept()
    if client then
      self:serve(client)
    end
  end
end

local manager = cotylua.manager({ graceful_shutdown_timeout = 10 })
manager:add(Echo, { workers = tonumber(os.getenv("ECHO_WORKERS")) or 2 })
return manager
