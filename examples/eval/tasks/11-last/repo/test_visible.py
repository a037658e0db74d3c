from lib import last

assert last([1, 2]) == 2
