from lib import safe_div

assert safe_div(1, 0) is None
