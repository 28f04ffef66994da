local scaled = layer "scaled" {
  options = { gain = 1.0 },
  forward = function(x, p, o) return x * o.gain end,
}
return model "x" {
  input = { history = 8, height = 16, width = 16 },
  conv { channels = 3, kernel = 5 },
  scaled { gian = 2.0 },
  dense {},
}
