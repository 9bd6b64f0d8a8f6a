//! The Request and Response tabs: heads (secret values redacted unless revealed) and pretty
//! bodies.

use crate::body::{self, BodyKind};
use crate::sanitize::{clean, clean_line};
use crate::style::{bold, dim, key, kv, prose_width, section, status_span, wrap};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use twk_capture::{Exchange, Header, Message, redact};

fn header_lines(headers: &[Header], revealed: bool) -> Vec<Line<'static>> {
    if headers.is_empty() {
        return vec![Line::styled("(no headers)", dim())];
    }
    headers
        .iter()
        .map(|h| {
            let shown = if revealed {
                std::borrow::Cow::Borrowed(h.value.as_slice())
            } else {
                redact::redact_value(&h.name, &h.value)
            };
            let masked = !revealed && redact::is_secret_header(&h.name);
            let value = String::from_utf8_lossy(&shown);
            Line::from(vec![
                Span::styled(clean_line(&h.name, 128), key()),
                Span::styled(": ", dim()),
                Span::styled(
                    clean(&value),
                    if masked {
                        Style::new().fg(Color::Yellow)
                    } else {
                        Style::new()
                    },
                ),
            ])
        })
        .collect()
}

fn head_lines(m: &Message, revealed: bool) -> Vec<Line<'static>> {
    let mut out = vec![section(&format!("Headers ({})", m.headers.len()))];
    out.extend(header_lines(&m.headers, revealed));
    if !revealed && m.headers.iter().any(|h| redact::is_secret_header(&h.name)) {
        out.push(Line::styled(
            "(secret values redacted: press s to reveal)",
            dim(),
        ));
    }
    out.push(Line::raw(""));
    out
}

/// The head of a request the relay refused, and why there is no body (it never read it).
fn refused_request_lines(m: &Message, revealed: bool) -> Vec<Line<'static>> {
    let mut out = head_lines(m, revealed);
    out.push(section("Body"));
    out.push(Line::styled(
        format!(
            "(not read: the relay refused the request before its body; {})",
            m.body.unread_len_words()
        ),
        Style::new().fg(Color::Yellow),
    ));
    out
}

fn message_lines(m: &Message, revealed: bool) -> Vec<Line<'static>> {
    let mut out = head_lines(m, revealed);
    let (kind, lines) = body::render(&m.headers, &m.body);
    let label = if kind == BodyKind::Empty {
        "Body".to_owned()
    } else {
        format!("Body ({}, {} bytes)", kind.label(), m.body.len)
    };
    out.push(section(&label));
    out.extend(lines);
    out
}

pub(super) fn request_tab(ex: &Exchange, revealed: bool) -> Vec<Line<'static>> {
    let mut out = vec![
        Line::from(vec![
            Span::styled(clean_line(&ex.method, 32), bold()),
            Span::raw(" "),
            Span::raw(clean(&redact::redact_query(&ex.path, revealed))),
        ]),
        kv(
            "public URL",
            &redact::redact_query(&ex.public_url, revealed),
        ),
        kv("from", ex.remote_addr.as_deref().unwrap_or("-")),
        kv("target", &ex.target),
    ];
    if let Some(of) = ex.replay_of {
        out.push(kv("replay of", &format!("#{of}")));
    }
    out.push(Line::raw(""));
    if ex.refused {
        out.extend(refused_request_lines(&ex.request, revealed));
    } else {
        out.extend(message_lines(&ex.request, revealed));
    }
    out
}

/// The Response tab; the failure's prose wrapped to fit a pane `pane` columns wide.
pub(super) fn response_tab(
    stored: &twk_capture::StoredExchange,
    revealed: bool,
    pane: u16,
) -> Vec<Line<'static>> {
    let ex = &stored.exchange;
    let mut out = Vec::new();
    if let Some(f) = &ex.failure {
        let side = match f.side {
            twk_capture::Side::Sender => "sender",
            twk_capture::Side::Tunnel => "tunnel",
            twk_capture::Side::Target => "local target",
        };
        let text = format!("failed ({side}): {}", clean(&f.message));
        out.extend(
            wrap(&text, prose_width(pane, 0))
                .into_iter()
                .map(|l| Line::styled(l, Style::new().fg(Color::Red))),
        );
        out.push(Line::raw(""));
    }
    // What the provider will make of the answer (`invalid-bxml`, `invalid-twiml`) comes
    // before the answer itself.
    let about_answer = super::auth::lints_block(
        stored,
        twk_capture::LintCode::about_the_answer_document,
        pane,
    );
    if !about_answer.is_empty() {
        out.extend(about_answer);
        out.push(Line::raw(""));
    }
    match (&ex.response, ex.status) {
        (Some(m), status) => {
            out.push(Line::from(vec![
                Span::styled("Status ", key()),
                status_span(status),
            ]));
            out.push(Line::raw(""));
            out.extend(message_lines(m, revealed));
        }
        (None, _) => out.push(Line::styled("No response came back.", dim())),
    }
    out
}
