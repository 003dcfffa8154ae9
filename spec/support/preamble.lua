-- spec/support/preamble.lua - what every spec file would otherwise begin
-- with. .busted loads it (busted's `helper`) before any spec:
--   * the busted process becomes a child subreaper, so that workers whose
--     manager died are reparented to it, where the cleanup finds them;
--   * after each test, H.finish() stops what the test started and removes
--     its directories, and the test fails if anything was left behind.
local busted = require("busted")
local H = require("helpers")

assert(H.proc.set_subreaper(), "cannot become a child subreaper")

busted.after_each(function()
  busted.assert.are.equal(0, H.finish(), "processes were left behind")
end)
