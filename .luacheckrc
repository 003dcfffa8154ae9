-- luacheck settings (tools/check.sh runs luacheck on every Lua file).
std = "lua54"
max_line_length = 170
files["spec/"] = { std = "lua54+busted" }
