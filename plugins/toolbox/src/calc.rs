//! Arithmetic expressions, because language models are unreliable at
//! arithmetic: numbers, `+ - * / %`, `^` (power, right-associative),
//! parentheses, constants (`pi`, `e`, `tau`) and common functions.

use std::fmt;

/// Why an expression cannot be evaluated. Positions are character offsets.
#[derive(Debug, Clone, PartialEq)]
pub enum CalcError {
    /// Something unexpected at a position.
    Syntax { position: usize, message: String },
    /// A name that is neither a constant nor a function.
    UnknownName(String),
    /// A function called with the wrong number of arguments.
    Arity {
        function: String,
        expected: &'static str,
        got: usize,
    },
    /// The result is infinite or not a number (division by zero, `sqrt(-1)` ...).
    NotFinite,
}

impl fmt::Display for CalcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Syntax { position, message } => write!(f, "at character {position}: {message}"),
            Self::UnknownName(name) => write!(
                f,
                "unknown name `{name}`; constants are pi, e, tau and functions are {}",
                FUNCTIONS.join(", ")
            ),
            Self::Arity {
                function,
                expected,
                got,
            } => {
                write!(f, "{function} takes {expected} argument(s), got {got}")
            }
            Self::NotFinite => write!(
                f,
                "the result is not a finite number (division by zero or a value out of a function's domain)"
            ),
        }
    }
}

const FUNCTIONS: &[&str] = &[
    "sqrt", "cbrt", "abs", "floor", "ceil", "round", "trunc", "exp", "ln", "log10", "log2", "log",
    "sin", "cos", "tan", "asin", "acos", "atan", "atan2", "pow", "hypot", "min", "max",
];

