-- every prelude definition and a layer over most primitives (fuzz seed)
local mix = layer "mix" {
  options = { k = 2 },
  params = function(x, o)
    return { w = { shape = { 3, x.shape[2], 3, 3 }, init = { uniform = 0.1 } },
             g = { shape = { 1, 3, 1, 1 }, init = 1 } }
  end,
  state = function(x) return { m = { shape = { 3 }, init = 0 } } end,
  forward = function(x, p, o, mode)
    local y = conv2d(x, p.w, { pad = 1, stride = 1, dilation = 1 })
    local a = slice(y, 3, 2, 5)
    local b = pad(a, 3, 1, 1)
    local c = concat(b, y, 2)
    local d = slice(c, 2, 1, 3)
    local t = transpose(d, { 1, 2, 4, 3 })
    local e = transpose(t, { 1, 2, 4, 3 })
    local m = amax(e, { 3, 4 })
    local s = sum(e, { 2 }) + mean(e, { 1 })
    local q = log1p(abs(e)) + tanh(e) * sigmoid(e) - max(e, m) / (1 + exp(min(e, 0)))
    local r = q ^ 2 + sqrt(abs(q) + 1) + recip(abs(q) + 1) + stop_gradient(s) * p.g
    local z = where(le(r, 0), -r, log(r + 1))
    if mode == "train" then
      update(p.m, reshape(mean(z, { 1, 3, 4 }), { 3 }) * (1 / count(z, { 1, 3, 4 })))
    end
    return z + expand(reshape(p.m, { 1, 3, 1, 1 }), { 1, 3, 1, 1 })
  end,
}
return model "def_prelude" {
  input = { history = 4, height = 8, width = 8 },
  def.conv { channels = 2, kernel = 3 },
  def.batchnorm { over = "channel" },
  def.noise { std = 0.1 },
  def.relu {},
  mix {},
  def.dropout { p = 0.2 },
  def.batchnorm {},
  def.softplus {},
  def.dense { bias = true },
  exponential { train_off = true },
  train = { loss = "poisson_log", lr = 1e-2, batch = 4, epochs = 1, l1_activity = 0, seed = 3 },
}
