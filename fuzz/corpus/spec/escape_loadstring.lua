local f = loadstring("return 1")
return model "x" { input = {}, dense {} }
