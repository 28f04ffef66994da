return model "x" {
  input = { history = 8, height = 16, width = 16 },
  conv { 3, 5 },
  dense {},
}
