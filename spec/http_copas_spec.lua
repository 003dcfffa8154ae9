-- examples/http_copas.lua under wrk and curl: no request lost through
-- SIGTERM, SIGHUP (reload and restart), SIGKILL and reconfigure down
-- (spec/support/http_load.lua).
require("http_load").describe_example("http_copas.lua", _ENV)
