local track = layer "track" {
  state = function(x) return { last = { shape = { 1 }, init = 0 } } end,
  forward = function(x, p, o, mode)
    update(p.last, mean(x, { 1, 2, 3, 4 }))
    return x
  end,
}
return model "x" {
  input = { history = 8, height = 16, width = 16 },
  conv { channels = 3, kernel = 5 },
  track {},
  dense {},
}
