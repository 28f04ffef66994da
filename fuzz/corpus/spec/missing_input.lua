return model "x" {
  conv { channels = 3, kernel = 5 },
  dense {},
}
