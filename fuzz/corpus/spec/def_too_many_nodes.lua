local deep = layer "deep" {
  forward = function(x)
    local y = x
    for i = 1, 5000 do y = y * 0.5 + i end
    return y
  end,
}
return model "x" {
  input = { history = 8, height = 16, width = 16 },
  conv { channels = 3, kernel = 5 },
  deep {},
  dense {},
}
