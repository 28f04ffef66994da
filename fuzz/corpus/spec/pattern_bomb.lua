-- backtracking patterns can run for hours inside one C call; patterns are not available
local s = string.rep("a", 5000)
local r = string.find(s, ".-.-.-.-.-.-b")
