def last(xs):
    if not xs:
        return None
    return xs[-1]
