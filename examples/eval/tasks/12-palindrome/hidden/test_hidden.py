from lib import is_palindrome

assert is_palindrome('Aa')
assert is_palindrome('A man a plan a canal Panama')
assert not is_palindrome('ab')
