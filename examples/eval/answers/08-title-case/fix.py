def title_case(s):
    return " ".join(w.capitalize() for w in s.split(" "))
