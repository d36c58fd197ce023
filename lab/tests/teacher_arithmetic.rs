//! Every prediction a teacher note works out (`3 × 4 / 0.3 s = 40`, `300 / (1.5 + 0.25) ≈ 170`)
//! is recomputed from the inputs the note states: `=` must hold to the last digit written,
//! `≈` within 5 %. Units in the expression are read (`1 ms` is 0.001 s, `0.3 s` is 0.3), so
//! a rate written as `1 / 1 ms = 1,000` is checked as one. The labs whose answers rest on a
//! bound carry at least the formulas counted below: a note that loses them fails too.

use std::path::Path;

/// The labs whose notes must give their predictions as formulas, and how many at least.
const FORMULAS: &[(&str, usize)] = &[
    ("01-gateways-and-cache.md", 4),
    ("03-index.md", 3),
    ("05-breaking-point.md", 2),
    ("08-local-cache.md", 2),
    ("09-batch.md", 3),
    ("10-scale-workers.md", 3),
    ("11-scale-microservice.md", 3),
    ("15-why-the-load-test-lied.md", 3),
    ("16-lb-algorithm.md", 6),
];

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Number(f64),
    Op(char),
    Open,
    Close,
}

/// A number as the notes write it (`1,000`, `0.065`), with its unit when one follows
/// (`ms` → seconds ÷ 1000), and the digits after its decimal point.
fn number_at(chars: &[char], mut i: usize) -> Option<(f64, usize, usize, f64)> {
    let start = i;
    let mut text = String::new();
    let mut decimals = None;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_digit() {
            text.push(c);
            if let Some(d) = decimals.as_mut() {
                *d += 1;
            }
        } else if c == ','
            && !text.is_empty()
            && chars.len() >= i + 4
            && chars[i + 1..i + 4].iter().all(|c| c.is_ascii_digit())
            && !chars.get(i + 4).is_some_and(|c| c.is_ascii_digit())
        {
            // A thousands separator: exactly three digits follow.
        } else if c == '.'
            && decimals.is_none()
            && chars.get(i + 1).is_some_and(|c| c.is_ascii_digit())
        {
            text.push('.');
            decimals = Some(0);
        } else {
            break;
        }
        i += 1;
    }
    if text.is_empty() || i == start {
        return None;
    }
    let mut value: f64 = text.parse().ok()?;
    let mut unit = 1.0;
    // A unit: " ms" or " s" (then not a word that goes on: "seconds", "slots").
    let rest: String = chars[i..].iter().take(4).collect();
    for (u, scale) in [(" ms", 0.001), ("ms", 0.001), (" s", 1.0), ("s", 1.0)] {
        if rest.starts_with(u)
            && !chars
                .get(i + u.chars().count())
                .is_some_and(|c| c.is_alphanumeric())
        {
            value *= scale;
            unit = scale;
            i += u.chars().count();
            break;
        }
    }
    Some((value, i, decimals.unwrap_or(0), unit))
}

/// The arithmetic just before `end`: the longest run of numbers, operators and brackets.
fn expression_before(chars: &[char], end: usize) -> (Vec<Token>, usize) {
    // Walk back over the characters an expression may hold, then tokenize forwards.
    let allowed = |c: char| c.is_ascii_digit() || " .,×/÷+−()*ms".contains(c);
    let mut start = end;
    while start > 0 && allowed(chars[start - 1]) {
        start -= 1;
    }
    // Never start inside a word ("runs", "ms" of "items") or a number's tail.
    while start < end && !(chars[start].is_ascii_digit() || chars[start] == '(') {
        start += 1;
    }
    let mut tokens = Vec::new();
    let mut i = start;
    while i < end {
        let c = chars[i];
        match c {
            ' ' => i += 1,
            '(' => {
                tokens.push(Token::Open);
                i += 1;
            }
            ')' => {
                tokens.push(Token::Close);
                i += 1;
            }
            '×' | '*' => {
                tokens.push(Token::Op('*'));
                i += 1;
            }
            '/' | '÷' => {
                tokens.push(Token::Op('/'));
                i += 1;
            }
            '+' => {
                tokens.push(Token::Op('+'));
                i += 1;
            }
            '−' => {
                tokens.push(Token::Op('-'));
                i += 1;
            }
            _ => match number_at(chars, i) {
                Some((v, next, _, _)) if next <= end => {
                    tokens.push(Token::Number(v));
                    i = next;
                }
                // Anything else (a word's letters) ends what came before: start after it.
                _ => {
                    tokens.clear();
                    i += 1;
                }
            },
        }
    }
    // Brackets the expression does not close or open are prose's: "(300 / 1.5 ≈ 200)".
    loop {
        let open = tokens.iter().filter(|t| **t == Token::Open).count();
        let close = tokens.iter().filter(|t| **t == Token::Close).count();
        match tokens.first() {
            Some(Token::Close) | Some(Token::Op(_)) => {
                tokens.remove(0);
            }
            Some(Token::Open) if open > close => {
                tokens.remove(0);
            }
            _ => break,
        }
    }
    (tokens, start)
}

