-- a model is not a layer
local inner = model "inner" { input = {}, dense {} }
return model "outer" {
  input = { history = 8, height = 16, width = 16 },
  inner,
}
