//! The `circuitBreaker` expression language (oxy's predicates), parsed once at
//! build time into an [`Expr`] that is evaluated against the breaker's metrics.
//!
//! ```text
//! expr       := and ( "||" and )*
//! and        := primary ( "&&" primary )*
//! primary    := "(" expr ")" | comparison
//! comparison := operand op operand      (one side a metric, the other a number)
//! op         := "<" | "<=" | ">" | ">=" | "==" | "!="
//! metric     := "NetworkErrorRatio()"
//!             | "ResponseCodeRatio(" int "," int "," int "," int ")"
//!             | "LatencyAtQuantileMS(" number ")"
//!             | "RequestThreshold()"
//! ```
//!
//! `RequestThreshold()` is sluice's addition (not in Traefik/oxy): the number of
//! requests in the rolling window, so an expression can require a minimum
//! sample before it trips (`RequestThreshold() >= 20 && NetworkErrorRatio() > 0.5`).

use std::fmt;

use thiserror::Error;

/// Why an expression cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("expression {expression:?}, at offset {at}: {message}")]
pub struct ExprError {
    /// The expression as written.
    pub expression: String,
    /// The byte offset of the problem.
    pub at: usize,
    /// What is wrong.
    pub message: String,
}

/// What an expression reads; the breaker implements it over its rolling window.
pub trait Metrics {
    /// Requests that got 502 or 504, over all requests (0 without requests).
    fn network_error_ratio(&self) -> f64;
    /// Responses with a status in `[from, to)` over those in `[div_from, div_to)`
    /// (0 when the divisor counts nothing).
    fn response_code_ratio(&self, from: i64, to: i64, div_from: i64, div_to: i64) -> f64;
    /// The latency at percentile `quantile` (0–100), in whole milliseconds.
    fn latency_at_quantile_ms(&self, quantile: f64) -> i64;
    /// How many requests the window holds.
    fn request_count(&self) -> u64;
}

/// A value an expression reads.
#[derive(Debug, Clone, PartialEq)]
pub enum Metric {
    /// `NetworkErrorRatio()`.
    NetworkErrorRatio,
    /// `ResponseCodeRatio(from, to, dividedFrom, dividedTo)`.
    ResponseCodeRatio(i64, i64, i64, i64),
    /// `LatencyAtQuantileMS(q)`.
    LatencyAtQuantileMs(f64),
    /// `RequestThreshold()`: the number of requests in the window.
    RequestThreshold,
}

impl Metric {
    fn read(&self, m: &dyn Metrics) -> f64 {
        match *self {
            Self::NetworkErrorRatio => m.network_error_ratio(),
            Self::ResponseCodeRatio(a, b, c, d) => m.response_code_ratio(a, b, c, d),
            // Whole milliseconds, as oxy compares them.
            Self::LatencyAtQuantileMs(q) => m.latency_at_quantile_ms(q) as f64,
            Self::RequestThreshold => m.request_count() as f64,
        }
    }
}

/// A comparison operator, always read as `metric OP number`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

impl Op {
    fn apply(self, left: f64, right: f64) -> bool {
        match self {
            Self::Lt => left < right,
            Self::Le => left <= right,
            Self::Gt => left > right,
            Self::Ge => left >= right,
            Self::Eq => left == right,
            Self::Ne => left != right,
        }
    }

    /// The operator with its sides swapped (`1 < x` is `x > 1`).
    fn flipped(self) -> Self {
        match self {
            Self::Lt => Self::Gt,
            Self::Le => Self::Ge,
            Self::Gt => Self::Lt,
            Self::Ge => Self::Le,
            Self::Eq | Self::Ne => self,
        }
    }
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// True when any is true (evaluated left to right, stopping early).
    Or(Vec<Expr>),
    /// True when all are true (evaluated left to right, stopping early).
    And(Vec<Expr>),
    /// `metric op value`.
    Compare(Metric, Op, f64),
}

impl Expr {
    /// Parses `text`.
    pub fn parse(text: &str) -> Result<Self, ExprError> {
        let tokens = lex(text)?;
        let mut parser = Parser {
            text,
            tokens,
            pos: 0,
        };
        let expr = parser.or()?;
        match parser.peek() {
            None => Ok(expr),
            Some((at, token)) => Err(parser.error(at, format!("unexpected {token}"))),
        }
    }

