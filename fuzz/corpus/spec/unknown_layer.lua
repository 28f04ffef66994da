return model "x" {
  input = { history = 8, height = 16, width = 16 },
  conv2d { channels = 3, kernel = 5 },
  dense {},
}
