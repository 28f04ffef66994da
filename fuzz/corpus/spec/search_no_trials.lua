return model "x" {
  input = { history = 8, height = 16, width = 16 },
  conv { channels = 3, kernel = 5 },
  dense {},
  search = { random = { lr = { 1e-4, 1e-2 } } },
}
