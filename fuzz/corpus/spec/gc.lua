return model "gc" {
  input = { history = 8, height = 16, width = 16 },
  conv { channels = 3, kernel = 5 }, relu {},
  gcconv { kernel = 3, position = "data" }, softplus {},
  train = { lr = 1e-2, batch = 16, epochs = 1, l1_activity = 0, seed = 7, schedule = "plateau" },
}
