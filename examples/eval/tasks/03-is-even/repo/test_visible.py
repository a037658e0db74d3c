from lib import is_even

assert is_even(4)
assert not is_even(3)
