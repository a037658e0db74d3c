def count_vowels(s):
    return s.count("a")
