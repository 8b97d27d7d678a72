-- benches/real: the Lua workload. Errors raised and caught at every depth
-- (luaD_throw longjmps out of nested luaV_execute frames), C recursion through
-- a metamethod, the parser's own errors, and plain interpreter work.
local function nest(n)
  if n == 0 then error({ depth = 0 }) end
  local _, e = pcall(nest, n - 1)
  e.depth = e.depth + 1
  error(e)
end
local ok, e = pcall(nest, 120)
print("nest", ok, e.depth)

local chain = setmetatable({}, { __index = function(t, k)
  if k == 0 then return 0 end
  return t[k - 1] + 1
end })
print("chain", chain[150])

local bad = 0
for i = 1, 50 do
  if not load("return 1 + (" .. string.rep("(", i % 7) .. "x") then bad = bad + 1 end
end
print("syntax errors", bad)

local function fib(n) if n < 2 then return n end return fib(n - 1) + fib(n - 2) end
print("fib", fib(18))

local words = {}
for w in string.gmatch(string.rep("lorem ipsum dolor sit amet ", 40), "%a+") do
  words[#words + 1] = w:upper()
end
table.sort(words, function(a, b) return a > b end)
print("words", #words, words[1], words[#words])
print("gsub", (string.gsub("a,b,c,d,e,f", "%a", function(c) return c .. c end)))
