from lib import factorial

assert factorial(3) == 6
assert factorial(5) == 120
assert factorial(0) == 1
