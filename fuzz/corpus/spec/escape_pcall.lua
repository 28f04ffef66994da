-- pcall would swallow the instruction-limit error and keep a runaway spec alive
while true do pcall(function() while true do end end) end
