//! SQL text: string literals, the dashboard filter as a `WHERE` clause,
//! and the classification of ClickHouse errors.
//!
//! ClickHouse 18.16 has no server-side query parameters, so values reach
//! SQL as literals. Only three kinds do: dates (formatted by chrono),
//! integers, and strings through [`quote`], which escapes every byte that
//! could end or bend a single-quoted literal. Identifiers (database and
//! table names) are never user input: the database name is checked by
//! [`super::config::is_identifier`], table names are constants.

use std::fmt::Write as _;

use storepulse_mart::query::MartFilter;
use storepulse_mart::MartError;

/// A single-quoted ClickHouse string literal holding exactly `s`.
///
/// Backslash and quote are escaped with a backslash; control bytes as
/// `\xHH`, so the literal is one line and survives every client. The same
/// text is a valid literal on 18.16 and on current releases.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                // Infallible: writing to a String.
                let _ = write!(out, "\\x{:02X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// `s1, s2, ...` of quoted literals.
pub fn quote_list<S: AsRef<str>>(items: &[S]) -> String {
    let mut out = String::new();
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&quote(s.as_ref()));
    }
    out
}

/// `day >= 'from' AND day <= 'to'` plus the store scope, for a table
/// whose columns are `day` and `store_column`; `prefix` qualifies the
/// columns (`r.`) or is empty.
pub fn where_clause(filter: &MartFilter, prefix: &str, store_column: &str) -> String {
    let mut w = format!(
        "{prefix}day >= '{}' AND {prefix}day <= '{}'",
        filter.from.format("%Y-%m-%d"),
        filter.to.format("%Y-%m-%d")
    );
    w.push_str(&store_scope(filter, &format!("{prefix}{store_column}")));
    w
}

/// ` AND <column> IN (...)` for the filter's stores; ` AND 1 = 0` for an
/// empty list (matches nothing); nothing for every store.
pub fn store_scope(filter: &MartFilter, column: &str) -> String {
    match &filter.stores {
        None => String::new(),
        Some(s) if s.is_empty() => " AND 1 = 0".into(),
        Some(s) => format!(" AND {column} IN ({})", quote_list(s)),
    }
}

/// ClickHouse error codes that say "the server is busy or away", worth
/// retrying: timeouts, network, too many queries or parts, memory, the
/// server shutting down, read-only replicas, Keeper.
const TRANSIENT_CODES: &[u32] = &[
    3,   // UNEXPECTED_END_OF_FILE (our body cut short)
    159, // TIMEOUT_EXCEEDED
    164, // READONLY (user/replica read-only for now)
    202, // TOO_MANY_SIMULTANEOUS_QUERIES
    203, // NO_FREE_CONNECTION
    209, // SOCKET_TIMEOUT
    210, // NETWORK_ERROR
    216, // QUERY_WITH_SAME_ID_IS_ALREADY_RUNNING (an earlier sink's insert)
    236, // ABORTED
    241, // MEMORY_LIMIT_EXCEEDED
    242, // TABLE_IS_READ_ONLY
    252, // TOO_MANY_PARTS
    285, // TOO_FEW_LIVE_REPLICAS
    319, // UNKNOWN_STATUS_OF_INSERT
    394, // QUERY_WAS_CANCELLED
    425, // SYSTEM_ERROR
    439, // CANNOT_SCHEDULE_TASK
    999, // KEEPER_EXCEPTION
];

/// The `Code: N` of a ClickHouse exception message, if there is one.
pub fn error_code(message: &str) -> Option<u32> {
    let at = message.find("Code: ")? + "Code: ".len();
    let digits: String = message[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Maps a client error to the mart's error with a retry hint: transport
/// failures, timeouts and overload codes are [`MartError::Unavailable`];
/// any other server exception (a type, parse or schema error: Code 53,
/// 117, 27, 60, ...) is [`MartError::Refused`] with the server's message.
pub fn classify(err: &clickhouse::error::Error) -> MartError {
    use clickhouse::error::Error as E;
    match err {
        E::Network(_) | E::TimedOut | E::Compression(_) | E::Decompression(_) => {
            MartError::Unavailable(err.to_string())
        }
        E::BadResponse(msg) => match error_code(msg) {
            Some(code) if TRANSIENT_CODES.contains(&code) => {
                MartError::Unavailable(msg.trim().to_owned())
            }
            Some(_) => MartError::Refused(msg.trim().to_owned()),
            // No exception code: a proxy's or the server's bare HTTP error (502, 503).
            None => MartError::Unavailable(msg.trim().to_owned()),
        },
        _ => MartError::Refused(err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    #[test]
    fn quote_escapes_everything_that_ends_a_literal() {
        assert_eq!(quote("KM-001"), "'KM-001'");
        assert_eq!(quote("a'b"), "'a\\'b'");
        assert_eq!(
            quote("a\\'); DROP TABLE x; --"),
            "'a\\\\\\'); DROP TABLE x; --'"
        );
        assert_eq!(quote("l1\nl2\t\0"), "'l1\\x0Al2\\x09\\x00'");
        assert_eq!(quote("店"), "'店'");
        assert_eq!(quote_list(&["a", "b'"]), "'a', 'b\\''");
    }

    #[test]
    fn filter_renders_dates_and_scope() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date");
        let mut f = MartFilter {
            from: d("2026-12-01"),
            to: d("2026-12-04"),
            stores: None,
        };
        assert_eq!(
            where_clause(&f, "", "store_id"),
            "day >= '2026-12-01' AND day <= '2026-12-04'"
        );
        f.stores = Some(vec![]);
        assert!(where_clause(&f, "r.", "store_id").ends_with(" AND 1 = 0"));
        f.stores = Some(vec!["KM-001".into(), "x'y".into()]);
        assert!(
            where_clause(&f, "r.", "store_id").ends_with(" AND r.store_id IN ('KM-001', 'x\\'y')")
        );
    }

    #[test]
    fn errors_are_classified_by_code() {
        use clickhouse::error::Error as E;
        let refused =
            E::BadResponse("Code: 53, e.displayText() = DB::Exception: Type mismatch".into());
        assert!(matches!(classify(&refused), MartError::Refused(m) if m.contains("Type mismatch")));
        let busy =
            E::BadResponse("Code: 252, e.displayText() = DB::Exception: Too many parts".into());
        assert!(matches!(classify(&busy), MartError::Unavailable(_)));
        assert!(matches!(classify(&E::TimedOut), MartError::Unavailable(_)));
        assert_eq!(error_code("Code: 117. DB::Exception"), Some(117));
        assert_eq!(error_code("bad gateway"), None);
    }
}
