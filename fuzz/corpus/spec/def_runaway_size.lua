local big = layer "big" {
  forward = function(x)
    local y = expand(reshape(x, { "B", 3, 12, 12, 1, 1 }), { "B", 3, 12, 12, 4096, 4096 })
    return sum(y, { 5, 6 })
  end,
}
return model "x" {
  input = { history = 8, height = 16, width = 16 },
  conv { channels = 3, kernel = 5 },
  big {},
  dense {},
}
