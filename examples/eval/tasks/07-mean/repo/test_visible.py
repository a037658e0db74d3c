from lib import mean

assert mean([2, 4]) == 3