    /// Evaluates the expression over `metrics`.
    pub fn eval(&self, metrics: &dyn Metrics) -> bool {
        match self {
            Self::Or(all) => all.iter().any(|e| e.eval(metrics)),
            Self::And(all) => all.iter().all(|e| e.eval(metrics)),
            Self::Compare(metric, op, value) => op.apply(metric.read(metrics), *value),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Number(f64, bool),
    LParen,
    RParen,
    Comma,
    And,
    Or,
    Op(Op),
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ident(name) => write!(f, "{name:?}"),
            Self::Number(n, _) => write!(f, "number {n}"),
            Self::LParen => f.write_str("\"(\""),
            Self::RParen => f.write_str("\")\""),
            Self::Comma => f.write_str("\",\""),
            Self::And => f.write_str("\"&&\""),
            Self::Or => f.write_str("\"||\""),
            Self::Op(op) => write!(f, "operator {op:?}"),
        }
    }
}

fn lex(text: &str) -> Result<Vec<(usize, Token)>, ExprError> {
    let bytes = text.as_bytes();
    let error = |at: usize, message: String| ExprError {
        expression: text.to_owned(),
        at,
        message,
    };
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let start = i;
        let two = bytes.get(i..i + 2);
        let token = match b {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'(' => Token::LParen,
            b')' => Token::RParen,
            b',' => Token::Comma,
            _ if two == Some(b"&&") => Token::And,
            _ if two == Some(b"||") => Token::Or,
            _ if two == Some(b"<=") => Token::Op(Op::Le),
            _ if two == Some(b">=") => Token::Op(Op::Ge),
            _ if two == Some(b"==") => Token::Op(Op::Eq),
            _ if two == Some(b"!=") => Token::Op(Op::Ne),
            b'<' => Token::Op(Op::Lt),
            b'>' => Token::Op(Op::Gt),
            b'0'..=b'9' | b'.' => {
                while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
                    i += 1;
                }
                let literal = &text[start..i];
                let value = literal
                    .parse::<f64>()
                    .map_err(|_| error(start, format!("bad number {literal:?}")))?;
                tokens.push((start, Token::Number(value, !literal.contains('.'))));
                continue;
            }
            b if b.is_ascii_alphabetic() || b == b'_' => {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                tokens.push((start, Token::Ident(text[start..i].to_owned())));
                continue;
            }
            _ => {
                let c = text[start..].chars().next().unwrap_or('?');
                return Err(error(start, format!("unexpected character {c:?}")));
            }
        };
        i += match token {
            Token::And | Token::Or => 2,
            Token::Op(Op::Le | Op::Ge | Op::Eq | Op::Ne) => 2,
            _ => 1,
        };
        tokens.push((start, token));
    }
    Ok(tokens)
}

struct Parser<'t> {
    text: &'t str,
    tokens: Vec<(usize, Token)>,
    pos: usize,
}

/// A side of a comparison.
enum Operand {
    Metric(Metric),
    Number(f64),
}

