-- def_forms.lua — fuzz seed: the prelude's conv forms that compiler/lower.c lowers whole
-- (stacked with dropout between sub-convs and inner channels, tiled, locally connected,
-- gcconv), a stack near miss (sub-kernels off the built-in's plan) and a padded "same" conv
-- inside a defined layer, so the fuzzers start from graphs that reach every matcher.
local odd = layer "odd" {
  params = function(x) return { ["sub0.weight"] = { shape = { 2, x.shape[2], 2, 2 }, init = { uniform = 0.2 } },
    ["sub1.weight"] = { shape = { 2, 2, 3, 3 }, init = { uniform = 0.2 } } } end,
  forward = function(x, p) return conv2d(conv2d(x, p["sub0.weight"]), p["sub1.weight"]) end,
}
local same = layer "same" {
  params = function(x) return { weight = { shape = { 2, x.shape[2], 3, 3 }, init = { uniform = 0.3 } } } end,
  forward = function(x, p) return conv2d(x, p.weight, { pad = 1 }) end,
}
return model "def_forms" {
  input = { history = 4, height = 16, width = 16 },
  def.conv { channels = 3, kernel = 5, stack = 3, stack_dropout = 0.2 }, def.relu {},
  def.conv { channels = 3, kernel = 3, period = 2 }, def.relu {},
  def.conv { channels = 2, kernel = 3, period = 0, bias = false }, odd {}, same {}, def.relu {},
  def.gcconv { kernel = 3, position = "center" }, def.softplus {},
  train = { batch = 8 },
}