/// Evaluates + − × ÷ with brackets; None when the tokens are not one expression.
fn evaluate(tokens: &[Token]) -> Option<f64> {
    fn sum(t: &[Token], i: &mut usize) -> Option<f64> {
        let mut v = product(t, i)?;
        while let Some(Token::Op(op @ ('+' | '-'))) = t.get(*i) {
            *i += 1;
            let r = product(t, i)?;
            v = if *op == '+' { v + r } else { v - r };
        }
        Some(v)
    }
    fn product(t: &[Token], i: &mut usize) -> Option<f64> {
        let mut v = atom(t, i)?;
        while let Some(Token::Op(op @ ('*' | '/'))) = t.get(*i) {
            *i += 1;
            let r = atom(t, i)?;
            v = if *op == '*' { v * r } else { v / r };
        }
        Some(v)
    }
    fn atom(t: &[Token], i: &mut usize) -> Option<f64> {
        match t.get(*i)? {
            Token::Number(v) => {
                *i += 1;
                Some(*v)
            }
            Token::Open => {
                *i += 1;
                let v = sum(t, i)?;
                (t.get(*i)? == &Token::Close).then(|| *i += 1)?;
                Some(v)
            }
            _ => None,
        }
    }
    let mut i = 0;
    let v = sum(tokens, &mut i)?;
    (i == tokens.len()).then_some(v)
}

/// One worked-out formula of a note: what it says, what it computes to, and whether that
/// holds.
#[derive(Debug)]
struct Formula {
    text: String,
    computed: f64,
    stated: f64,
    holds: bool,
}

fn formulas(text: &str) -> Vec<Formula> {
    // Wrapped lines are one sentence; table cells and code stay apart.
    let flat = text.replace('\n', " ");
    let chars: Vec<char> = flat.chars().collect();
    let mut out = Vec::new();
    for (at, &c) in chars.iter().enumerate() {
        if c != '=' && c != '≈' {
            continue;
        }
        // `NAME=value` settings, `<=`, `==` and `=>` are not arithmetic.
        let prev = at.checked_sub(1).map(|p| chars[p]);
        let next = chars.get(at + 1).copied();
        if c == '=' && (prev.is_some_and(|p| p != ' ') || next.is_some_and(|n| n != ' ')) {
            continue;
        }
        let (tokens, start) = expression_before(&chars, at);
        if !tokens.iter().any(|t| matches!(t, Token::Op(_))) {
            continue;
        }
        let Some(mut computed) = evaluate(&tokens) else {
            continue;
        };
        // `ceil(…)` rounds up what it holds.
        if chars[..start]
            .iter()
            .rev()
            .take(4)
            .eq("liec".chars().collect::<Vec<_>>().iter())
        {
            computed = computed.ceil();
        }
        let mut j = at + 1;
        while chars.get(j) == Some(&' ') {
            j += 1;
        }
        let Some((stated, _, decimals, unit)) = number_at(&chars, j) else {
            continue;
        };
        let holds = if c == '≈' {
            (computed - stated).abs() <= 0.05 * stated.abs().max(1e-12)
        } else {
            // To the last digit written, in the unit written.
            (computed - stated).abs() <= 0.5 * 10f64.powi(-(decimals as i32)) * unit + 1e-9
        };
        let from = at.saturating_sub(40);
        let to = (j + 12).min(chars.len());
        out.push(Formula {
            text: chars[from..to]
                .iter()
                .collect::<String>()
                .trim()
                .to_string(),
            computed,
            stated,
            holds,
        });
    }
    out
}

#[test]
fn the_checker_reads_the_notes_ways_of_writing_and_catches_a_slip() {
    let f =
        formulas("1. 3 × 4 / 0.3 s = 40 listings; 300 / (1.5 + 0.25) ≈ 170 jobs (300 / 1.5 ≈ 200)");
    assert_eq!(f.len(), 3, "{f:?}");
    assert!(f.iter().all(|f| f.holds), "{f:?}");
    assert!((f[1].computed - 171.43).abs() < 0.01);
    // Units: 1 / 1 ms is 1,000 per second.
    let f = formulas("1 / 1 ms = 1,000 jobs per second; *N\\** = 62 × (1.5 + 0.065) ≈ 97 users");
    assert_eq!(f.len(), 2, "{f:?}");
    assert!(f.iter().all(|f| f.holds), "{f:?}");
    // Slips: an '=' off by one in its last digit, a '≈' off by more than 5 %.
    let f = formulas("so 3 × 62 = 185 > 154; and 600 / 1.75 ≈ 500 jobs");
    assert_eq!(f.len(), 2, "{f:?}");
    assert!(f.iter().all(|f| !f.holds), "{f:?}");
    // The autoscaler's rounding up.
    let f = formulas("desired = ceil(1 × 10 / 0.7) = 15 gateways");
    assert_eq!(
        (f.len(), f[0].holds, f[0].computed),
        (1, true, 15.0),
        "{f:?}"
    );
    // Settings and prose are not formulas.
    assert!(formulas("`MAX_IN_FLIGHT=4` and p95 <= 500 ms; a = b").is_empty());
}

#[test]
fn every_formula_of_the_teacher_notes_holds() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../labs/teacher");
    let mut wrong = Vec::new();
    let mut notes = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let found = formulas(&text);
        notes += 1;
        for f in found.iter().filter(|f| !f.holds) {
            wrong.push(format!(
                "{name}: \"{}\" computes to {:.3}, not {}",
                f.text, f.computed, f.stated
            ));
        }
        let answers = &text[text.find("## Answers to the predictions").unwrap_or(0)..];
        let answers = &answers[..answers
            .find("## Answers to the analysis")
            .unwrap_or(answers.len())];
        if let Some((_, least)) = FORMULAS.iter().find(|(n, _)| *n == name) {
            let n = formulas(answers).len();
            assert!(
                n >= *least,
                "{name}: {n} worked-out formulas in its predictions' answers, expected at least {least}"
            );
        }
    }
    assert!(
        notes >= 14,
        "read {notes} teacher notes in {}",
        dir.display()
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
