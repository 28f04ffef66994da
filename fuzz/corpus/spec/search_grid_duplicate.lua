return model "x" {
  input = { history = 8, height = 16, width = 16 },
  conv { channels = 3, kernel = 5 },
  dense {},
  search = { grid = { lr = { 1e-3, 1e-2, 1e-3 } } },
}
