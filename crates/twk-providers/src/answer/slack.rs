//! Slack's Request URL check: the Events API's `url_verification` request, whose answer must
//! give its `challenge` back. Slack takes it as the whole body (plain text), as JSON
//! `{"challenge": …}` or as a form field; any other answer and the Request URL stays
//! unverified, so no event is ever sent to it.

use super::Answer;
use crate::request::RequestView;
use crate::util::field;
use serde_json::Value;

/// Form fields read from an answer looking for `challenge`.
const FORM_FIELDS: usize = 16;

/// The challenge of `req` when it is Slack's `url_verification` request.
pub fn url_verification_challenge(req: &RequestView<'_>) -> Option<String> {
    let v = req.json()?;
    if field(v, "type")? != "url_verification" {
        return None;
    }
    field(v, "challenge").map(str::to_owned)
}

/// What is wrong with `answer` to a `url_verification` request carrying `challenge`: `None`
/// when it gives the challenge back.
pub fn challenge_problem(challenge: &str, answer: &Answer<'_>) -> Option<String> {
    if gives_back(challenge, answer.body) {
        return None;
    }
    let got = match std::str::from_utf8(answer.body).map(str::trim) {
        Ok("") => "an empty body".to_owned(),
        Ok(text) => format!("`{}`", crate::util::abbrev(text, 60)),
        Err(_) => format!("{} bytes that are not text", answer.body.len()),
    };
    Some(format!(
        "Slack does not verify the Request URL: the answer must give the challenge back (as \
         the body, as JSON {{\"challenge\": …}} or as a form field), and it was {got}"
    ))
}

fn gives_back(challenge: &str, body: &[u8]) -> bool {
    if std::str::from_utf8(body).is_ok_and(|t| t.trim() == challenge) {
        return true;
    }
    if let Ok(v @ Value::Object(_)) = serde_json::from_slice::<Value>(body) {
        return field(&v, "challenge") == Some(challenge);
    }
    crate::form::decode_pairs_upto(body, FORM_FIELDS)
        .iter()
        .any(|(k, v)| k == "challenge" && v == challenge)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(body: &[u8]) -> Answer<'_> {
        Answer {
            status: 200,
            content_type: None,
            body,
            len: body.len() as u64,
        }
    }

    /// Slack's own example request, and the three answers its page accepts.
    #[test]
    fn the_challenge_as_text_json_or_form_is_given_back_and_nothing_else() {
        let body = br#"{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
        let req = RequestView::new("POST", "https://relay.example/t/x/slack", body);
        let c = url_verification_challenge(&req).expect("a url_verification");
        assert_eq!(c, "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P");
        for ok in [
            c.clone(),
            format!("{c}\n"),
            format!(r#"{{"challenge":"{c}"}}"#),
            format!("challenge={c}"),
        ] {
            assert_eq!(challenge_problem(&c, &answer(ok.as_bytes())), None, "{ok}");
        }
        for (bad, says) in [
            ("ok", "`ok`"),
            ("", "an empty body"),
            (r#"{"challenge":"other"}"#, "other"),
        ] {
            let p = challenge_problem(&c, &answer(bad.as_bytes())).expect(bad);
            assert!(p.contains(says), "{p}");
        }
        let event = RequestView::new("POST", "https://r/", br#"{"type":"event_callback"}"#);
        assert_eq!(url_verification_challenge(&event), None);
    }
}
