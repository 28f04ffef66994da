local function depth(n) return 1 + depth(n + 1) end
return depth(0)
