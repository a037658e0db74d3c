from lib import is_palindrome

assert is_palindrome('Aa')
