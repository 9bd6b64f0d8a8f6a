//! Writing one batch of exchanges, step by step: delivery attempt, handshake pairing, the row
//! (named columns), its payload, the partner's update. Retention is the store's last step.

use crate::body_files::{BodyFiles, FILE_MIN};
use crate::error::Result;
use crate::exchange::{Exchange, ExchangeId, Message};
use crate::grouping::{BODY_HASH_WINDOW_MS, GroupKey, group_key_with};
use crate::handshake::{self, HANDSHAKE_WINDOW_MS, Handshake, Leg, Lint, LintCode, Role};
use crate::query::Summary;
use crate::store::{
    CappedBody, cap_body, clamp_i64, decode_lints, encode_headers, encode_lints, side_str,
};
use rusqlite::{CachedStatement, Connection, OptionalExtension, params};
use std::collections::HashMap;
use twk_providers::{SecretSource, Verdict};

/// Values are bound by position, in the order of the column list: by name, SQLite looks up
/// each of the 40 names in turn (`sqlite3_bind_parameter_index`), which was 7 % of the
/// capture writer's time. `insert_row` lists them in the same order, one per line.
const INSERT_ROW: &str = "INSERT INTO exchanges (tunnel, request_id, received_ms, forwarded_ms, \
     first_byte_ms, done_ms, duration_ms, method, public_url, path, target, remote_addr, status, \
     failure_side, failure_message, provider, event, summary, verdict, analysis, replay_of, \
     attempt, group_key, req_body_len, req_body_sha256, req_body_truncated, has_response, \
     resp_body_len, resp_body_sha256, resp_body_truncated, auth, hs_leg, hs_with, hs_key, \
     hs_deadline_ms, lints, lint_codes, missed, stored_bytes, matched_secret, refused) VALUES \
     (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, \
     ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33, ?34, ?35, ?36, ?37, ?38, \
     ?39, ?40, ?41)";

/// The bytes a payload column holds: none when the body is in a file.
fn in_db<'b>(bytes: &'b [u8], file: &Option<String>) -> &'b [u8] {
    if file.is_some() { &[] } else { bytes }
}

/// Where an exchange stands in a Basic-auth handshake as it is written.
struct Pairing {
    /// Its handshake, when paired (or a leg 1 waiting).
    hs: Option<Handshake>,
    /// The key a still-unpaired leg waits under.
    open_key: Option<String>,
    /// When a waiting leg 1 stops waiting (then `retry-never-came`).
    deadline: Option<i64>,
    /// The earlier row it pairs with, and that row's role.
    partner: Option<(ExchangeId, Role)>,
    /// Its lints, pairing taken into account.
    lints: Vec<Lint>,
}

/// The statements of one batch, prepared once per transaction.
pub(crate) struct Inserter<'c> {
    conn: &'c Connection,
    files: &'c BodyFiles,
    cap: usize,
    now_ms: i64,
    row: CachedStatement<'c>,
    payload: CachedStatement<'c>,
    last_in_group: CachedStatement<'c>,
    find_leg1: CachedStatement<'c>,
    find_leg2: CachedStatement<'c>,
    pair_leg1: CachedStatement<'c>,
    pair_leg2: CachedStatement<'c>,
    lints_of: CachedStatement<'c>,
    /// Body files this batch wrote (not ones it reused): to remove if it does not commit.
    pub(crate) created: Vec<String>,
    /// Bytes of the files this batch named that no row named before.
    pub(crate) named_bytes: u64,
    /// Bytes of heads and bodies this batch kept in the database (`stored_bytes`).
    pub(crate) stored_bytes: u64,
}

