-- tools/funclen.lua FILE... - the lengths of the C functions in FILEs, in
-- lines from the line that opens the body's brace to the closing brace:
-- prints the count, the median, the 90th percentile and the longest.
-- A function body is a "{" alone at the start of a line closed by a "}"
-- alone at the start of a line (the style of src/).
local lens, longest = {}, nil
for _, file in ipairs(arg) do
  local start, name, prev, n = nil, nil, nil, 0
  for line in io.lines(file) do
    n = n + 1
    if line == "{" and prev and prev:find("%)%s*$") then
      start, name = n, prev
    elseif line == "}" and start then
      local len = n - start + 1
      lens[#lens + 1] = len
      if not longest or len > longest.len then
        longest = { len = len, where = file .. ":" .. start, name = name }
      end
      start = nil
    end
    if line:find("%S") then prev = line end
  end
end
table.sort(lens)
local function pct(p) return lens[math.max(1, math.ceil(p * #lens))] end
print(string.format("%d functions; median %d, 90th percentile %d, longest %d (%s %s)",
  #lens, pct(0.5), pct(0.9), longest.len, longest.where, longest.name))
