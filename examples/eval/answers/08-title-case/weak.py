def title_case(s):
    first = s[:1].upper()
    rest = s[1:].lower()
    return first + rest
