-- rep of an empty string a quadrillion times: must fail (or finish) at once, not spin in C
local s = string.rep("", 1e15)
local t = string.rep("ab", 1e15)
