local gate = layer "gate" {
  params = function(x) return { t = { shape = { 1 }, init = 0 } } end,
  forward = function(x, p)
    local y = x - p.t
    return y * gt(y, 0)
  end,
}
return model "x" {
  input = { history = 8, height = 16, width = 16 },
  conv { channels = 3, kernel = 5 },
  gate {},
  dense {},
}
