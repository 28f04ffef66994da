local scaled = layer "scaled" {
  params = function(x)
    return { gain = { shape = { 1, x.shape[2], 1, 1 } } }
  end,
  forward = function(x, p) return x * p.gain end,
}
return model "x" {
  input = { history = 8, height = 16, width = 16 },
  conv { channels = 3, kernel = 5 },
  scaled {},
  dense {},
}
