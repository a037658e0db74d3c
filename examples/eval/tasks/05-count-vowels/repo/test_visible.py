from lib import count_vowels

assert count_vowels('banana') == 3
