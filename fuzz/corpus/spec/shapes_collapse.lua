-- each conv is legal on its own, but the chain runs out of pixels at the 4th conv
return model "x" {
  input = { history = 8, height = 16, width = 16 },
  conv { channels = 3, kernel = 7 },   -- 10x10
  relu {},
  conv { channels = 3, kernel = 5 },   -- 6x6
  relu {},
  conv { channels = 3, kernel = 5 },   -- 2x2
  relu {},
  conv { channels = 3, kernel = 3 },   -- nothing left
  dense {},
}
