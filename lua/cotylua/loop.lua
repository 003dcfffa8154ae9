--- cotylua.loop: terminate and reload delivered by a worker's event loop.
--
-- By default a worker gets terminate and reload wherever its Lua code is
-- (a hook set by the signal handler). Code inside an event loop wants them
-- from the loop instead, between two callbacks, and some loops (libuv,
-- copas) retry the system calls that signals interrupt, so they would not
-- notice them at all. One line in init hands delivery to the loop:
--
--   local loop = require("cotylua.loop")
--   loop.cqueues(cq)          -- a cqueues controller (lua-http's server.cq too)
--   loop.luv(uv)              -- luv's default loop (require("luv"))
--   loop.copas(copas)         -- copas
--   local sig = loop.socket() -- for luasocket's socket.select: readable
--                             -- when a signal is pending; then call
--                             -- cotylua.dispatch()
--
-- Each watches cotylua.signal_fd() (readable while a terminate or reload
-- is pending) and calls cotylua.dispatch(), which runs them. Once the
-- worker is stopping the watcher goes away, so that a loop that runs
-- while it has work returns when the work in flight is done (drain).

local cotylua = require("cotylua")

local M = {}

--- cqueues: a coroutine on controller cq waits for the signal fd.
function M.cqueues(cq)
  local cqueues = require("cqueues")
  local fd = cotylua.signal_fd()
  local pollable = {
    pollfd = function() return fd end,
    events = function() return "r" end,
  }
  cq:wrap(function()
    repeat
      cqueues.poll(pollable)
      cotylua.dispatch()
    until cotylua.stopping()
  end)
  return cq
end

--- luv: a poll handle on the signal fd, in the default loop.
function M.luv(uv)
  local fd = cotylua.signal_fd()
  local poll = uv.new_poll(fd)
  poll:start("r", function()
    cotylua.dispatch()
    if cotylua.stopping() and not poll:is_closing() then
      poll:stop()
      poll:close()
    end
  end)
  return poll
end

--- An object for luasocket's socket.select (and so for copas): its getfd
-- is the signal fd.
function M.socket()
  local fd = cotylua.signal_fd()
  return {
    getfd = function() return fd end,
    dirty = function() return false end,
    settimeout = function() end,
    close = function() fd = -1 end, -- select skips it from then on
  }
end

--- copas: the signal fd is served like a listening socket whose accept
-- runs what is pending.
function M.copas(copas)
  local sig = M.socket()
  sig.accept = function()
    cotylua.dispatch()
    if cotylua.stopping() then
      sig:close()
    end
    return nil
  end
  copas.addserver(sig, function() end)
  return sig
end

return M