impl<'c> Inserter<'c> {
    pub(crate) fn prepare(
        conn: &'c Connection,
        files: &'c BodyFiles,
        cap: usize,
        now_ms: i64,
    ) -> Result<Self> {
        // Open candidates only carry `hs_key`: both lookups are one probe of the partial
        // index `exchanges_hs_open (hs_key, received_ms)`.
        Ok(Inserter {
            conn,
            files,
            cap,
            now_ms,
            row: conn.prepare_cached(INSERT_ROW)?,
            payload: conn.prepare_cached(
                "INSERT INTO payloads (id, req_headers, req_body, resp_headers, resp_body, \
                 req_body_file, resp_body_file) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?,
            last_in_group: conn.prepare_cached(
                "SELECT attempt, received_ms FROM exchanges WHERE group_key = ?1 \
                 ORDER BY id DESC LIMIT 1",
            )?,
            find_leg1: conn.prepare_cached(
                "SELECT id FROM exchanges WHERE hs_key = ?1 AND received_ms BETWEEN ?2 AND ?3 \
                 ORDER BY received_ms DESC, id DESC LIMIT 1",
            )?,
            find_leg2: conn.prepare_cached(
                "SELECT id FROM exchanges WHERE hs_key = ?1 AND received_ms BETWEEN ?2 AND ?3 \
                 ORDER BY received_ms ASC, id ASC LIMIT 1",
            )?,
            pair_leg1: conn.prepare_cached(
                "UPDATE exchanges SET hs_with = ?2, hs_key = NULL, hs_deadline_ms = NULL \
                 WHERE id = ?1",
            )?,
            pair_leg2: conn.prepare_cached(
                "UPDATE exchanges SET hs_leg = 2, hs_with = ?2, hs_key = NULL, lints = ?3, \
                 lint_codes = ?4 WHERE id = ?1",
            )?,
            lints_of: conn.prepare_cached("SELECT lints FROM exchanges WHERE id = ?1")?,
            created: Vec::new(),
            named_bytes: 0,
            stored_bytes: 0,
        })
    }

    /// Writes `batch` in order; returns a summary per exchange. Rows of this batch that a
    /// later row pairs with are updated in `out` as well as in the database.
    pub(crate) fn write_all(&mut self, batch: &[Exchange]) -> Result<Vec<Summary>> {
        let mut out: Vec<Summary> = Vec::with_capacity(batch.len());
        let mut batch_pos: HashMap<ExchangeId, usize> = HashMap::new();
        for ex in batch {
            let summary = self.write(ex, &mut out, &batch_pos)?;
            batch_pos.insert(summary.id, out.len());
            out.push(summary);
        }
        Ok(out)
    }

    fn write(
        &mut self,
        ex: &Exchange,
        out: &mut [Summary],
        batch_pos: &HashMap<ExchangeId, usize>,
    ) -> Result<Summary> {
        let req_body = cap_body(&ex.request.body, self.cap);
        let resp = ex
            .response
            .as_ref()
            .map(|m| (m, cap_body(&m.body, self.cap)));
        let key = group_key_with(ex, &req_body.sha256);
        // Pairing: look for the partner before inserting, so this row is written in its
        // final state and only the partner needs an update.
        let pairing = self.pairing(ex, &req_body.sha256)?;
        // A handshake's retry (leg 2) is the same delivery as its leg 1, not another attempt.
        let leg2 = matches!(pairing.partner, Some((_, Role::Leg1)));
        let attempt = self.attempt(ex, key.as_ref(), leg2)?;
        let req_file = self.store_file(&req_body)?;
        let resp_file = match &resp {
            Some((_, b)) => self.store_file(b)?,
            None => None,
        };
        let req_head = encode_headers(&ex.request.headers)?;
        let req_kept = in_db(req_body.bytes, &req_file);
        let resp_head = resp
            .as_ref()
            .map(|(m, _)| encode_headers(&m.headers))
            .transpose()?;
        let resp_kept = resp.as_ref().map(|(_, b)| in_db(b.bytes, &resp_file));
        let stored = req_head.len()
            + req_kept.len()
            + resp_head.as_ref().map_or(0, String::len)
            + resp_kept.map_or(0, <[u8]>::len);
        let stored = stored as u64;
        let row = (attempt, key.as_ref(), stored);
        let id = self.insert_row(ex, &req_body, resp.as_ref(), row, &pairing)?;
        self.stored_bytes = self.stored_bytes.saturating_add(stored);
        self.payload.execute(params![
            id, req_head, req_kept, resp_head, resp_kept, req_file, resp_file,
        ])?;
        if let Some((p, role)) = pairing.partner {
            let leg = self.pair_partner(p, role, id)?;
            if let Some(row) = batch_pos.get(&p).and_then(|&i| out.get_mut(i)) {
                row.handshake = Some(Handshake {
                    leg,
                    with: Some(id),
                });
                row.lints.retain(|c| {
                    !matches!(
                        c,
                        LintCode::PreemptiveCredentials | LintCode::RetryNeverCame
                    )
                });
            }
        }
        let mut summary = Summary::of(id, ex, attempt);
        summary.handshake = pairing.hs;
        summary.lints = pairing.lints.iter().map(|l| l.code).collect();
        if pairing.deadline.is_some_and(|d| d < self.now_ms) {
            summary.lints.push(LintCode::RetryNeverCame);
            summary.lints.sort();
        }
        Ok(summary)
    }

    /// Writes a large stored body to its file and counts the reference; returns the file's
    /// name, or `None` for a body that stays in the database.
    fn store_file(&mut self, b: &CappedBody<'_>) -> Result<Option<String>> {
        if b.bytes.len() < FILE_MIN {
            return Ok(None);
        }
        // Untruncated, the stored bytes are the whole body and its SHA-256 is known.
        let name = BodyFiles::name_of(b.bytes, (!b.truncated).then_some(&*b.sha256));
        if self.files.put(&name, b.bytes)? {
            self.created.push(name.clone());
        }
        let added = BodyFiles::add_ref(self.conn, &name, b.bytes.len())?;
        self.named_bytes = self.named_bytes.saturating_add(added);
        Ok(Some(name))
    }

    /// The delivery attempt of `ex` within its group (1 = first); `None` for a replay. A
    /// handshake's leg 2 (`same_delivery`) takes the attempt of the row before it, its leg 1.
    fn attempt(
        &mut self,
        ex: &Exchange,
        key: Option<&GroupKey>,
        same_delivery: bool,
    ) -> Result<Option<u32>> {
        let k = match (key, ex.replay_of) {
            (_, Some(_)) => return Ok(None),
            (None, None) => return Ok(Some(1)),
            (Some(k), None) => k,
        };
        let prev: Option<(Option<i64>, i64)> = self
            .last_in_group
            .query_row([&k.key], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        Ok(Some(match prev {
            Some((Some(a), at))
                if !k.windowed
                    || ex.timings.received_ms.saturating_sub(at) <= BODY_HASH_WINDOW_MS =>
            {
                let a = u32::try_from(a).unwrap_or(u32::MAX - 1);
                if same_delivery {
                    a
                } else {
                    a.saturating_add(1)
                }
            }
            _ => 1,
        }))
    }

    /// Finds the other leg of a Basic-auth handshake, if `ex` is one and it is there.
    fn pairing(&mut self, ex: &Exchange, req_sha256: &str) -> Result<Pairing> {
        let found = handshake::analyze(ex, req_sha256);
        let t = ex.timings.received_ms;
        let mut p = Pairing {
            hs: None,
            open_key: None,
            deadline: found.deadline_ms,
            partner: None,
            lints: Vec::new(),
        };
        match &found.role {
            Some((Role::Leg1, k)) => {
                let window = params![
                    handshake::partner_key(k),
                    t,
                    t.saturating_add(HANDSHAKE_WINDOW_MS)
                ];
                let other: Option<ExchangeId> =
                    self.find_leg2.query_row(window, |r| r.get(0)).optional()?;
                p.hs = Some(Handshake {
                    leg: Leg::Challenge,
                    with: other,
                });
                match other {
                    Some(o) => {
                        p.deadline = None;
                        p.partner = Some((o, Role::Leg2));
                    }
                    None => p.open_key = Some(k.clone()),
                }
            }
            Some((Role::Leg2, k)) => {
                let window = params![
                    handshake::partner_key(k),
                    t.saturating_sub(HANDSHAKE_WINDOW_MS),
                    t
                ];
                let other: Option<ExchangeId> =
                    self.find_leg1.query_row(window, |r| r.get(0)).optional()?;
                match other {
                    Some(o) => {
                        p.hs = Some(Handshake {
                            leg: Leg::Retry,
                            with: Some(o),
                        });
                        p.partner = Some((o, Role::Leg1));
                    }
                    None => p.open_key = Some(k.clone()),
                }
            }
            None => {}
        }
        let open_leg2 = matches!(found.role, Some((Role::Leg2, _))) && p.hs.is_none();
        p.lints = handshake::with_pairing(found.lints, open_leg2);
        Ok(p)
    }

    /// Inserts the exchange's row, with its attempt, group key and the bytes its payload
    /// keeps in the database; returns its id.
    fn insert_row(
        &mut self,
        ex: &Exchange,
        req_body: &CappedBody<'_>,
        resp: Option<&(&Message, CappedBody<'_>)>,
        (attempt, key, stored): (Option<u32>, Option<&GroupKey>, u64),
        p: &Pairing,
    ) -> Result<ExchangeId> {
        let analysis = ex.analysis.as_ref().map(crate::AnalysisJson::text);
        let auth = ex.auth.as_ref().map(serde_json::to_string).transpose()?;
        let (lints, lint_codes) = encode_lints(&p.lints)?;
        let resp_body = resp.map(|(_, b)| b);
        self.row.execute(params![
            ex.tunnel,                                       // tunnel
            ex.request_id,                                   // request_id
            ex.timings.received_ms,                          // received_ms
            ex.timings.forwarded_ms,                         // forwarded_ms
            ex.timings.first_byte_ms,                        // first_byte_ms
            ex.timings.done_ms,                              // done_ms
            ex.duration_ms(),                                // duration_ms
            ex.method,                                       // method
            ex.public_url,                                   // public_url
            ex.path,                                         // path
            ex.target,                                       // target
            ex.remote_addr,                                  // remote_addr
            ex.status,                                       // status
            ex.failure.as_ref().map(|f| side_str(f.side)),   // failure_side
            ex.failure.as_ref().map(|f| f.message.as_str()), // failure_message
            ex.provider,                                     // provider
            ex.event,                                        // event
            ex.summary,                                      // summary
            ex.verdict.map(Verdict::as_str),                 // verdict
            analysis,                                        // analysis
            ex.replay_of,                                    // replay_of
            attempt,                                         // attempt
            key.map(|k| k.key.as_str()),                     // group_key
            clamp_i64(req_body.len),                         // req_body_len
            req_body.sha256,                                 // req_body_sha256
            req_body.truncated,                              // req_body_truncated
            resp.is_some(),                                  // has_response
            resp_body.map(|b| clamp_i64(b.len)),             // resp_body_len
            resp_body.map(|b| b.sha256.as_ref()),            // resp_body_sha256
            resp_body.map(|b| b.truncated),                  // resp_body_truncated
            auth,                                            // auth
            p.hs.map(|h| h.leg.number()),                    // hs_leg
            p.hs.and_then(|h| h.with),                       // hs_with
            p.open_key,                                      // hs_key
            p.deadline,                                      // hs_deadline_ms
            lints,                                           // lints
            lint_codes,                                      // lint_codes
            ex.missed,                                       // missed
            clamp_i64(stored),                               // stored_bytes
            ex.matched_secret.map(SecretSource::as_str),     // matched_secret
            ex.refused,                                      // refused
        ])?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Completes the earlier leg `p` (whose role is `role`) with this row `id`; returns the
    /// earlier leg's place in the handshake.
    fn pair_partner(&mut self, p: ExchangeId, role: Role, id: ExchangeId) -> Result<Leg> {
        Ok(match role {
            Role::Leg1 => {
                self.pair_leg1.execute(params![p, id])?;
                Leg::Challenge
            }
            Role::Leg2 => {
                // The partner stops being an unpaired retry: recompute its lints.
                let old: Option<String> = self
                    .lints_of
                    .query_row([p], |r| r.get(0))
                    .optional()?
                    .flatten();
                let old = decode_lints(p, old.as_deref()).unwrap_or_else(|e| {
                    tracing::warn!(error = %twk_sanitize::error_chain(&e), "re-linting a handshake partner");
                    Vec::new()
                });
                let (j, c) = encode_lints(&handshake::with_pairing(old, false))?;
                self.pair_leg2.execute(params![p, id, j, c])?;
                Leg::Retry
            }
        })
    }
}
