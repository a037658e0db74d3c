from lib import count_vowels

assert count_vowels('banana') == 3
assert count_vowels('Hello') == 2
assert count_vowels('') == 0
