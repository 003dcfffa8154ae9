-- The runnable examples in examples/, run for real with the cotylua
-- binary: every file passes --check, and services.lua, periodic.lua,
-- partition.lua and pipeline.lua do what their header says.
-- (examples/echo.lua is exercised by sockets_spec.lua and echo_stop_spec.lua,
-- examples/http_*.lua by http_*_spec.lua.)
local H = require("helpers")
local proc = H.proc

local EXAMPLES = H.root .. "/examples/"

-- The services each example must list under --check.
local SERVICES = {
  ["services.lua"] = { "heavy", "light" },
  ["echo.lua"] = { "echo" },
  ["periodic.lua"] = { "periodic" },
  ["partition.lua"] = { "partition" },
  ["pipeline.lua"] = { "consumer", "producer" },
  ["http_lua_http.lua"] = { "http" },
  ["http_luv.lua"] = { "http" },
  ["http_copas.lua"] = { "http" },
  ["http_socket.lua"] = { "http" },
}

local lines_of, keys = H.lines_of, H.keys

-- Live children of the manager, by process title ("cotylua: NAME worker(ID)").
local function workers(p)
  local out = {}
  for _, pid in ipairs(H.children(p.pid)) do
    local title = H.cmdline(pid)
    if title then
      out[title:match("^cotylua: (.*)$") or title] = pid
    end
  end
  return out
end

-- Waits until the manager's workers are exactly `titles`; returns their pids.
local function wait_workers(p, titles, timeout)
  table.sort(titles)
  return H.wait_until(function()
    local w = workers(p)
    if table.concat(keys(w), "|") == table.concat(titles, "|") then
      return w
    end
  end, timeout or 5, "workers " .. table.concat(titles, ", "))
end

