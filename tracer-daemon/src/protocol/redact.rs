//! Redaction of what spans keep of requests and errors: SQL literals (in comments too), URL
//! credentials, path parameters and query items, quoted values in database error messages;
//! and the first keyword of a SQL statement.

use super::{MAX_TAG_LEN, truncate};

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// SQL with string, number and hex/bit literals replaced by `?`, and `IN (?, ?, …)` lists
/// collapsed to `IN (?)`. Identifiers and the words of comments are kept; literals inside
/// comments are replaced too (`/* user='bob' */` → `/* user=? */`): comments carry values as
/// well. Bounded to `MAX_TAG_LEN`.
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

/// A request target with what may hold secrets replaced: credentials of an absolute URL
/// (`http://u:p@h/` → `http://REDACTED:REDACTED@h/`, as OpenTelemetry's `url.full` asks), the
/// values of path parameters (`/cart;jsessionid=AB12` → `/cart;jsessionid=?`), query values
/// (`?a=1` → `?a=?`) and query items without a value (`?s3cret` → `??`: a bare item can be a
/// token). Fragments are dropped (clients never send them; one that does is treated as query).
pub fn redact_query(target: &str) -> String {
    if !target.contains(['?', ';', '@', '#']) {
        // Nothing that can hold a value (credentials need an `@`).
        return target.to_owned();
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let mut out = String::with_capacity(target.len() + 16);
    out.push_str(&redact_path(path));
    if let Some(query) = query {
        out.push('?');
        for (n, pair) in query.split(['&', '#']).enumerate() {
            if n > 0 {
                out.push('&');
            }
            match pair.split_once('=') {
                Some((key, _)) => {
                    out.push_str(key);
                    out.push_str("=?");
                }
                None if pair.is_empty() => {}
                None => out.push('?'),
            }
        }
    }
    out
}

/// The path part of a target: credentials of an absolute URL and path parameter values.
fn redact_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 16);
    let mut rest = path;
    // Absolute form (`scheme://authority/path`, as sent to proxies): credentials out.
    if let Some(at) = rest.find("://") {
        let (scheme, after) = rest.split_at(at + 3);
        let authority_end = after.find('/').unwrap_or(after.len());
        let (authority, tail) = after.split_at(authority_end);
        out.push_str(scheme);
        match authority.rfind('@') {
            Some(userinfo) => {
                out.push_str("REDACTED:REDACTED@");
                out.push_str(&authority[userinfo + 1..]);
            }
            None => out.push_str(authority),
        }
        rest = tail;
    }
    for (n, segment) in rest.split('/').enumerate() {
        if n > 0 {
            out.push('/');
        }
        let mut params = segment.split(';');
        out.push_str(params.next().unwrap_or_default());
        for param in params {
            out.push(';');
            match param.split_once('=') {
                Some((key, _)) => {
                    out.push_str(key);
                    out.push_str("=?");
                }
                None => out.push_str(param),
            }
        }
    }
    out
}

/// A database error message with its quoted parts replaced by `?`: servers echo the values a
/// statement carried (`Duplicate entry 'alice@example.com' for key 'email'` →
/// `Duplicate entry ? for key ?`). Bounded to `MAX_TAG_LEN`.
pub fn redact_message(message: &str) -> String {
    let b = message.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len().min(MAX_TAG_LEN));
    let mut i = 0;
    while i < b.len() && out.len() < MAX_TAG_LEN {
        // A quote after a letter or digit is an apostrophe (`doesn't`), not a value's start.
        let in_word = i > 0 && b[i - 1].is_ascii_alphanumeric();
        match b[i] {
            q @ (b'\'' | b'"' | b'`') if !in_word => {
                i = skip_quoted(b, i, q);
                out.push(b'?');
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    truncate(String::from_utf8_lossy(&out).into_owned(), MAX_TAG_LEN)
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
            ("/* keep */ SELECT 1 -- trailing 2\n, 3 # four", "/* keep */ SELECT ? -- trailing ?\n, ? # four"),
            ("SELECT a /* user='bob', id=42 */ FROM t", "SELECT a /* user=?, id=? */ FROM t"),
            ("/*traceparent='00-0af7-b7ad-01'*/ SELECT 1", "/*traceparent=?*/ SELECT ?"),
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
        assert_eq!(redact_query("/p?flag&a=1=2&"), "/p??&a=?&", "a bare item may be a token");
        assert_eq!(redact_query("/reset?0f9a8b7c"), "/reset??");
        assert_eq!(redact_query("/plain"), "/plain");
        assert_eq!(redact_query("/p?a=1#frag"), "/p?a=?&?");
    }

    #[test]
    fn credentials_and_path_parameters() {
        assert_eq!(
            redact_query("http://alice:s3cret@example.com:8080/a?b=1"),
            "http://REDACTED:REDACTED@example.com:8080/a?b=?"
        );
        assert_eq!(redact_query("https://token@example.com"), "https://REDACTED:REDACTED@example.com");
        assert_eq!(redact_query("http://example.com/x/y"), "http://example.com/x/y");
        assert_eq!(redact_query("/cart;jsessionid=0A1B2C3D?item=7"), "/cart;jsessionid=??item=?");
        assert_eq!(redact_query("/a;v=1/b;x=2;flag/c"), "/a;v=?/b;x=?;flag/c");
        assert_eq!(redact_query("*"), "*");
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            redact_message("ERROR 1062 (23000): Duplicate entry 'alice@example.com' for key 'email'"),
            "ERROR 1062 (23000): Duplicate entry ? for key ?"
        );
        assert_eq!(redact_message("Unknown column \"x\" in `t`"), "Unknown column ? in ?");
        assert_eq!(redact_message("no quotes 42"), "no quotes 42");
        assert_eq!(redact_message("unterminated 'secret"), "unterminated ?");
        assert_eq!(
            redact_message("ERROR 1146 (42S02): Table 'shop.no_such_table' doesn't exist"),
            "ERROR 1146 (42S02): Table ? doesn't exist"
        );
    }
}
