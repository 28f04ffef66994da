-- through the string metatable: ("").dump is string.dump
local bytes = (""):dump()
