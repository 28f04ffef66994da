local mix = layer "mix" {
  params = function(x) return { w = { shape = { 3, 4, 1, 1 }, init = 0.5 } } end,
  forward = function(x, p)
    return conv2d(x, p.w)
  end,
}
return model "x" {
  input = { history = 8, height = 16, width = 16 },
  conv { channels = 3, kernel = 5 },
  mix {},
  dense {},
}
