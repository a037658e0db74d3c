from lib import title_case

assert title_case('ab') == 'Ab'