impl Parser<'_> {
    fn error(&self, at: usize, message: String) -> ExprError {
        ExprError {
            expression: self.text.to_owned(),
            at,
            message,
        }
    }

    fn peek(&self) -> Option<(usize, &Token)> {
        self.tokens.get(self.pos).map(|(at, t)| (*at, t))
    }

    fn next(&mut self, expected: &str) -> Result<(usize, Token), ExprError> {
        match self.tokens.get(self.pos) {
            Some((at, token)) => {
                self.pos += 1;
                Ok((*at, token.clone()))
            }
            None => Err(self.error(
                self.text.len(),
                format!("expected {expected}, found the end"),
            )),
        }
    }

    fn expect(&mut self, want: &Token, expected: &str) -> Result<(), ExprError> {
        let (at, token) = self.next(expected)?;
        if &token == want {
            Ok(())
        } else {
            Err(self.error(at, format!("expected {expected}, found {token}")))
        }
    }

    fn or(&mut self) -> Result<Expr, ExprError> {
        let mut all = vec![self.and()?];
        while matches!(self.peek(), Some((_, Token::Or))) {
            self.pos += 1;
            all.push(self.and()?);
        }
        Ok(if all.len() == 1 {
            all.remove(0)
        } else {
            Expr::Or(all)
        })
    }

    fn and(&mut self) -> Result<Expr, ExprError> {
        let mut all = vec![self.primary()?];
        while matches!(self.peek(), Some((_, Token::And))) {
            self.pos += 1;
            all.push(self.primary()?);
        }
        Ok(if all.len() == 1 {
            all.remove(0)
        } else {
            Expr::And(all)
        })
    }

    fn primary(&mut self) -> Result<Expr, ExprError> {
        if matches!(self.peek(), Some((_, Token::LParen))) {
            self.pos += 1;
            let inner = self.or()?;
            self.expect(&Token::RParen, "\")\"")?;
            return Ok(inner);
        }
        let (left_at, left) = self.operand()?;
        let (op_at, op) = self.next("a comparison operator")?;
        let Token::Op(op) = op else {
            return Err(self.error(op_at, format!("expected a comparison operator, found {op}")));
        };
        let (right_at, right) = self.operand()?;
        match (left, right) {
            (Operand::Metric(m), Operand::Number(n)) => Ok(Expr::Compare(m, op, n)),
            (Operand::Number(n), Operand::Metric(m)) => Ok(Expr::Compare(m, op.flipped(), n)),
            (Operand::Number(_), Operand::Number(_)) => Err(self.error(
                left_at,
                "a comparison needs a metric function on one side".to_owned(),
            )),
            (Operand::Metric(_), Operand::Metric(_)) => Err(self.error(
                right_at,
                "a metric can only be compared with a number".to_owned(),
            )),
        }
    }

    fn operand(&mut self) -> Result<(usize, Operand), ExprError> {
        let (at, token) = self.next("a metric function or a number")?;
        match token {
            Token::Number(n, _) => Ok((at, Operand::Number(n))),
            Token::Ident(name) => {
                self.expect(&Token::LParen, "\"(\" after a function name")?;
                let args = self.arguments()?;
                let metric = self.metric(at, &name, &args)?;
                Ok((at, Operand::Metric(metric)))
            }
            other => Err(self.error(
                at,
                format!("expected a metric function or a number, found {other}"),
            )),
        }
    }

    /// The arguments after `(`, through `)`: numbers, with whether each is an integer.
    fn arguments(&mut self) -> Result<Vec<(f64, bool)>, ExprError> {
        let mut args = Vec::new();
        if matches!(self.peek(), Some((_, Token::RParen))) {
            self.pos += 1;
            return Ok(args);
        }
        loop {
            let (at, token) = self.next("a number")?;
            let Token::Number(n, integer) = token else {
                return Err(self.error(at, format!("expected a number, found {token}")));
            };
            args.push((n, integer));
            let (at, token) = self.next("\",\" or \")\"")?;
            match token {
                Token::Comma => continue,
                Token::RParen => return Ok(args),
                other => {
                    return Err(self.error(at, format!("expected \",\" or \")\", found {other}")))
                }
            }
        }
    }

    fn metric(&self, at: usize, name: &str, args: &[(f64, bool)]) -> Result<Metric, ExprError> {
        let arity = |n: usize| {
            if args.len() == n {
                Ok(())
            } else {
                Err(self.error(
                    at,
                    format!("{name} takes {n} argument(s), got {}", args.len()),
                ))
            }
        };
        match name {
            "NetworkErrorRatio" => {
                arity(0)?;
                Ok(Metric::NetworkErrorRatio)
            }
            "RequestThreshold" => {
                arity(0)?;
                Ok(Metric::RequestThreshold)
            }
            "ResponseCodeRatio" => {
                arity(4)?;
                let mut ints = [0i64; 4];
                for (slot, &(value, integer)) in ints.iter_mut().zip(args) {
                    if !integer {
                        return Err(self.error(
                            at,
                            format!("ResponseCodeRatio takes integer status codes, got {value}"),
                        ));
                    }
                    *slot = value as i64;
                }
                Ok(Metric::ResponseCodeRatio(ints[0], ints[1], ints[2], ints[3]))
            }
            "LatencyAtQuantileMS" => {
                arity(1)?;
                let q = args[0].0;
                if !(0.0..=100.0).contains(&q) {
                    return Err(self.error(
                        at,
                        format!("LatencyAtQuantileMS takes a percentile from 0 to 100, got {q}"),
                    ));
                }
                Ok(Metric::LatencyAtQuantileMs(q))
            }
            other => Err(self.error(
                at,
                format!(
                    "unknown function {other:?} (known: NetworkErrorRatio, ResponseCodeRatio, LatencyAtQuantileMS, RequestThreshold)"
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy)]
    struct Fixed {
        network: f64,
        codes: f64,
        latency: i64,
        requests: u64,
    }

    impl Metrics for Fixed {
        fn network_error_ratio(&self) -> f64 {
            self.network
        }
        fn response_code_ratio(&self, from: i64, to: i64, df: i64, dt: i64) -> f64 {
            assert_eq!((from, to, df, dt), (500, 600, 0, 600));
            self.codes
        }
        fn latency_at_quantile_ms(&self, q: f64) -> i64 {
            assert_eq!(q, 50.0);
            self.latency
        }
        fn request_count(&self) -> u64 {
            self.requests
        }
    }

    #[test]
    fn request_threshold_gates_a_ratio() {
        let e = Expr::parse("RequestThreshold() >= 20 && NetworkErrorRatio() > 0.5").unwrap();
        let few = Fixed {
            network: 0.9,
            codes: 0.0,
            latency: 0,
            requests: 5,
        };
        let many = Fixed {
            requests: 40,
            ..few
        };
        assert!(!e.eval(&few));
        assert!(e.eval(&many));
        assert!(Expr::parse("RequestThreshold(3) > 1").is_err());
    }

    #[test]
    fn traefik_examples_parse() {
        assert_eq!(
            Expr::parse("NetworkErrorRatio() > 0.5").unwrap(),
            Expr::Compare(Metric::NetworkErrorRatio, Op::Gt, 0.5)
        );
        assert_eq!(
            Expr::parse("LatencyAtQuantileMS(50.0) > 100").unwrap(),
            Expr::Compare(Metric::LatencyAtQuantileMs(50.0), Op::Gt, 100.0)
        );
        assert_eq!(
            Expr::parse("ResponseCodeRatio(500, 600, 0, 600) > 0.25").unwrap(),
            Expr::Compare(Metric::ResponseCodeRatio(500, 600, 0, 600), Op::Gt, 0.25)
        );
        let both =
            Expr::parse("ResponseCodeRatio(500, 600, 0, 600) > 0.30 || NetworkErrorRatio() > 0.10")
                .unwrap();
        assert!(matches!(both, Expr::Or(ref v) if v.len() == 2));
    }

    #[test]
    fn precedence_and_parentheses() {
        // && binds tighter than ||.
        let e = Expr::parse(
            "NetworkErrorRatio() > 0.5 || NetworkErrorRatio() < 0.1 && LatencyAtQuantileMS(50) >= 10",
        )
        .unwrap();
        let Expr::Or(parts) = e else { panic!("or") };
        assert!(matches!(parts[1], Expr::And(_)));
        let e = Expr::parse(
            "(NetworkErrorRatio() > 0.5 || NetworkErrorRatio() < 0.1) && LatencyAtQuantileMS(50) >= 10",
        )
        .unwrap();
        let Expr::And(parts) = e else { panic!("and") };
        assert!(matches!(parts[0], Expr::Or(_)));
        // A number on the left flips the operator.
        assert_eq!(
            Expr::parse("0.5 < NetworkErrorRatio()").unwrap(),
            Expr::Compare(Metric::NetworkErrorRatio, Op::Gt, 0.5)
        );
    }

    #[test]
    fn evaluation() {
        let m = Fixed {
            network: 0.6,
            codes: 0.2,
            latency: 120,
            requests: 10,
        };
        let t = |text: &str| Expr::parse(text).unwrap().eval(&m);
        assert!(t("NetworkErrorRatio() > 0.5"));
        assert!(!t("NetworkErrorRatio() <= 0.5"));
        assert!(t("LatencyAtQuantileMS(50) == 120"));
        assert!(t("LatencyAtQuantileMS(50) != 119"));
        assert!(!t("ResponseCodeRatio(500, 600, 0, 600) >= 0.25"));
        assert!(t(
            "ResponseCodeRatio(500, 600, 0, 600) < 0.25 && NetworkErrorRatio() > 0.5"
        ));
        assert!(t(
            "ResponseCodeRatio(500, 600, 0, 600) > 0.25 || LatencyAtQuantileMS(50) > 100"
        ));
        assert!(!t("(ResponseCodeRatio(500, 600, 0, 600) > 0.25 || LatencyAtQuantileMS(50) > 200) && NetworkErrorRatio() > 0"));
    }

    #[test]
    fn errors_say_where_and_why() {
        let cases = [
            ("", "found the end"),
            ("NetworkErrorRatio()", "comparison operator"),
            ("NetworkErrorRatio() > ", "found the end"),
            ("NetworkErrorRatio > 0.5", "\"(\" after a function name"),
            ("Foo() > 1", "unknown function \"Foo\""),
            ("NetworkErrorRatio(1) > 1", "takes 0 argument"),
            ("ResponseCodeRatio(500, 600) > 1", "takes 4 argument"),
            (
                "ResponseCodeRatio(500.5, 600, 0, 600) > 1",
                "integer status codes",
            ),
            ("LatencyAtQuantileMS(150) > 1", "percentile"),
            ("1 > 2", "metric function on one side"),
            (
                "NetworkErrorRatio() > NetworkErrorRatio()",
                "compared with a number",
            ),
            ("(NetworkErrorRatio() > 1", "\")\""),
            ("NetworkErrorRatio() > 1 &", "unexpected character '&'"),
            ("NetworkErrorRatio() > 1 )", "unexpected \")\""),
            ("NetworkErrorRatio() = 1", "unexpected character '='"),
            ("NetworkErrorRatio() > 1..2", "bad number"),
        ];
        for (text, expected) in cases {
            let err = Expr::parse(text).unwrap_err();
            assert!(err.to_string().contains(expected), "{text:?}: {err}");
        }
        let err = Expr::parse("NetworkErrorRatio() > 0.5 && Nope() > 1").unwrap_err();
        assert_eq!(err.at, 29);
    }
}
