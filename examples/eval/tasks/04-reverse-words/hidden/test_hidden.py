from lib import reverse_words

assert reverse_words('hello world') == 'world hello'
assert reverse_words('a b c') == 'c b a'
