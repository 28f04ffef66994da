local leaky = layer "leaky" {
  forward = function(x)
    return leaky_relu(x, 0.1)
  end,
}
return model "x" {
  input = { history = 8, height = 16, width = 16 },
  conv { channels = 3, kernel = 5 },
  leaky {},
  dense {},
}
