local s = string.rep("x", 1 << 30)
return model "x" { input = {}, dense {} }
