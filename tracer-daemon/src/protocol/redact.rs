//! Redaction of what spans keep of requests: SQL literals, URL query values; and the first
//! keyword of a SQL statement.

use super::{MAX_TAG_LEN, truncate};

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// SQL with string, number and hex/bit literals replaced by `?`, and `IN (?, ?, …)` lists
/// collapsed to `IN (?)`. Comments and identifiers are kept. Bounded to `MAX_TAG_LEN`.
pub fn redact_sql(sql: &str) -> String {
    let b = sql.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len().min(MAX_TAG_LEN));
    let mut i = 0;
    while i < b.len() && out.len() < MAX_TAG_LEN {
        let c = b[i];
        let prev_ident = i > 0 && is_ident(b[i - 1]);
        match c {
            b'\'' | b'"' => {
                i = skip_quoted(b, i, c);
                out.push(b'?');
            }
            b'`' => {
                let end = skip_quoted(b, i, b'`');
                out.extend_from_slice(&b[i..end]);
                i = end;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let end = super::context::find(&b[i + 2..], b"*/").map_or(b.len(), |e| i + 2 + e + 2);
                out.extend_from_slice(&b[i..end]);
                i = end;
            }
            b'-' if b.get(i + 1) == Some(&b'-') && b.get(i + 2).is_none_or(|c| c.is_ascii_whitespace()) => {
                let end = b[i..].iter().position(|&c| c == b'\n').map_or(b.len(), |e| i + e);
                out.extend_from_slice(&b[i..end]);
                i = end;
            }
            b'#' => {
                let end = b[i..].iter().position(|&c| c == b'\n').map_or(b.len(), |e| i + e);
                out.extend_from_slice(&b[i..end]);
                i = end;
            }
            b'x' | b'X' | b'b' | b'B' | b'n' | b'N' if !prev_ident && b.get(i + 1) == Some(&b'\'') => {
                i = skip_quoted(b, i + 1, b'\'');
                out.push(b'?');
            }
            b'0'..=b'9' if !prev_ident => {
                i = skip_number(b, i);
                out.push(b'?');
            }
            b'.' if !prev_ident && b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                i = skip_number(b, i);
                out.push(b'?');
            }
            _ if is_ident(c) => {
                let end = b[i..].iter().position(|&c| !is_ident(c)).map_or(b.len(), |e| i + e);
                out.extend_from_slice(&b[i..end]);
                i = end;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    let s = String::from_utf8_lossy(&out).into_owned();
    truncate(collapse_in_lists(&s), MAX_TAG_LEN)
}

/// Index after the literal opened by the quote at `start` (doubled quotes and backslash escapes
/// stay inside); the end of input when it is unterminated.
fn skip_quoted(b: &[u8], start: usize, quote: u8) -> usize {
    let mut i = start + 1;
    while i < b.len() {
        if b[i] == b'\\' && quote != b'`' {
            i += 2;
        } else if b[i] == quote {
            if b.get(i + 1) == Some(&quote) {
                i += 2;
            } else {
                return i + 1;
            }
        } else {
            i += 1;
        }
    }
    b.len()
}

fn skip_number(b: &[u8], start: usize) -> usize {
    let mut i = start;
    if b.get(i) == Some(&b'0') && matches!(b.get(i + 1), Some(b'x' | b'X' | b'b' | b'B')) {
        i += 2;
        while i < b.len() && b[i].is_ascii_hexdigit() {
            i += 1;
        }
        return i;
    }
    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
        i += 1;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        if b.get(j).is_some_and(u8::is_ascii_digit) {
            i = j;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
        }
    }
    i
}

/// `IN (?, ?, ?)` -> `IN (?)`, case-insensitive on `IN`.
fn collapse_in_lists(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut copied = 0;
    let mut i = 0;
    while i + 2 <= b.len() {
        let word = b[i..i + 2].eq_ignore_ascii_case(b"in")
            && (i == 0 || !is_ident(b[i - 1]))
            && b.get(i + 2).is_none_or(|&c| !is_ident(c));
        if word {
            let mut j = i + 2;
            while j < b.len() && b[j].is_ascii_whitespace() {
                j += 1;
            }
            if b.get(j) == Some(&b'(') {
                let mut k = j + 1;
                let mut marks = 0;
                loop {
                    while k < b.len() && b[k].is_ascii_whitespace() {
                        k += 1;
                    }
                    if b.get(k) != Some(&b'?') {
                        break;
                    }
                    marks += 1;
                    k += 1;
                    while k < b.len() && b[k].is_ascii_whitespace() {
                        k += 1;
                    }
                    if b.get(k) == Some(&b',') {
                        k += 1;
                    } else {
                        break;
                    }
                }
                if marks > 0 && b.get(k) == Some(&b')') {
                    out.push_str(&s[copied..i + 2]);
                    out.push_str(" (?)");
                    copied = k + 1;
                    i = k + 1;
                    continue;
                }
            }
        }
        i += 1;
    }
    out.push_str(&s[copied..]);
    out
}

