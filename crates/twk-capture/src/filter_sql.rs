//! A [`Filter`] as SQL: the `WHERE` clause with its parameters, and `ORDER BY … LIMIT`.

use crate::handshake::LintCode;
use crate::query::{Filter, Order, StatusFilter};
use crate::store::clamp_i64;
use rusqlite::types::Value;

pub(crate) fn where_clause(f: &Filter, now_ms: i64) -> (String, Vec<Value>) {
    let mut conds: Vec<String> = Vec::new();
    let mut args: Vec<Value> = Vec::new();
    let mut eq = |col: &str, v: &Option<String>, conds: &mut Vec<String>| {
        if let Some(v) = v {
            args.push(Value::Text(v.clone()));
            conds.push(format!("{col} = ?{}", args.len()));
        }
    };
    eq("e.tunnel", &f.name, &mut conds);
    eq("e.provider", &f.provider, &mut conds);
    eq("e.event", &f.event, &mut conds);
    eq(
        "e.verdict",
        &f.verdict.map(|v| v.as_str().to_string()),
        &mut conds,
    );
    let mut push = |sql: &str, v: Value, conds: &mut Vec<String>| {
        args.push(v);
        conds.push(sql.replace('#', &format!("?{}", args.len())));
    };
    match f.status {
        Some(StatusFilter::Exact(c)) => push("e.status = #", Value::Integer(c.into()), &mut conds),
        Some(StatusFilter::Class(c)) => {
            push("e.status_class = #", Value::Integer(c.into()), &mut conds)
        }
        Some(StatusFilter::NoResponse) => conds.push("e.status IS NULL".into()),
        None => {}
    }
    // With an equality filter, its (col, id) index is the better access path: keep the
    // planner off the received_ms index (unary `+`) so `--event X --since T` stays fast.
    let has_eq =
        f.name.is_some() || f.provider.is_some() || f.event.is_some() || f.verdict.is_some();
    let time_col = if has_eq {
        "+e.received_ms"
    } else {
        "e.received_ms"
    };
    if let Some(s) = f.since_ms {
        push(&format!("{time_col} >= #"), Value::Integer(s), &mut conds);
    }
    if let Some(u) = f.until_ms {
        push(&format!("{time_col} <= #"), Value::Integer(u), &mut conds);
    }
    if let Some(r) = f.replay_of {
        push("e.replay_of = #", Value::Integer(r), &mut conds);
    }
    for (want, col) in [(f.missed, "e.missed"), (f.refused, "e.refused")] {
        if let Some(w) = want {
            conds.push(format!("{col} = {}", u8::from(w)));
        }
    }
    if let Some(a) = f.after_id {
        push("e.id > #", Value::Integer(a), &mut conds);
    }
    match f.lint {
        Some(LintCode::RetryNeverCame) => {
            push("e.hs_deadline_ms < #", Value::Integer(now_ms), &mut conds)
        }
        Some(code) => push(
            "e.lint_codes IS NOT NULL AND instr(e.lint_codes, #) > 0",
            Value::Text(format!(",{},", code.as_str())),
            &mut conds,
        ),
        None => {}
    }
    if f.collapse_handshakes {
        conds.push("(e.hs_leg IS NOT 1 OR e.hs_with IS NULL)".into());
    }
    if let Some(g) = f.grep.as_deref().filter(|g| !g.is_empty()) {
        args.push(Value::Text(format!("%{}%", like_escape(g))));
        let like = args.len();
        args.push(Value::Text(g.to_owned()));
        let raw = args.len();
        // Bodies are bytes, searched by `twk_contains`: LIKE would stop at their first NUL.
        conds.push(format!(
            "(e.public_url LIKE ?{like} ESCAPE '\\' OR e.path LIKE ?{like} ESCAPE '\\' \
             OR e.summary LIKE ?{like} ESCAPE '\\' OR EXISTS (SELECT 1 FROM payloads p2 \
             WHERE p2.id = e.id AND (p2.req_headers LIKE ?{like} ESCAPE '\\' \
             OR p2.resp_headers LIKE ?{like} ESCAPE '\\' \
             OR twk_contains(p2.req_body, ?{raw}) OR twk_contains(p2.resp_body, ?{raw}) \
             OR twk_file_contains(p2.req_body_file, ?{raw}) \
             OR twk_file_contains(p2.resp_body_file, ?{raw}))))"
        ));
    }
    let sql = if conds.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conds.join(" AND "))
    };
    (sql, args)
}

pub(crate) fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

pub(crate) fn order_limit(f: &Filter) -> String {
    let dir = match f.order {
        Order::NewestFirst => "DESC",
        Order::OldestFirst => "ASC",
    };
    let limit = f.limit.map(clamp_i64).unwrap_or(-1);
    format!(
        "ORDER BY e.id {dir} LIMIT {limit} OFFSET {}",
        clamp_i64(f.offset)
    )
}
