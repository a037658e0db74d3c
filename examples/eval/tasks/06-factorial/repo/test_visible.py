from lib import factorial

assert factorial(3) == 6