/// Evaluates `expression`.
pub fn evaluate(expression: &str) -> Result<f64, CalcError> {
    let mut parser = Parser {
        chars: expression.chars().collect(),
        pos: 0,
    };
    let value = parser.expression()?;
    parser.skip_spaces();
    if parser.pos < parser.chars.len() {
        return Err(parser.error(format!("unexpected `{}`", parser.chars[parser.pos])));
    }
    if value.is_finite() {
        Ok(value)
    } else {
        Err(CalcError::NotFinite)
    }
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn error(&self, message: impl Into<String>) -> CalcError {
        CalcError::Syntax {
            position: self.pos,
            message: message.into(),
        }
    }

    fn skip_spaces(&mut self) {
        while self.chars.get(self.pos).is_some_and(|c| c.is_whitespace()) {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<char> {
        self.skip_spaces();
        self.chars.get(self.pos).copied()
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// expression = term (("+" | "-") term)*
    fn expression(&mut self) -> Result<f64, CalcError> {
        let mut value = self.term()?;
        loop {
            if self.eat('+') {
                value += self.term()?;
            } else if self.eat('-') {
                value -= self.term()?;
            } else {
                return Ok(value);
            }
        }
    }

    /// term = unary (("*" | "/" | "%") unary)*
    fn term(&mut self) -> Result<f64, CalcError> {
        let mut value = self.unary()?;
        loop {
            if self.eat('*') {
                value *= self.unary()?;
            } else if self.eat('/') {
                value /= self.unary()?;
            } else if self.eat('%') {
                value %= self.unary()?;
            } else {
                return Ok(value);
            }
        }
    }

    /// unary = ("-" | "+") unary | power; so `-2^2` is -4, as in mathematics.
    fn unary(&mut self) -> Result<f64, CalcError> {
        if self.eat('-') {
            return Ok(-self.unary()?);
        }
        if self.eat('+') {
            return self.unary();
        }
        self.power()
    }

    /// power = primary ("^" unary)?, right-associative.
    fn power(&mut self) -> Result<f64, CalcError> {
        let base = self.primary()?;
        if self.eat('^') {
            return Ok(base.powf(self.unary()?));
        }
        Ok(base)
    }

    fn primary(&mut self) -> Result<f64, CalcError> {
        match self.peek() {
            Some('(') => {
                self.pos += 1;
                let value = self.expression()?;
                if !self.eat(')') {
                    return Err(self.error("expected `)`"));
                }
                Ok(value)
            }
            Some(c) if c.is_ascii_digit() || c == '.' => self.number(),
            Some(c) if c.is_alphabetic() => self.name(),
            Some(c) => Err(self.error(format!("unexpected `{c}`"))),
            None => Err(self.error("the expression ends too early")),
        }
    }

    fn number(&mut self) -> Result<f64, CalcError> {
        let start = self.pos;
        let mut text = String::new();
        let digits = |p: &mut Self, text: &mut String| {
            while let Some(&c) = p.chars.get(p.pos) {
                if c.is_ascii_digit() {
                    text.push(c);
                } else if c != '_' {
                    break;
                }
                p.pos += 1;
            }
        };
        digits(self, &mut text);
        if self.chars.get(self.pos) == Some(&'.') {
            text.push('.');
            self.pos += 1;
            digits(self, &mut text);
        }
        if matches!(self.chars.get(self.pos), Some('e' | 'E'))
            && self
                .chars
                .get(self.pos + 1)
                .is_some_and(|c| c.is_ascii_digit() || *c == '-' || *c == '+')
        {
            text.push('e');
            self.pos += 1;
            if let Some(&sign @ ('-' | '+')) = self.chars.get(self.pos) {
                text.push(sign);
                self.pos += 1;
            }
            digits(self, &mut text);
        }
        text.parse().map_err(|_| CalcError::Syntax {
            position: start,
            message: format!("`{text}` is not a number"),
        })
    }

    fn name(&mut self) -> Result<f64, CalcError> {
        let mut name = String::new();
        while let Some(&c) = self.chars.get(self.pos) {
            if c.is_alphanumeric() || c == '_' {
                name.push(c);
                self.pos += 1;
            } else {
                break;
            }
        }
        let name = name.to_lowercase();
        if !self.eat('(') {
            return match name.as_str() {
                "pi" => Ok(std::f64::consts::PI),
                "e" => Ok(std::f64::consts::E),
                "tau" => Ok(std::f64::consts::TAU),
                _ => Err(CalcError::UnknownName(name)),
            };
        }
        let mut args = Vec::new();
        if !self.eat(')') {
            loop {
                args.push(self.expression()?);
                if self.eat(')') {
                    break;
                }
                if !self.eat(',') {
                    return Err(self.error("expected `,` or `)`"));
                }
            }
        }
        call(&name, &args)
    }
}

fn call(name: &str, args: &[f64]) -> Result<f64, CalcError> {
    let arity = |expected: &'static str| CalcError::Arity {
        function: name.to_string(),
        expected,
        got: args.len(),
    };
    let one = |f: fn(f64) -> f64| match args {
        [x] => Ok(f(*x)),
        _ => Err(arity("1")),
    };
    let two = |f: fn(f64, f64) -> f64| match args {
        [x, y] => Ok(f(*x, *y)),
        _ => Err(arity("2")),
    };
    match name {
        "sqrt" => one(f64::sqrt),
        "cbrt" => one(f64::cbrt),
        "abs" => one(f64::abs),
        "floor" => one(f64::floor),
        "ceil" => one(f64::ceil),
        "round" => one(f64::round),
        "trunc" => one(f64::trunc),
        "exp" => one(f64::exp),
        "ln" => one(f64::ln),
        "log10" => one(f64::log10),
        "log2" => one(f64::log2),
        "log" => match args {
            [x] => Ok(x.log10()),
            [x, base] => Ok(x.log(*base)),
            _ => Err(arity("1 or 2")),
        },
        "sin" => one(f64::sin),
        "cos" => one(f64::cos),
        "tan" => one(f64::tan),
        "asin" => one(f64::asin),
        "acos" => one(f64::acos),
        "atan" => one(f64::atan),
        "atan2" => two(f64::atan2),
        "pow" => two(f64::powf),
        "hypot" => two(f64::hypot),
        "min" | "max" if args.is_empty() => Err(arity("1 or more")),
        "min" => Ok(args.iter().copied().fold(f64::INFINITY, f64::min)),
        "max" => Ok(args.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
        _ => Err(CalcError::UnknownName(name.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(s: &str) -> f64 {
        evaluate(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn precedence_and_associativity() {
        assert_eq!(eval("1 + 2 * 3"), 7.0);
        assert_eq!(eval("(1 + 2) * 3"), 9.0);
        assert_eq!(eval("2 ^ 3 ^ 2"), 512.0);
        assert_eq!(eval("-2 ^ 2"), -4.0);
        assert_eq!(eval("2 ^ -1"), 0.5);
        assert_eq!(eval("10 - 4 - 3"), 3.0);
        assert_eq!(eval("100 / 10 / 5"), 2.0);
        assert_eq!(eval("17 % 5"), 2.0);
        assert_eq!(eval("--3"), 3.0);
    }

    #[test]
    fn numbers_constants_and_functions() {
        assert_eq!(eval("1_000_000 * 1.5e-3"), 1500.0);
        assert_eq!(eval(".5 + 2."), 2.5);
        assert!((eval("2 * pi") - std::f64::consts::TAU).abs() < 1e-12);
        assert_eq!(eval("sqrt(16) + abs(-2) + max(1, 7, 3) + min(4)"), 17.0);
        assert_eq!(eval("log(1000)"), 3.0);
        assert_eq!(eval("log(8, 2)"), 3.0);
        assert_eq!(eval("round(2.5) + floor(-1.5)"), 1.0);
        assert_eq!(eval("e"), std::f64::consts::E);
    }

    #[test]
    fn errors_are_specific() {
        assert_eq!(evaluate("1 / 0"), Err(CalcError::NotFinite));
        assert_eq!(evaluate("sqrt(-1)"), Err(CalcError::NotFinite));
        assert!(matches!(evaluate("foo(1)"), Err(CalcError::UnknownName(n)) if n == "foo"));
        assert!(matches!(evaluate("x + 1"), Err(CalcError::UnknownName(_))));
        assert!(matches!(
            evaluate("sqrt(1, 2)"),
            Err(CalcError::Arity { .. })
        ));
        assert!(matches!(evaluate("max()"), Err(CalcError::Arity { .. })));
        assert!(matches!(evaluate("(1 + 2"), Err(CalcError::Syntax { .. })));
        assert!(matches!(evaluate("1 +"), Err(CalcError::Syntax { .. })));
        assert!(matches!(
            evaluate("2 3"),
            Err(CalcError::Syntax { position: 2, .. })
        ));
        assert!(matches!(evaluate(""), Err(CalcError::Syntax { .. })));
    }
}
