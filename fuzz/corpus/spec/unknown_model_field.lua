return model "x" {
  input = { history = 8, height = 16, width = 16 },
  outputs = 5,
  conv { channels = 3, kernel = 5 },
  dense {},
}