/// The first keyword of a statement, upper-cased (`SELECT`, `INSERT`, `CALL`…), after leading
/// blanks, comments and parentheses.
pub fn sql_operation(sql: &[u8]) -> Option<String> {
    let mut i = 0;
    loop {
        while i < sql.len() && (sql[i].is_ascii_whitespace() || sql[i] == b'(') {
            i += 1;
        }
        if sql[i..].starts_with(b"/*") {
            i = super::context::find(&sql[i + 2..], b"*/").map_or(sql.len(), |e| i + 2 + e + 2);
        } else if sql[i..].starts_with(b"-- ") || sql[i..].starts_with(b"#") {
            i = sql[i..].iter().position(|&c| c == b'\n').map_or(sql.len(), |e| i + e);
        } else {
            break;
        }
    }
    let word: Vec<u8> =
        sql[i..].iter().take_while(|c| c.is_ascii_alphabetic() || **c == b'_').take(32).copied().collect();
    if word.is_empty() {
        return None;
    }
    Some(String::from_utf8_lossy(&word).to_ascii_uppercase())
}

/// A request target with every query value replaced by `?` (`/p?a=1&b` -> `/p?a=?&b`).
pub fn redact_query(target: &str) -> String {
    let Some((path, query)) = target.split_once('?') else {
        return target.to_string();
    };
    let mut out = String::with_capacity(target.len());
    out.push_str(path);
    out.push('?');
    for (n, pair) in query.split('&').enumerate() {
        if n > 0 {
            out.push('&');
        }
        match pair.split_once('=') {
            Some((key, _)) => {
                out.push_str(key);
                out.push_str("=?");
            }
            None => out.push_str(pair),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_literals() {
        let cases = [
            ("SELECT id, name FROM users WHERE name = 'alice'", "SELECT id, name FROM users WHERE name = ?"),
            ("INSERT INTO users VALUES (4,'dave','d@example.com',1.5)", "INSERT INTO users VALUES (?,?,?,?)"),
            ("UPDATE t SET score = score + 1 WHERE id IN (1,2,3)", "UPDATE t SET score = score + ? WHERE id IN (?)"),
            ("select * from t2 where c in ( 'a' , 'b' ) and x=0x1F", "select * from t2 where c in (?) and x=?"),
            (
                "SELECT `col1`, t1.c2 FROM `odd``name` WHERE a = \"x\\\"y\" AND b = -3.5e10",
                "SELECT `col1`, t1.c2 FROM `odd``name` WHERE a = ? AND b = -?",
            ),
            ("SELECT X'0AFF', b'101', N'nat', 'it''s' FROM dual", "SELECT ?, ?, ?, ? FROM dual"),
            ("/* keep */ SELECT 1 -- trailing 2\n, 3 # four", "/* keep */ SELECT ? -- trailing 2\n, ? # four"),
            ("SELECT 'unterminated", "SELECT ?"),
            ("SELECT id IN (SELECT 1)", "SELECT id IN (SELECT ?)"),
        ];
        for (input, want) in cases {
            assert_eq!(redact_sql(input), want, "{input}");
        }
    }

    #[test]
    fn sql_redaction_is_bounded() {
        let long = format!("SELECT {}", "a, ".repeat(5000));
        assert!(redact_sql(&long).len() <= MAX_TAG_LEN);
        let utf8 = format!("SELECT {}", "é".repeat(3000));
        let r = redact_sql(&utf8);
        assert!(r.len() <= MAX_TAG_LEN);
        assert!(r.starts_with("SELECT éé"));
    }

    #[test]
    fn operation_keyword() {
        assert_eq!(sql_operation(b"  select 1").as_deref(), Some("SELECT"));
        assert_eq!(sql_operation(b"/*traceparent='x'*/ SELECT name").as_deref(), Some("SELECT"));
        assert_eq!(sql_operation(b"-- c\n(SELECT 1) UNION (SELECT 2)").as_deref(), Some("SELECT"));
        assert_eq!(sql_operation(b"call two_results()").as_deref(), Some("CALL"));
        assert_eq!(sql_operation(b"/* unterminated"), None);
        assert_eq!(sql_operation(b"  "), None);
        assert_eq!(sql_operation(b"123"), None);
    }

    #[test]
    fn query_values() {
        assert_eq!(redact_query("/missing.html?user=alice&token=s3cret"), "/missing.html?user=?&token=?");
        assert_eq!(redact_query("/p?flag&a=1=2&"), "/p?flag&a=?&");
        assert_eq!(redact_query("/plain"), "/plain");
    }
}
