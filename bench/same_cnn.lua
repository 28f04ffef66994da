-- same_cnn.lua — a BN-CNN-sized model whose layers 2 and 3 are a defined "same" conv (zero
-- padding (kernel - 1) / 2): the benchmark of padded convolutions inside defined layers
-- (results/performance.md row 16; bench/ab.sh OLD NEW bench/same_cnn.lua).
local same = layer "same" {
  options = { channels = 8, kernel = 5 },
  params = function(x, o) local c = x.shape[2]
    return { weight = { shape = { o.channels, c, o.kernel, o.kernel }, init = { uniform = 1 / math.sqrt(c * o.kernel * o.kernel) } },
             bias = { shape = { o.channels }, init = 0 } } end,
  forward = function(x, p, o)
    return conv2d(x, p.weight, { pad = (o.kernel - 1) // 2 }) + reshape(p.bias, { 1, o.channels, 1, 1 }) end }
return model "same_cnn" {
  input = { history = 40, height = 50, width = 50 },
  conv { channels = 8, kernel = 15 }, batchnorm { over = "channel" }, relu {},
  same { channels = 8, kernel = 5 }, relu {},
  same { channels = 8, kernel = 5 }, relu {},
  dense { bias = false }, softplus {},
  train = { batch = 128 },
}
