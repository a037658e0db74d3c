from lib import reverse_words

assert reverse_words('hello world') == 'world hello'
