local signed = layer "signed" {
  forward = function(x)
    return sign(x) * 2
  end,
}
return model "x" {
  input = { history = 8, height = 16, width = 16 },
  conv { channels = 3, kernel = 5 },
  signed {},
  dense {},
}
