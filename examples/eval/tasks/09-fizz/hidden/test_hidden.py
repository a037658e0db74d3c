from lib import fizz

assert fizz(15) == 'FizzBuzz'
assert fizz(30) == 'FizzBuzz'
assert fizz(5) == 'Buzz'
assert fizz(7) == '7'
