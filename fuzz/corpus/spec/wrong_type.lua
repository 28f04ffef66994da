return model "x" {
  input = { history = 8, height = 16, width = 16 },
  conv { channels = "three", kernel = 5 },
  dense {},
}
