-- Every Lua block of README.md runs: each is written to a file and given
-- to `cotylua --check`, which loads it as a services file and validates
-- it (binding nothing, starting nothing). A block that is a fragment on
-- purpose (a few lines of a larger file) says so with an HTML comment
-- `<!-- fragment -->` on the line before its opening fence.
local H = require("helpers")

-- { { line = N, code = "...", fragment = bool }, ... } for each ```lua
-- block, and for each Lua file that a shell block writes with a heredoc
-- (`cat > FILE.lua <<'LUA'` up to `LUA`).
local function lua_blocks(text)
  local blocks, current, ending, previous, n = {}, nil, nil, "", 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    if current then
      if line:match(ending) then
        blocks[#blocks + 1] = current
        current = nil
      else
        current.code = current.code .. line .. "\n"
      end
    elseif line:match("^```lua%s*$") then
      current, ending = { line = n, code = "", fragment = previous:match("^<!%-%- fragment %-%->") ~= nil }, "^```%s*$"
    elseif line:match("%.lua%s*<<%s*'LUA'%s*$") then
      current, ending = { line = n, code = "" }, "^LUA$"
    end
    previous = line
  end
  return blocks
end

describe("README.md", function()
  local readme = H.read(H.root .. "/README.md")
  local blocks = lua_blocks(readme)

  it("shows the Dockerfile as it is", function()
    local shown = readme:match("```dockerfile\n(.-)```")
    local file = H.read(H.root .. "/Dockerfile"):gsub("#[^\n]*\n", ""):gsub("^\n+", "")
    assert.are.equal(file, shown)
  end)

  it("has Lua blocks to check", function()
    assert.is_true(#blocks >= 3, "found " .. #blocks) -- the quickstart, a services file, every function
  end)

  for _, b in ipairs(blocks) do
    if not b.fragment then
      it("block at line " .. b.line .. " passes cotylua --check", function()
        local dir = H.tmpdir()
        H.write(dir .. "/block.lua", b.code)
        local p = H.start{ dir = dir, argv = { H.bin, "--check", "block.lua" } }
        assert.are.same({ code = 0 }, p:wait(20), "README.md:" .. b.line .. ":\n" .. p:stderr())
        assert.matches("%d+ services?, %d+ workers?", p:stdout())
      end)
    end
  end
end)
