local big = layer "big" {
  forward = function(x, p, o, mode)
    local t = full({ 32768, 65536 }, 1)
    return x + reshape(sum(count(t, { 1, 2 }), { 1, 2 }), { 1, 1, 1, 1 })
  end,
}
return model "x" {
  input = { history = 2, height = 4, width = 4 },
  big {},
  dense {},
}
