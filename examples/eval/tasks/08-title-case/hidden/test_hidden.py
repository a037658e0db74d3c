from lib import title_case

assert title_case('ab') == 'Ab'
assert title_case('ab cd') == 'Ab Cd'