describe("examples", function()
  local p

  -- SIGTERM: the manager exits 0 and nothing of it is left.
  local function stop()
    H.stop(p)
    assert.are.same({}, H.procs_in(p.dir))
  end

  describe("--check", function()
    local files = {}
    for _, name in ipairs(assert(proc.listdir(EXAMPLES))) do
      if name:match("%.lua$") then
        files[#files + 1] = name
      end
    end
    table.sort(files)

    it("finds every example", function()
      for name in pairs(SERVICES) do
        assert.truthy(proc.realpath(EXAMPLES .. name), name)
      end
    end)

    for _, name in ipairs(files) do
      it("accepts examples/" .. name .. " and lists its services", function()
        p = H.start{ argv = { H.bin, "--check", EXAMPLES .. name } }
        assert.are.same({ code = 0 }, p:wait(10), p:stderr())
        local listed = {}
        for _, line in ipairs(lines_of(p:stdout())) do
          local id, service = line:match("^(%d+)%s+([^%s,]+)%s")
          if id then
            listed[#listed + 1] = service
          end
        end
        assert.are.same(SERVICES[name] or listed, listed)
        assert.is_true(#listed >= 1, "no service listed:\n" .. p:stdout())
        -- --check starts nothing: no worker, and no socket bound
        assert.are.same({}, H.procs_in(p.dir))
      end)
    end
  end)

  it("services.lua: three titled workers; SIGHUP reloads heavy and restarts light", function()
    p = H.start{ file = EXAMPLES .. "services.lua" }
    local w = wait_workers(p, { "heavy worker(0)", "heavy worker(1)", "light worker(0)" })
    for id = 0, 1 do
      H.wait_until(function()
        return p:stderr():find("heavy worker(" .. id .. ")[" .. w["heavy worker(" .. id .. ")"]
          .. "]: hello, I am heavy worker " .. id, 1, true)
      end, 5, "heavy worker " .. id .. " to greet")
    end
    assert.matches("^cotylua: master process %[.*services%.lua%]$", H.cmdline(p.pid))

    assert(p:kill("HUP"))
    for id = 0, 1 do -- reloaded in place: same pid
      local pid = w["heavy worker(" .. id .. ")"]
      H.wait_until(function()
        return p:stderr():find("heavy worker%(" .. id .. "%)%[" .. pid .. "%]: reloading after %d+ units")
      end, 5, "heavy worker " .. id .. " to reload")
    end
    local after = H.wait_until(function()
      local now = workers(p)
      local light = now["light worker(0)"]
      return light and light ~= w["light worker(0)"] and now
    end, 5, "light to be restarted")
    assert.are.equal(w["heavy worker(0)"], after["heavy worker(0)"])
    assert.are.equal(w["heavy worker(1)"], after["heavy worker(1)"])
    assert.is_false(proc.alive(w["light worker(0)"]))

    stop()
    for id = 0, 1 do
      assert.matches("heavy worker%(" .. id .. "%)%[" .. w["heavy worker(" .. id .. ")"]
        .. "%]: stopping after %d+ units", p:stderr())
    end
  end)

  it("periodic.lua: every worker ticks at start + k * interval, however long the job takes", function()
    local dir = H.tmpdir()
    local interval, work = 0.1, 0.04
    p = H.start{ dir = dir, file = EXAMPLES .. "periodic.lua", env = {
      PERIODIC_INTERVAL = interval, PERIODIC_WORK = work,
      PERIODIC_WORKERS = 2, PERIODIC_LOG = dir .. "/ticks" } }
    wait_workers(p, { "periodic worker(0)", "periodic worker(1)" })
    local starts, ticks
    H.wait_until(function()
      starts, ticks = {}, { [0] = {}, [1] = {} }
      for _, line in ipairs(lines_of(H.read(dir .. "/ticks"))) do
        local w, s = line:match("^start (%d) (%S+)$")
        if w then
          starts[tonumber(w)] = tonumber(s)
        end
        local tw, k, due, at = line:match("^tick (%d) (%d+) due=(%S+) at=(%S+)$")
        if tw then
          local list = ticks[tonumber(tw)]
          list[#list + 1] = { k = tonumber(k), due = tonumber(due), at = tonumber(at) }
        end
      end
      return #ticks[0] >= 12 and #ticks[1] >= 12
    end, 10, "12 ticks from each worker")

    for w = 0, 1 do
      local start, list = assert(starts[w]), ticks[w]
      local last_k = 0
      for _, t in ipairs(list) do
        assert.is_true(t.k > last_k, "tick numbers go up")
        last_k = t.k
        -- scheduled against the start, not against the previous tick
        assert.is_true(math.abs(t.due - (start + t.k * interval)) < 1e-4,
          ("worker %d tick %d due %.6f, start %.6f"):format(w, t.k, t.due, start))
        local late = t.at - t.due
        assert.is_true(late > -1e-4, ("worker %d tick %d early by %.4f s"):format(w, t.k, -late))
      end
      -- over all the ticks, the period is the interval, not interval + work
      -- (a sleep(interval) loop would tick every 0.14 s); one late tick on a
      -- busy machine moves this by its lateness / 11 at most
      local first, last = list[1], list[#list]
      local period = (last.at - first.at) / (last.k - first.k)
      assert.is_true(math.abs(period - interval) < 0.02,
        ("worker %d: one tick every %.4f s"):format(w, period))
    end

    local t0 = proc.now()
    stop()
    assert.is_true(proc.now() - t0 < 2, "a stop does not wait for the job")
    assert.matches("periodic worker%(0%)%[%d+%]: stopping after %d+ ticks", p:stderr())
    assert.matches("periodic worker%(1%)%[%d+%]: stopping after %d+ ticks", p:stderr())
  end)

  it("partition.lua: items split by worker_id, and by the new count after SIGHUP", function()
    local dir = H.tmpdir()
    local items = 12
    local count_file = H.write(dir .. "/count", "3\n")
    local log = dir .. "/rounds"
    p = H.start{ dir = dir, file = EXAMPLES .. "partition.lua", env = {
      PARTITION_COUNT_FILE = count_file, PARTITION_ITEMS = items,
      PARTITION_INTERVAL = 0.1, PARTITION_LOG = log } }

    local function rounds(after)
      local out = {}
      for i, line in ipairs(lines_of(H.read(log))) do
        if i > (after or 0) then
          local w, n, pid, list = line:match("^round (%d+)/(%d+) pid=(%d+) items=([%d,]*)$")
          assert(w, "bad line: " .. line)
          local got = {}
          for item in list:gmatch("%d+") do
            got[#got + 1] = tonumber(item)
          end
          out[#out + 1] = { w = tonumber(w), n = tonumber(n), pid = tonumber(pid), items = got }
        end
      end
      return out
    end

    -- Waits until each of the n workers reported a round with count n
    -- after line `after`; checks that they split the items between them.
    local function check_split(n, after)
      local by_worker
      H.wait_until(function()
        by_worker = {}
        local seen = 0
        for _, r in ipairs(rounds(after)) do
          if r.n == n and not by_worker[r.w] then
            by_worker[r.w] = r
            seen = seen + 1
          end
        end
        return seen == n
      end, 10, n .. " workers splitting by " .. n)
      local owner = {}
      for w = 0, n - 1 do
        local r = assert(by_worker[w], "no round from worker " .. w)
        for _, item in ipairs(r.items) do
          assert.are.equal(w, item % n, ("item %d given to worker %d of %d"):format(item, w, n))
          assert.is_nil(owner[item], "item " .. item .. " has two owners")
          owner[item] = w
        end
      end
      for item = 0, items - 1 do
        assert.is_not_nil(owner[item], "item " .. item .. " has no owner")
      end
      return by_worker
    end

    local function titles(n)
      local t = {}
      for w = 0, n - 1 do
        t[#t + 1] = "partition worker(" .. w .. ")"
      end
      return t
    end

    -- After the workers are exactly n: the next rounds all come from them.
    local function only(n)
      local w = wait_workers(p, titles(n))
      local mark = #lines_of(H.read(log))
      local by_worker = check_split(n, mark)
      for _, r in ipairs(rounds(mark)) do
        assert.are.equal(n, r.n, "a round with an old count")
        assert.is_true(r.w < n, "a round from worker " .. r.w .. " of " .. n)
        assert.are.equal(w["partition worker(" .. r.w .. ")"], r.pid)
      end
      return by_worker
    end

    local three = only(3)

    H.write(count_file, "2\n")
    local mark = #lines_of(H.read(log))
    assert(p:kill("HUP"))
    check_split(2, mark)
    local two = only(2)
    assert.is_false(proc.alive(three[2].pid), "worker 2 is gone")
    for w = 0, 1 do -- no reload(): restarted, now splitting by 2
      assert.are_not.equal(three[w].pid, two[w].pid)
    end

    H.write(count_file, "4\n")
    mark = #lines_of(H.read(log))
    assert(p:kill("HUP"))
    check_split(4, mark)
    only(4)

    stop()
  end)

  it("pipeline.lua: messages from every producer reach the consumer over the unix socket", function()
    local dir = H.tmpdir()
    local sock, out = dir .. "/pipe.sock", dir .. "/got"
    p = H.start{ dir = dir, file = EXAMPLES .. "pipeline.lua", env = {
      PIPELINE_SOCKET = sock, PIPELINE_PRODUCERS = 3,
      PIPELINE_INTERVAL = 0.05, PIPELINE_OUT = out } }
    local w = wait_workers(p, { "consumer worker(0)", "producer worker(0)",
      "producer worker(1)", "producer worker(2)" })

    local function received()
      local by = { [0] = {}, [1] = {}, [2] = {} }
      local total = 0
      for _, line in ipairs(lines_of(H.read(out))) do
        local id, seq, pid = line:match("^got producer (%d+) seq (%d+) pid (%d+)$")
        assert(id, "bad line: " .. line)
        local list = assert(by[tonumber(id)], "unknown producer " .. id)
        list[#list + 1] = { seq = tonumber(seq), pid = tonumber(pid) }
        total = total + 1
      end
      return by, total
    end

    H.wait_until(function()
      local by = received()
      return #by[0] >= 5 and #by[1] >= 5 and #by[2] >= 5
    end, 10, "5 messages from each producer")
    local by = received()
    for id = 0, 2 do
      for i, m in ipairs(by[id]) do
        -- from that producer's process, in order, none lost
        assert.are.equal(w["producer worker(" .. id .. ")"], m.pid)
        assert.are.equal(i, m.seq, "producer " .. id .. " message " .. i)
      end
    end
    assert.is_nil(p:stderr():find("lost", 1, true), p:stderr())
    assert.truthy(proc.realpath(sock), "the manager made the socket file")

    stop()
    local _, total = received()
    assert.matches("consumer worker%(0%)%[" .. w["consumer worker(0)"] .. "%]: stopping after "
      .. total .. " messages", p:stderr())
    assert.is_nil(proc.realpath(sock), "the socket file is removed when the manager stops")
  end)
end)
