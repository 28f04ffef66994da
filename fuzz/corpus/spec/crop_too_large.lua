return model "x" {
  input = { history = 8, height = 16, width = 16, crop = 20 },
  conv { channels = 3, kernel = 5 },
  dense {},
}
