local flat = layer "flat" {
  forward = function(x)
    return reshape(x, { "B", -1 })
  end,
}
return model "x" {
  input = { history = 8, height = 16, width = 16 },
  conv { channels = 3, kernel = 5 },
  flat {},
  dense {},
}
