-- embed.lua SRC NAME: prints a C file holding SRC as the byte array NAME
-- (and NAME_len), so the cotylua binary carries its Lua module inside.
local src, name = arg[1], arg[2]
local f = assert(io.open(src, "rb"))
local data = f:read("a")
f:close()
local out = { "/* generated from " .. src .. " by tools/embed.lua; do not edit */\n",
  "const char " .. name .. "[] = {" }
for i = 1, #data do
  if (i - 1) % 16 == 0 then
    out[#out + 1] = "\n "
  end
  out[#out + 1] = string.format(" %d,", data:byte(i))
end
out[#out + 1] = "\n 0\n};\nconst unsigned long " .. name .. "_len = " .. #data .. ";\n"
io.write(table.concat(out))
