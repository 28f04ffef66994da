local spin = layer "spin" {
  forward = function(x)
    while true do end
  end,
}
return model "x" {
  input = { history = 8, height = 16, width = 16 },
  conv { channels = 3, kernel = 5 },
  spin {},
  dense {},
}
