local f = io.open("/etc/passwd")
return model "x" { input = {}, dense {} }
