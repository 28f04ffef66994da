local v = {}
for i = 1, 32 do v[i] = i end
return model "x" {
  input = { history = 8, height = 16, width = 16 },
  conv { channels = 3, kernel = 5 },
  dense {},
  search = { grid = { batch = v, epochs = v, sched_patience = v, early_patience = v } },
}
