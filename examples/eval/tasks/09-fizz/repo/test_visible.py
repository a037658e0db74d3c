from lib import fizz

assert fizz(15) == 'FizzBuzz'
assert fizz(3) == 'Fizz'
