from lib import mean

assert mean([2, 4]) == 3
try:
    mean([])
except ValueError:
    pass
else:
    raise AssertionError('no ValueError')
